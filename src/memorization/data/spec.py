"""What a dataset is to the workflow: its spec (name, source, options) and its shape.

A :class:`DatasetSpec` names a dataset and where it comes from: a built-in name
(``mnist5k``, ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``) or an entry of
the config's ``datasets:`` (``source: arrays | image_folder | torchvision |
huggingface`` with that source's options, :mod:`memorization.data.sources`).
:func:`memorization.data.sources.dataset_info` tells its size, image shape and
classes without preparing it (what the config check needs before any job); the
``dataset`` stage prepares it once into ``data/<name>.nc``
(:func:`memorization.data.prepare.prepare_dataset`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DatasetError", "DatasetInfo", "DatasetSpec", "RawData"]


class DatasetError(ValueError):
    """A dataset cannot be read or is not usable; the message names the file and key."""


@dataclass(frozen=True)
class DatasetInfo:
    """Sizes, image shape and class names of a dataset."""

    n_train: int
    n_test: int
    shape: tuple[int, int, int]  # channels, height, width
    classes: tuple[str, ...]
    source: str
    #: examples per class in the training split (None where not known without loading)
    train_class_counts: tuple[int, ...] | None = None


@dataclass
class RawData:
    """A dataset as a source loads it, before it is written as an artifact.

    Either ``images`` (uint8 or float32 ``[N, C, H, W]``) or ``paths`` (image files
    read lazily, ``[N]``) is set. ``ids`` are the stable example ids (the ``example``
    coordinate of every artifact).
    """

    labels: np.ndarray
    is_test: np.ndarray
    ids: np.ndarray
    classes: tuple[str, ...]
    source: str
    images: np.ndarray | None = None
    paths: np.ndarray | None = None
    shape: tuple[int, int, int] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: channel statistics from exact integer sums (:mod:`memorization.data.stats`); the
    #: built-in datasets keep the float64 means of earlier versions (same results as before)
    exact_stats: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset by name: ``source`` and that source's options."""

    name: str
    source: str = "builtin"
    options: Mapping[str, Any] = field(default_factory=dict)
    #: what the source's files are now (:mod:`memorization.data.fingerprint`); None: not
    #: watched (a built-in dataset as installed)
    fingerprint: str | None = None

    def params(self) -> dict:
        """The YAML-able form a config slice records (the fingerprint only when set).
        Options named as a key of its own (torchvision's and huggingface's ``name``) are
        kept apart, under ``options``."""
        out = {"name": self.name, "source": self.source}
        if _RESERVED & set(self.options):
            out["options"] = dict(self.options)
        else:
            out.update(self.options)
        if self.fingerprint is not None:
            out["fingerprint"] = self.fingerprint
        return out

    @classmethod
    def from_params(cls, params: Mapping) -> DatasetSpec:
        params = dict(params)
        fingerprint = params.pop("fingerprint", None)
        name, source = params.pop("name"), params.pop("source")
        if set(params) == {"options"} and isinstance(params["options"], Mapping):
            params = dict(params["options"])
        return cls(name, source, params, fingerprint)


#: the keys of a dataset's params besides its source's options
_RESERVED = frozenset({"name", "source", "fingerprint", "options"})
