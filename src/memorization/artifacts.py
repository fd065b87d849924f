"""NetCDF artifacts: one schema per file kind, provenance, atomic writes.

Scripts and figures go through :func:`write_artifact` and :func:`open_artifact`
so every file carries ``long_name``/``units`` on its variables and the
provenance of the run that made it (the experiment's config as YAML, the seed,
package and torch versions, device, git commit), and so a half-written file can
never appear under its final name (it is written to a temporary file in the
same folder, then renamed).
"""

from __future__ import annotations

import os

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # before netCDF4 is imported

import datetime  # noqa: E402
import glob  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
import yaml  # noqa: E402

__all__ = [
    "ENGINE",
    "SCHEMAS",
    "ArtifactError",
    "atomic_write",
    "check_origin",
    "config_of",
    "open_artifact",
    "preflight",
    "provenance",
    "write_artifact",
]

ENGINE = "netcdf4"

_CLASS = "class index"
_NATS = "nats"
_FRACTION = "1"

#: kind -> variable -> (long_name, units). Every listed variable is required.
SCHEMAS: dict[str, dict[str, tuple[str, str]]] = {
    "dataset": {
        "image": ("image pixels", "grey level 0-255"),
        "label": ("true class label", _CLASS),
        "split": ("dataset split (train or test)", ""),
        "class_name": ("class name", ""),
    },
    "labels": {
        "label": ("training label, after corruption", _CLASS),
        "true_label": ("original label", _CLASS),
        "corrupted": ("label drawn at random (it may equal the true label)", "boolean"),
        "mislabeled": ("label differs from the true label", "boolean"),
    },
    "scores": {
        "memorization": ("memorization score: loss(muted) - loss(unmuted), eq. 6", _NATS),
        "probability_memorization": (
            "memorization score, probability form: p_unmuted(label) - p_muted(label)",
            _FRACTION,
        ),
        "zero_one_memorization": (
            "memorization score, 0/1 form: 1[unmuted right] - 1[muted right]",
            _FRACTION,
        ),
        "loss_muted": ("cross-entropy loss of the muted sub-network", _NATS),
        "loss_unmuted": ("cross-entropy loss of the unmuted sub-network", _NATS),
        "prob_muted": ("probability the muted sub-network gives the label", _FRACTION),
        "prob_unmuted": ("probability the unmuted sub-network gives the label", _FRACTION),
        "pred_muted": ("prediction of the muted sub-network", _CLASS),
        "pred_unmuted": ("prediction of the unmuted sub-network", _CLASS),
        "label": ("label the model was trained on", _CLASS),
        "true_label": ("original label", _CLASS),
        "corrupted": ("label drawn at random (it may equal the true label)", "boolean"),
        "mislabeled": ("label differs from the true label", "boolean"),
        "subnet_accuracy": ("accuracy of each sub-network on the training labels", _FRACTION),
        "subnet_loss": ("mean loss of each sub-network on the training labels", _NATS),
    },
    "subsets": {
        "easy": ("in the easy subset (lowest memorization scores)", "boolean"),
        "difficult": ("in the difficult subset (highest memorization scores)", "boolean"),
        "memorization": ("memorization score: loss(muted) - loss(unmuted), eq. 6", _NATS),
    },
    "dynamics": {
        "accuracy": ("accuracy on the subset's labels", _FRACTION),
        "loss": ("mean cross-entropy loss on the subset's labels", _NATS),
        "subset_size": ("number of examples in the subset", "examples"),
    },
    "gradstats": {
        "contribution": (
            "mean contribution (v_i . g) / ||g|| of the subset's examples to the update, eq. 4",
            "loss gradient units",
        ),
        "cosine_similarity": (
            "mean pairwise cosine similarity of per-example gradients of a probe sample, eq. 3",
            _FRACTION,
        ),
    },
    "crosstrain": {
        "accuracy": ("accuracy on the evaluated subset", _FRACTION),
        "loss": ("mean cross-entropy loss on the evaluated subset", _NATS),
    },
    "estimators": {
        "tracin_self_influence": (
            "TracIn self-influence: sum over epochs of lr * ||grad loss||^2",
            "loss^2 per parameter^2 x lr",
        ),
        "final_loss": ("training loss after the last epoch", _NATS),
        "slow_learning": ("1 - learning speed (mean training accuracy over the epochs)", _FRACTION),
        "forgetting_events": (
            "forgetting events (correct -> incorrect); never learnt: number of epochs",
            "events",
        ),
        "loss": ("training loss at the end of the epoch", _NATS),
        "correct": ("classified correctly at the end of the epoch", "boolean"),
        "grad_sq_norm": ("squared norm of the example's loss gradient at the checkpoint", "1"),
        "lr": ("learning rate of the epoch", "1"),
        "accuracy": ("training accuracy at the end of the epoch", _FRACTION),
    },
    "truth_shard": {
        "in_train": ("example is in the model's training subset", "boolean"),
        "correct": ("model classifies the training example correctly", "boolean"),
        "prob": ("model's probability of the example's label", _FRACTION),
        "model_seed": ("initialisation seed of the model", ""),
    },
    "truth": {
        "memorization": (
            "Feldman-Zhang memorization: P[correct | in] - P[correct | out]",
            _FRACTION,
        ),
        "memorization_se": ("standard error of the Feldman-Zhang memorization", _FRACTION),
        "memorization_half": (
            "Feldman-Zhang memorization from models [0, K/2) and [K/2, K)",
            _FRACTION,
        ),
    },
    "influence": {
        "influence": (
            "turn-over influence on the test example: loss(muted) - loss(unmuted), eq. 5",
            _NATS,
        ),
        "influence_example": ("training example of the influence pair", "example id"),
    },
    "validation": {
        "auc_memorized": (
            "ROC AUC for Feldman-Zhang memorization > threshold (clean regime)",
            _FRACTION,
        ),
        "top_overlap": ("overlap of the top 10 % with Feldman-Zhang's (clean regime)", _FRACTION),
        "spearman": ("Spearman rank correlation with Feldman-Zhang memorization", "1"),
        "random_label_auc": ("ROC AUC for the wrong labels, once fitted (noisy regime)", _FRACTION),
        "cost_runs": ("cost in training-run equivalents", "training runs"),
        "cost_seconds": ("measured compute time (from the artifacts' provenance)", "s"),
    },
}

