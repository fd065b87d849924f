"""Datasets: where they come from (sources), the prepared artifact, tensors, label corruption."""

from .corruption import CORRUPTION_MODES, corrupt_labels
from .prepare import prepare_dataset, to_dataset
from .sources import SOURCES, dataset_info, dataset_spec, load_dataset
from .spec import DatasetError, DatasetInfo, DatasetSpec, RawData
from .tensors import TensorSplit, to_tensors

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
