"""A split of a prepared dataset as tensors ready for training.

A dataset with pixels (``image``) gives a float32 tensor; an image folder prepared
lazily (``path``) gives a :class:`~memorization.data.lazy.LazyImages` that decodes
the images of each batch when it is indexed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from .lazy import LazyImages, check_files
from .preprocess import Preprocess, preprocess_images

__all__ = ["TensorSplit", "to_tensors"]


@dataclass
class TensorSplit:
    """One split of a dataset as tensors ready for training, in example order."""

    # float32 [N, C, H, W], standardised with the train split's statistics (a LazyImages
    # for a lazily read image folder: indexing it decodes those rows)
    x: torch.Tensor | LazyImages
    y: torch.Tensor  # int64 [N]
    examples: np.ndarray  # example ids [N]

    def to(self, device) -> TensorSplit:
        return TensorSplit(self.x.to(device), self.y.to(device), self.examples)

    def __len__(self) -> int:
        return len(self.examples)


def _stats(data: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    # (netCDF stores a one-element list attribute as a scalar)
    mean = np.atleast_1d(np.asarray(data.attrs["channel_mean"], dtype=np.float32))[:, None, None]
    std = np.atleast_1d(np.asarray(data.attrs["channel_std"], dtype=np.float32))[:, None, None]
    return mean, std


def to_tensors(
    data: xr.Dataset,
    split: str,
    labels: np.ndarray | None = None,
    preprocess: Preprocess | None = None,
) -> TensorSplit:
    """A split of a prepared dataset as tensors; ``labels`` overrides the stored labels.

    ``preprocess``: the model's own preprocessing (``preprocess: model``: resized to its
    input size, standardised with its mean and std); None: the train split's statistics.
    """
    sel = data.sel(example=data["split"].values == split)
    mean, std = _stats(data)
    size = np.atleast_1d(data.attrs.get("image_size", 0))
    if preprocess is not None:  # lazily read images are decoded at the model's size
        mean, std = preprocess.stats(len(mean))
        size = np.asarray(preprocess.size)
    if "image" not in sel.variables and "path" in sel.variables:
        if "file_size" in sel.variables:  # the files as prepared: refuse changed ones now
            check_files(
                sel["path"].values,
                sel["file_size"].values,
                sel["file_mtime"].values,
                str(data.attrs.get("dataset", "")),
            )
        x = LazyImages(
            sel["path"].values,
            size,
            len(mean),
            mean,
            std,
        )
    elif preprocess is not None:
        x = preprocess_images(sel["image"].values, preprocess)
    else:
        images = sel["image"].values
        scale = np.float32(255.0) if images.dtype == np.uint8 else np.float32(1.0)
        x = torch.from_numpy(np.ascontiguousarray((images.astype(np.float32) / scale - mean) / std))
    y = sel["label"].values if labels is None else np.asarray(labels)
    if len(y) != len(sel["example"]):
        raise ValueError(f"{len(y)} labels for {len(sel['example'])} {split} examples")
    return TensorSplit(
        x,
        torch.as_tensor(y, dtype=torch.int64),
        sel["example"].values.astype(np.int64),
    )
