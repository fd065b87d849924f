"""NetCDF artifacts: one schema per kind, provenance, atomic writes, origin checks.

Every stage writes its artifact through :func:`write_artifact` and reads its inputs
through :func:`open_artifact`, so every file carries ``long_name`` and ``units`` (or
``flag_values``/``flag_meanings`` for yes/no and class variables) on every variable,
CF global attributes (``Conventions``, ``title``) and the provenance of the run that
made it, and a half-written file never appears under its final name. Each stage's
schema (:class:`Schema`) lies next to its stage function; the ``epoch`` coordinate
means the same everywhere: the number of completed training epochs (0: before
training).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

# once for every process that reads or writes artifacts (the Snakefile, a job, the library),
# before netCDF4 is imported: shared and network file systems often refuse HDF5 locks
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

from collections.abc import Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from ..infra.files import atomic_write, free_bytes  # noqa: E402
from .provenance import slice_hash  # noqa: E402

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "COORDS",
    "ENGINE",
    "ArtifactError",
    "Schema",
    "annotate",
    "Var",
    "check_origin",
    "config_of",
    "flag",
    "label",
    "open_artifact",
    "write_artifact",
]

ENGINE = "netcdf4"
CONVENTIONS = "CF-1.10"


@dataclass(frozen=True)
class Var:
    """A variable's ``long_name`` and ``units``; ``kind`` ``flag`` (yes/no) or ``class``
    (a class index) get ``flag_values``/``flag_meanings`` instead of units."""

    long_name: str
    units: str = "1"
    kind: str = "value"

    def attrs(self, classes: Sequence[str] | None = None) -> dict:
        if self.kind == "flag":
            return {
                "long_name": self.long_name,
                "flag_values": np.array([0, 1], np.int8),
                "flag_meanings": "false true",
            }
        if self.kind == "class":
            out = {"long_name": self.long_name}
            if classes is not None:
                out["flag_values"] = np.arange(len(classes), dtype=np.int64)
                out["flag_meanings"] = " ".join(_token(c) for c in classes)
            return out
        return {"long_name": self.long_name, "units": self.units}


def flag(long_name: str) -> Var:
    return Var(long_name, kind="flag")


def label(long_name: str) -> Var:
    return Var(long_name, kind="class")


def _token(name: str) -> str:
    """A class name as a CF flag meaning (letters, digits and ``_.+-@`` only)."""
    return re.sub(r"[^A-Za-z0-9_.+\-@]", "_", str(name)) or "_"


@dataclass(frozen=True)
class Schema:
    """The variables an artifact kind must hold, those it may hold, and its title."""

    title: str
    required: Mapping[str, Var]
    optional: Mapping[str, Var] = field(default_factory=dict)


#: coordinate -> its variable description (the same in every artifact)
COORDS: dict[str, Var] = {
    "example": Var("example id in the dataset (the dataset artifact's example coordinate)", ""),
    "epoch": Var("completed training epochs (0: before training)", ""),
    "subnet": Var("turn-over sub-network (unmuted: trained on the example; muted: not)", ""),
    "run": Var("training run (all: the whole training set; without_difficult: the control)", ""),
    "replicate": Var("independent turn-over training (its own seed and masks)", ""),
    "seed": Var("seed of an independent training of the study (claim_seeds)", ""),
    "split": Var("dataset split", ""),
    "subset": Var("subset of examples", ""),
    "train_on": Var("subset the model was trained on", ""),
    "evaluate_on": Var("subset the accuracy is measured on", ""),
    "class": Var("class index", ""),
    "corrupt": Var("number of random labels in the training set", ""),
    "model": Var("retrained model (Feldman-Zhang)", ""),
    "half": Var("half of the retrained models", ""),
    "test_example": Var("test example id in the dataset", ""),
    "rank": Var("rank of the influence pair (0: highest)", ""),
    "estimator": Var("memorization estimator", ""),
    "family": Var("kind of estimator", ""),
    "channel": Var("image channel", ""),
    "height": Var("image row", ""),
    "width": Var("image column", ""),
}


class ArtifactError(ValueError):
    """An input artifact is unreadable, of the wrong kind, or made from another config."""


def annotate(
    ds: xr.Dataset,
    kind: str,
    schema: Schema,
    attrs: Mapping,
    classes: Sequence[str] | None = None,
) -> xr.Dataset:
    """A copy of ``ds`` checked against ``schema``, every variable with its ``long_name``
    and ``units`` (or flags), and the global attributes (``attrs``, kind, CF conventions,
    title). ``classes`` (the dataset's class names) describe class-index variables."""
    missing = [v for v in schema.required if v not in ds.variables]
    if missing:
        raise ValueError(f"{kind} artifact is missing variables {missing}")
    ds = ds.copy()
    described = {**schema.required, **schema.optional, **COORDS}
    for name in ds.variables:
        if name in described:
            ds[name].attrs.update(described[name].attrs(classes))
    unnamed = [n for n in ds.variables if "long_name" not in ds[n].attrs]
    if unnamed:
        raise ValueError(f"{kind} artifact: variables without long_name/units: {unnamed}")
    ds.attrs.update(attrs)
    ds.attrs.update(kind=kind, Conventions=CONVENTIONS, title=_title(schema, attrs))
    return ds


def write_artifact(
    ds: xr.Dataset,
    path: str | os.PathLike,
    kind: str,
    schema: Schema,
    attrs: Mapping,
    classes: Sequence[str] | None = None,
) -> Path:
    """Check ``ds`` against ``schema``, annotate it (:func:`annotate`), write it atomically."""
    ds = annotate(ds, kind, schema, attrs, classes)
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, var in ds.data_vars.items()
        if var.dtype.kind in "biuf" and var.size > 1000
    }
    try:
        return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=ENGINE, encoding=encoding))
    except (OSError, RuntimeError) as err:
        folder = Path(path).parent
        free = free_bytes(folder) / 2**20
        raise OSError(
            f"could not write {path} ({type(err).__name__}: {err}); its filesystem has "
            f"{free:.0f} MiB free: free some space, make {folder} writable, or set results: "
            "to another folder, then run again"
        ) from err


