"""``source: huggingface``: a Hugging Face ``datasets`` dataset (optional extra).

Needs the ``datasets`` package (``pip install 'memorization[huggingface]'``).

Options:

- ``name`` (required): a path to a dataset saved with ``save_to_disk`` (a
  ``DatasetDict`` of splits, or one ``Dataset``), read with ``load_from_disk``;
  anything that is not an existing path is a hub id, read with
  ``datasets.load_dataset(name)`` (from the ``datasets`` cache, or downloaded:
  set ``HF_DATASETS_OFFLINE=1`` to forbid that; the workflow's ``download`` is not
  consulted).
- ``image_column`` (``image``): an ``Image`` feature (PIL images: grey modes give
  one channel, any other mode RGB) or arrays ``[H, W]`` / ``[H, W, C]`` /
  ``[C, H, W]``; all images must have one size.
- ``label_column`` (``label``): integer class indices; a ``ClassLabel`` feature
  names the classes, else they are ``"0".."K-1"``.
- ``train_split`` (``train``) and ``test_split`` (``test``): the splits used; with
  ``test_split: null`` (required for a single saved ``Dataset``) the training split
  is divided with ``test_fraction`` (0.2) and ``split_seed`` (0), stratified
  (scikit-learn ``train_test_split`` of the row indices).

Example ids, as for the built-in torchvision datasets: the training split's rows
are ``0..N_train-1`` in the dataset's own order and the test split's rows
``N_train + index``. With ``test_split: null``, the id is the row index in the
training split (whichever side of the split the row falls on).

:func:`info` opens the dataset (memory-mapped), reads the label column and decodes
one image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...infra.options import REQUIRED, Option
from ..spec import DatasetError, DatasetInfo, DatasetSpec, RawData
from .checks import check_classes, int_labels
from .layout import joined_images
from .split import stratified_split

__all__ = ["OPTIONS", "info", "load"]

OPTIONS: dict[str, Option] = {
    "name": Option(
        REQUIRED,
        "A Hugging Face hub dataset id, or a folder written by save_to_disk.",
        {"type": "string"},
    ),
    "image_column": Option("image", "Column holding the images.", {"type": "string"}),
    "label_column": Option("label", "Column holding the integer class labels.", {"type": "string"}),
    "train_split": Option("train", "Split used for training.", {"type": "string"}),
    "test_split": Option(
        "test",
        "Split used as the test set; null: split the training split with test_fraction.",
        {"type": ["string", "null"]},
    ),
    "test_fraction": Option(
        0.2,
        "Fraction of the training split held out (stratified) when test_split is null.",
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    ),
    "split_seed": Option(
        0, "Seed of the stratified train/test split.", {"type": "integer", "minimum": 0}
    ),
}


def _options(spec: DatasetSpec) -> dict:
    opts = {k: o.default for k, o in OPTIONS.items() if not o.required}
    opts.update(spec.options)
    if "name" not in opts:
        raise DatasetError(f"dataset {spec.name!r} (source: huggingface) needs name")
    return opts


def _open(spec: DatasetSpec):
    """``(options, where, train Dataset, test Dataset or None)``."""
    opts = _options(spec)
    try:
        import datasets  # optional extra (memorization[huggingface]), heavy to import
    except ImportError as err:
        raise DatasetError(
            f"dataset {spec.name!r} (source: huggingface) needs the datasets package: "
            "pip install 'memorization[huggingface]'"
        ) from err
    name = str(opts["name"])
    path = Path(name).expanduser()
    where = f"huggingface dataset {name!r}"
    try:
        if path.exists():
            obj = datasets.load_from_disk(str(path))
        else:
            obj = datasets.load_dataset(name)
    except Exception as err:  # datasets raises many kinds (FileNotFoundError, ConnectionError...)
        raise DatasetError(f"{where} cannot be loaded: {err}") from err
    train_split, test_split = opts["train_split"], opts["test_split"]
    if isinstance(obj, datasets.Dataset):
        if test_split is not None:
            raise DatasetError(
                f"{where} is a single Dataset without splits: set test_split: null to split "
                "it with test_fraction"
            )
        return opts, where, obj, None
    splits = list(obj.keys())
    for key, split in (("train_split", train_split), ("test_split", test_split)):
        if split is not None and split not in obj:
            raise DatasetError(f"{where} has no split {split!r} ({key}); its splits: {splits}")
    return opts, where, obj[train_split], None if test_split is None else obj[test_split]


def _where(where: str, ds, column: str) -> str:
    return (
        f"{where} split {ds.split!s} column {column!r}"
        if ds.split
        else (f"{where} column {column!r}")
    )


def _column(ds, column: str, key: str, where: str) -> None:
    if column not in ds.column_names:
        raise DatasetError(
            f"{where} has no column {column!r} ({key}); its columns: {ds.column_names}"
        )


def _labels(ds, opts, where) -> np.ndarray:
    column = opts["label_column"]
    _column(ds, column, "label_column", where)
    return int_labels(np.asarray(ds[column]), _where(where, ds, column))


def _pixels(img, grey: bool | None, where: str) -> np.ndarray:
    """``[C, H, W]`` of one image (PIL converted to L/RGB; arrays as they are)."""
    from ..lazy import GREY_MODES  # heavy dependency: data.lazy imports torch

    if hasattr(img, "mode"):  # PIL
        if grey is None:
            grey = img.mode in GREY_MODES
        mode = "L" if grey else "RGB"
        arr = np.asarray(img if img.mode == mode else img.convert(mode))
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # PIL: [H, W, C]
    else:
        arr = np.asarray(img)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        if arr.shape[2] in (1, 3, 4) and arr.shape[0] not in (1, 3, 4):
            return arr.transpose(2, 0, 1)
        if arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
            return arr
        raise DatasetError(
            f"{where}: cannot tell the channel axis of an image of shape {arr.shape}"
        )
    raise DatasetError(f"{where}: an image of shape {arr.shape}, expected [H, W(, C)]")


def _images(ds, opts, where, grey: bool | None = None) -> tuple[np.ndarray, bool | None]:
    """``([N, C, H, W], grey)``: ``grey`` from the first PIL image where not given."""
    from ..lazy import GREY_MODES  # heavy dependency: data.lazy imports torch

    column = opts["image_column"]
    _column(ds, column, "image_column", where)
    where = _where(where, ds, column)
    images = None
    for i, row in enumerate(ds.select_columns([column])):
        img = row[column]
        if grey is None and hasattr(img, "mode"):
            grey = img.mode in GREY_MODES
        arr = _pixels(img, grey, f"{where} row {i}")
        if images is None:
            dtype = np.uint8 if arr.dtype == np.uint8 else np.float32
            images = np.empty((len(ds), *arr.shape), dtype=dtype)
        elif arr.shape != images.shape[1:]:
            raise DatasetError(
                f"{where} row {i}: image of shape {arr.shape} (C, H, W), the first is "
                f"{images.shape[1:]}; all images must have one size"
            )
        images[i] = arr
    if images is None:
        raise DatasetError(f"{where}: no rows")
    return images, grey


def _checked(spec: DatasetSpec):
    opts, where, train, test = _open(spec)
    tr_y = _labels(train, opts, where)
    if test is None:
        labels = tr_y
        is_test = stratified_split(
            tr_y,
            opts["test_fraction"],
            opts["split_seed"],
            _where(where, train, opts["label_column"]),
        )
    else:
        te_y = _labels(test, opts, where)
        labels = np.concatenate([tr_y, te_y])
        is_test = np.r_[np.zeros(len(tr_y), bool), np.ones(len(te_y), bool)]
    feature = train.features.get(opts["label_column"])
    names = getattr(feature, "names", None)
    n_classes = len(names) if names else None
    counts = check_classes(labels, is_test, n_classes, _where(where, train, opts["label_column"]))
    classes = tuple(str(n) for n in names) if names else tuple(str(i) for i in range(len(counts)))
    return opts, where, train, test, labels, is_test, classes, counts


def info(spec: DatasetSpec, data_root: str | Path = "data") -> DatasetInfo:
    opts, where, train, _, _, is_test, classes, counts = _checked(spec)
    column = opts["image_column"]
    _column(train, column, "image_column", where)
    first = _pixels(train[0][column], None, f"{_where(where, train, column)} row 0")
    return DatasetInfo(
        n_train=int((~is_test).sum()),
        n_test=int(is_test.sum()),
        shape=tuple(int(s) for s in first.shape),
        classes=classes,
        source=f"huggingface {opts['name']}",
        train_class_counts=counts,
    )


def load(spec: DatasetSpec, data_root: str | Path = "data", download: bool = False) -> RawData:
    opts, where, train, test, labels, is_test, classes, _ = _checked(spec)
    images, grey = _images(train, opts, where)
    if test is not None:
        te_x, _ = _images(test, opts, where, grey)
        images = joined_images(
            images, te_x, lambda tr, te: f"{where}: test images are {te}, training images {tr}"
        )
    return RawData(
        labels=labels,
        is_test=is_test,
        ids=np.arange(len(labels), dtype=np.int64),
        classes=classes,
        source=f"huggingface {opts['name']}",
        images=images,
        shape=tuple(int(s) for s in images.shape[1:]),
    )