_SCORE_UNITS = {
    "memorization": _NATS,
    "probability_memorization": _FRACTION,
    "zero_one_memorization": _FRACTION,
    "sharpened_memorization": _FRACTION,
}

#: kind -> optional variables: written when a stage computes them
OPTIONAL: dict[str, dict[str, tuple[str, str]]] = {
    "scores": {
        **{
            f"{v}_se": (f"standard error over the replicates of {v}", u)
            for v, u in _SCORE_UNITS.items()
        },
        **{
            f"{v}_by_replicate": (f"{v} of each turn-over replicate", u)
            for v, u in _SCORE_UNITS.items()
        },
        "sharpened_memorization": (
            "memorization score, sharpened form: p_unmuted(label) - p_muted(label) at softmax "
            "temperature score_temperature",
            _FRACTION,
        ),
        "replicate_seed": ("seed of the turn-over replicate", ""),
        "replicate_seconds": ("compute time of the turn-over replicate", "s"),
        "heldout_accuracy": (
            "accuracy of each sub-network on the held-out test split, under the test "
            "examples' own masks (both sub-networks are unseen there)",
            _FRACTION,
        ),
    },
    "truth_shard": {
        "correct_test": ("model classifies the test example correctly", "boolean"),
        "prob_test": ("model's probability of the test example's label", _FRACTION),
    },
}

#: coordinate -> (long_name, units)
COORDS: dict[str, tuple[str, str]] = {
    "example": ("example index in the dataset", ""),
    "epoch": ("training epoch (after this many epochs)", "epochs"),
    "subnet": ("turn-over sub-network", ""),
    "run": ("training run (all: the whole training set; without_difficult: the control)", ""),
    "replicate": ("independent turn-over training (its own seed and masks)", ""),
    "split": ("dataset split", ""),
    "subset": ("subset of examples", ""),
    "train_on": ("subset the model was trained on", ""),
    "evaluate_on": ("subset the accuracy is measured on", ""),
    "class": ("class index", ""),
    "corrupt": ("number of random labels in the training set", "examples"),
    "model": ("retrained model (Feldman-Zhang)", ""),
    "half": ("half of the retrained models", ""),
    "test_example": ("test example index in the dataset", ""),
    "rank": ("rank of the influence pair (0: highest)", ""),
    "estimator": ("memorization estimator", ""),
    "family": ("kind of estimator", ""),
}


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(
    config: Mapping | None = None,
    *,
    experiment: str = "",
    device: str = "cpu",
    threads: int | None = None,
    **extra,
) -> dict:
    """Global attributes describing how an artifact was made.

    ``config`` is the slice of the experiment's resolved config that decides the
    artifact (:meth:`memorization.experiment.Experiment.slice`); it is stored as YAML
    with its hash (``config_hash``), which the next stage checks (:func:`check_origin`).
    ``device`` and ``threads`` are execution settings: recorded, never hashed.
    """
    import torch

    from . import __version__
    from .experiment import slice_hash

    config = dict(config or {})
    attrs = {
        "experiment": str(experiment),
        "config": yaml.safe_dump(config, sort_keys=True),
        "config_hash": slice_hash(config),
        "memorization_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "device": str(device),
        "threads": int(threads if threads is not None else torch.get_num_threads()),
        "git_commit": _git_commit(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if "seed" in config:
        attrs["seed"] = int(config["seed"])
    for key, value in extra.items():
        attrs[key] = value if isinstance(value, (str, int, float)) else str(value)
    return attrs


def write_artifact(ds: xr.Dataset, path: str | os.PathLike, kind: str, attrs: Mapping) -> Path:
    """Check ``ds`` against the schema of ``kind``, annotate it, write it atomically."""
    if kind not in SCHEMAS:
        raise ValueError(f"unknown artifact kind {kind!r}; known: {sorted(SCHEMAS)}")
    missing = [v for v in SCHEMAS[kind] if v not in ds.variables]
    if missing:
        raise ValueError(f"{kind} artifact is missing variables {missing}")
    ds = ds.copy()
    for name, (long_name, units) in {**SCHEMAS[kind], **OPTIONAL.get(kind, {}), **COORDS}.items():
        if name in ds.variables:
            ds[name].attrs.update(long_name=long_name, units=units)
    unnamed = [n for n in ds.variables if "long_name" not in ds[n].attrs]
    if unnamed:
        raise ValueError(f"{kind} artifact: variables without long_name/units: {unnamed}")
    ds.attrs.update(attrs)
    ds.attrs["kind"] = kind
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, var in ds.data_vars.items()
        if var.dtype.kind in "biuf" and var.size > 1000
    }
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=ENGINE, encoding=encoding))