def _title(schema: Schema, attrs: Mapping) -> str:
    experiment = attrs.get("experiment")
    return f"{schema.title} ({experiment})" if experiment else schema.title


def open_artifact(path: str | os.PathLike, kind: str | None = None) -> xr.Dataset:
    """Load an artifact fully into memory (the file is closed on return).

    An unreadable file (truncated, not NetCDF) or one of another kind raises
    :class:`ArtifactError` naming the file and the fix.
    """
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    try:
        with xr.open_dataset(path, engine=ENGINE) as ds:
            if kind is not None and ds.attrs.get("kind") != kind:
                raise ArtifactError(
                    f"{path} is a {ds.attrs.get('kind')!r} artifact, expected {kind!r}: "
                    f"delete it (rm {path}) and run snakemake again to rebuild it"
                )
            return ds.load()
    except (OSError, ValueError, RuntimeError) as err:
        if isinstance(err, (ArtifactError, FileNotFoundError)):
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
    if ds.attrs.get("config_hash") == slice_hash(dict(expected)):
        return
    if "config_hash" not in ds.attrs:
        what = "it has no config hash (made by another version or tool)"
    else:
        stored = config_of(ds)
        diffs = _differences(stored, dict(expected))
        if diffs:
            what = "; ".join(diffs[:8])
        elif slice_hash(stored) != ds.attrs.get("config_hash"):
            what = "its config_hash does not match its own stored config (the file was edited)"
        else:
            what = "its config differs from this config"
    raise ArtifactError(
        f"{path} was not made from this config ({what}). It is stale or belongs to another "
        f"experiment (its provenance says {ds.attrs.get('experiment', 'nothing')!r}). Delete it "
        f"(rm {path}) and run snakemake again, which rebuilds it from the current config."
    )
