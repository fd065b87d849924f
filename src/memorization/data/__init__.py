"""Datasets: where they come from (sources), the prepared artifact, tensors, label corruption.

The names below are read from their modules when first asked for: importing one module of
the package (its spec, a source's options) does not import torch or xarray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ imports them
    from .corruption import CORRUPTION_MODES, corrupt_labels
    from .prepare import prepare_dataset, to_dataset
    from .sources import SOURCES, dataset_info, dataset_spec, load_dataset
    from .spec import DatasetError, DatasetInfo, DatasetSpec, RawData
    from .tensors import TensorSplit, to_tensors

#: each name the package exports -> the module of the package that defines it
_EXPORTS = {
    "CORRUPTION_MODES": "corruption",
    "corrupt_labels": "corruption",
    "prepare_dataset": "prepare",
    "to_dataset": "prepare",
    "SOURCES": "sources",
    "dataset_info": "sources",
    "dataset_spec": "sources",
    "load_dataset": "sources",
    "DatasetError": "spec",
    "DatasetInfo": "spec",
    "DatasetSpec": "spec",
    "RawData": "spec",
    "TensorSplit": "tensors",
    "to_tensors": "tensors",
}

__all__ = [
    "CORRUPTION_MODES",
    "SOURCES",
    "DatasetError",
    "DatasetInfo",
    "DatasetSpec",
    "RawData",
    "TensorSplit",
    "corrupt_labels",
    "dataset_info",
    "dataset_spec",
    "load_dataset",
    "prepare_dataset",
    "to_dataset",
    "to_tensors",
]


def __getattr__(name: str):
    """The exported ``name``, imported from its module on first use (torch and xarray are
    imported only by the modules that need them)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