def _stale_parts(path: Path) -> list[Path]:
    return list(path.parent.glob(f".{glob.escape(path.name)}.*.part"))


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A failed write leaves no file behind; the result gets the usual permissions
    (0666 less the umask), not the temporary file's private 0600. Temporary files
    that an earlier, killed write of the same artifact left behind are removed first
    (each artifact has exactly one writer).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_parts(path):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class ArtifactError(ValueError):
    """An input artifact is unreadable, of the wrong kind, or made from another config."""


def open_artifact(path: str | os.PathLike, kind: str | None = None) -> xr.Dataset:
    """Load an artifact fully into memory (the file is closed on return).

    An unreadable file (truncated, not NetCDF) raises :class:`ArtifactError` naming
    the file and the fix.
    """
    try:
        with xr.open_dataset(path, engine=ENGINE) as ds:
            if kind is not None and ds.attrs.get("kind") != kind:
                raise ArtifactError(
                    f"{path} is a {ds.attrs.get('kind')!r} artifact, expected {kind!r}: "
                    f"delete it (rm {path}) and run snakemake again to rebuild it"
                )
            return ds.load()
    except (OSError, ValueError, RuntimeError) as err:
        if isinstance(err, ArtifactError) or isinstance(err, FileNotFoundError):
            raise
        raise ArtifactError(
            f"{path} cannot be read ({type(err).__name__}: {err}); it is truncated or not "
            f"an artifact of this workflow. Delete it (rm {path}) and run snakemake again "
            "to rebuild it."
        ) from err


def config_of(ds: xr.Dataset) -> dict:
    """The config slice stored in an artifact's provenance."""
    return yaml.safe_load(ds.attrs.get("config", "{}")) or {}


def _differences(stored, expected, prefix: str = "") -> list[str]:
    if isinstance(stored, Mapping) and isinstance(expected, Mapping):
        out = []
        for key in sorted(set(stored) | set(expected), key=str):
            where = f"{prefix}{key}"
            if key not in stored:
                out.append(f"{where} missing in the file (expected {expected[key]!r})")
            elif key not in expected:
                out.append(f"{where} = {stored[key]!r} in the file, not in this config")
            else:
                out.extend(_differences(stored[key], expected[key], where + "."))
        return out
    if stored != expected:
        return [f"{prefix.rstrip('.')}: {stored!r} in the file, {expected!r} in this config"]
    return []


def check_origin(ds: xr.Dataset, path: str | os.PathLike, expected: Mapping) -> None:
    """Refuse an input artifact that was not made from the config slice ``expected``.

    Compares the hash stored in its provenance with the expected slice's; the error
    names the file, the mismatched keys and the command that rebuilds it.
    """
    from .experiment import slice_hash

    if ds.attrs.get("config_hash") == slice_hash(dict(expected)):
        return
    stored = config_of(ds)
    diffs = _differences(stored, dict(expected)) if "config_hash" in ds.attrs else []
    what = "; ".join(diffs[:8]) or "it has no config hash (made by another version or tool)"
    raise ArtifactError(
        f"{path} was not made from this config ({what}). It is stale or belongs to another "
        f"experiment (its provenance says {ds.attrs.get('experiment', 'nothing')!r}). Delete it "
        f"(rm {path}) and run snakemake again, which rebuilds it from the current config."
    )


def preflight(output: str | os.PathLike, needed_bytes: int = 0) -> None:
    """Fail before any compute when ``output`` cannot be written.

    Creates the folder, writes and removes a probe file in it, and checks that the
    filesystem has ``needed_bytes`` free (plus a margin).
    """
    import shutil

    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(
            f"cannot write {path} ({err.strerror or err}); make {path.parent} writable or "
            "set `results:` in the config to a folder you can write"
        ) from err
    free = shutil.disk_usage(path.parent).free
    if needed_bytes and free < 1.2 * needed_bytes + (16 << 20):
        raise OSError(
            f"{path.parent} has {free / 2**20:.0f} MiB free, but {path.name} needs about "
            f"{needed_bytes / 2**20:.0f} MiB; free some space or set `results:` elsewhere"
        )
