"""Where a dataset comes from: one module per ``source``.

Each source module defines ``OPTIONS`` (its config keys besides ``source``, as
:class:`~memorization.infra.options.Option` s), ``info(spec, data_root)`` (sizes,
shape, classes: cheap, for the config check) and ``load(spec, data_root,
download)`` (a :class:`~memorization.data.spec.RawData`). Adding a source is one
module and one line in :data:`SOURCES`.

Sources: ``builtin`` (the named datasets), ``arrays`` (an .npz/.nc file),
``image_folder`` (class subfolders of image files, read lazily by default),
``torchvision`` (any ``torchvision.datasets`` class) and ``huggingface`` (the
optional ``datasets`` package). None imports torchvision's datasets, PIL or
``datasets`` until it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from ...infra.options import resolve
from ..spec import DatasetError, DatasetInfo, DatasetSpec, RawData
from . import arrays, builtin, huggingface, image_folder, torchvision_source

__all__ = ["SOURCES", "dataset_info", "dataset_spec", "load_dataset", "source"]

#: ``source:`` name -> its module
SOURCES: dict[str, ModuleType] = {
    "builtin": builtin,
    "arrays": arrays,
    "image_folder": image_folder,
    "torchvision": torchvision_source,
    "huggingface": huggingface,
}


def source(name: str) -> ModuleType:
    if name not in SOURCES:
        raise DatasetError(f"unknown dataset source {name!r}; known: {sorted(SOURCES)}")
    return SOURCES[name]


def dataset_spec(name: str, datasets: Mapping | None = None) -> DatasetSpec:
    """The spec of dataset ``name``: an entry of the config's ``datasets:``, else built in."""
    entry = (datasets or {}).get(name)
    if entry is None:
        return DatasetSpec(str(name))
    entry = dict(entry)
    kind = entry.pop("source")
    return DatasetSpec(str(name), kind, resolve(source(kind).OPTIONS, entry))


def dataset_info(spec: DatasetSpec, data_root: str | Path = "data") -> DatasetInfo:
    """Sizes, shape and classes of a dataset (no pixels prepared where avoidable)."""
    return source(spec.source).info(spec, data_root)


def load_dataset(spec: DatasetSpec, data_root: str | Path = "data", download=False) -> RawData:
    """The dataset as its source reads it."""
    return source(spec.source).load(spec, data_root, download)
