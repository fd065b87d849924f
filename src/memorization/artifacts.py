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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
import yaml  # noqa: E402

__all__ = ["SCHEMAS", "ENGINE", "atomic_write", "open_artifact", "provenance", "write_artifact"]

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
        "corrupted": ("label replaced by a random different class", "boolean"),
    },
    "scores": {
        "memorization": ("memorization score: loss(muted) - loss(unmuted), eq. 6", _NATS),
        "loss_muted": ("cross-entropy loss of the muted sub-network", _NATS),
        "loss_unmuted": ("cross-entropy loss of the unmuted sub-network", _NATS),
        "prob_muted": ("probability the muted sub-network gives the label", _FRACTION),
        "prob_unmuted": ("probability the unmuted sub-network gives the label", _FRACTION),
        "pred_muted": ("prediction of the muted sub-network", _CLASS),
        "pred_unmuted": ("prediction of the unmuted sub-network", _CLASS),
        "label": ("label the model was trained on", _CLASS),
        "true_label": ("original label", _CLASS),
        "corrupted": ("label replaced by a random different class", "boolean"),
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
}

#: coordinate -> (long_name, units)
COORDS: dict[str, tuple[str, str]] = {
    "example": ("example index in the dataset", ""),
    "epoch": ("training epoch (after this many epochs)", "epochs"),
    "subnet": ("turn-over sub-network", ""),
    "split": ("dataset split", ""),
    "subset": ("subset of examples", ""),
    "train_on": ("subset the model was trained on", ""),
    "evaluate_on": ("subset the accuracy is measured on", ""),
    "class": ("class index", ""),
    "corrupt": ("number of random labels in the training set", "examples"),
}


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(config: Mapping | None = None, *, device: str = "cpu", **extra) -> dict:
    """Global attributes describing how an artifact was made."""
    import torch

    from . import __version__

    attrs = {
        "config": yaml.safe_dump(dict(config or {}), sort_keys=True),
        "memorization_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "device": str(device),
        "git_commit": _git_commit(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if config and "seed" in config:
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
    for name, (long_name, units) in {**SCHEMAS[kind], **COORDS}.items():
        if name in ds.variables:
            ds[name].attrs.update(long_name=long_name, units=units)
    ds.attrs.update(attrs)
    ds.attrs["kind"] = kind
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, var in ds.data_vars.items()
        if var.dtype.kind in "biuf" and var.size > 1000
    }
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=ENGINE, encoding=encoding))


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A failed write leaves no file behind; the result gets the usual permissions
    (0666 less the umask), not the temporary file's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def open_artifact(path: str | os.PathLike, kind: str | None = None) -> xr.Dataset:
    """Load an artifact fully into memory (the file is closed on return)."""
    with xr.open_dataset(path, engine=ENGINE) as ds:
        if kind is not None and ds.attrs.get("kind") != kind:
            raise ValueError(f"{path} is a {ds.attrs.get('kind')!r} artifact, expected {kind!r}")
        return ds.load()


def config_of(ds: xr.Dataset) -> dict:
    """The experiment config stored in an artifact's provenance."""
    return yaml.safe_load(ds.attrs.get("config", "{}")) or {}
