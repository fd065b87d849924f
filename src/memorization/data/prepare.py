"""A dataset prepared once into the ``dataset`` artifact (an xarray Dataset).

Every prepared dataset has one ``example`` dimension whose coordinate is the
example's stable id (each source documents its ids), a ``label``, a ``split``
(``train``/``test``) and either the pixels (``image``: ``[example, channel, height,
width]``, uint8 grey levels or float values) or, for an image folder read lazily,
the image files (``path``). The per-channel mean and standard deviation of the
training split (``channel_mean``, ``channel_std``, of pixel values scaled to
``[0, 1]`` for uint8) standardise every split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .sources import load_dataset
from .spec import DatasetSpec, RawData
from .stats import channel_stats

__all__ = ["prepare_dataset", "to_dataset"]


def _channel_stats(raw: RawData, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if raw.exact_stats:
        return channel_stats(raw.images[train])
    # the built-in datasets: float64 means, as in the versions that made earlier results
    scale = 255.0 if raw.images.dtype == np.uint8 else 1.0
    scaled = raw.images[train].astype(np.float64) / scale
    return scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3))


def to_dataset(name: str, raw: RawData) -> xr.Dataset:
    """The artifact's Dataset of a loaded dataset."""
    train = ~raw.is_test
    data = {
        "label": ("example", raw.labels),
        "split": ("example", np.where(raw.is_test, "test", "train").astype(object)),
    }
    if raw.images is not None:
        data["image"] = (("example", "channel", "height", "width"), raw.images)
        mean, std = _channel_stats(raw, train)
    else:
        data["path"] = ("example", np.asarray(raw.paths, dtype=object))
        mean, std = raw.attrs["channel_mean"], raw.attrs["channel_std"]
    # "image" first: the built-in datasets' variable order of earlier versions
    order = ["image", "label", "split", "path"]
    ds = xr.Dataset(
        {k: data[k] for k in order if k in data},
        coords={"example": raw.ids, "class": np.arange(len(raw.classes))},
    )
    ds["class_name"] = ("class", np.array(raw.classes, dtype=object))
    ds.attrs.update(
        {k: v for k, v in raw.attrs.items() if k not in ("channel_mean", "channel_std")}
    )
    ds.attrs.update(
        dataset=name,
        source=raw.source,
        n_train=int(train.sum()),
        n_test=int(raw.is_test.sum()),
        channel_mean=np.asarray(mean, dtype=np.float64).tolist(),
        channel_std=np.asarray(std, dtype=np.float64).tolist(),
    )
    return ds


def prepare_dataset(
    spec: DatasetSpec | str, data_root: str | Path = "data", download: bool = False
) -> xr.Dataset:
    """The dataset as an xarray Dataset (see the module docstring)."""
    spec = DatasetSpec(spec) if isinstance(spec, str) else spec
    return to_dataset(spec.name, load_dataset(spec, data_root, download))
