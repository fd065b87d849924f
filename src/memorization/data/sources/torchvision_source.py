"""``source: torchvision``: any classification dataset class of ``torchvision.datasets``.

Options:

- ``name`` (required): the class in ``torchvision.datasets`` (``SVHN``, ``CIFAR100``,
  ``KMNIST``, ``STL10``, ...).
- ``root`` (null): the folder the class reads (and downloads) its files in; null:
  the workflow's ``data_root``. ``download: true`` in the workflow config is passed
  on to classes that take ``download``.
- ``args`` ({}): further keyword arguments for both splits (e.g. ``{version: ...}``).
- ``train_args`` / ``test_args`` (null): the keyword arguments that select the
  split; null derives them: ``train=True`` / ``train=False`` for classes that take
  ``train`` (MNIST, CIFAR10/100, ...), else ``split="train"`` / ``split="test"``
  for classes that take ``split`` (SVHN, STL10, ...). Other classes need both.

Pixels come from the dataset's ``data`` array where it has one (its axis order,
``[N, H, W]``, ``[N, H, W, C]`` as CIFAR or ``[N, C, H, W]`` as SVHN, is read off the
axis with 1, 3 or 4 entries, or, where that is ambiguous, off the first image);
otherwise every example is read (``dataset[i][0]``, a PIL image: grey modes give
one channel, others RGB), and all images must then have one size. Labels come
from ``targets``, ``labels`` or ``_labels`` (else ``dataset[i][1]``); class names
from ``classes`` where present, else ``"0".."K-1"``.

Example ids, as for the built-in torchvision datasets: the training examples are
``0..N_train-1`` in the dataset's own order, the test examples ``N_train + index``.

:func:`info` constructs both splits (which reads the files; no pixels converted).
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path

import numpy as np

from ...infra.options import REQUIRED, Option
from ..spec import DatasetError, DatasetInfo, DatasetSpec, RawData
from .checks import check_classes, check_pixels, int_labels
from .layout import channel_axis, joined_images, nchw_shape, to_nchw

__all__ = ["OPTIONS", "info", "load"]

_KWARGS = {"anyOf": [{"type": "null"}, {"type": "object"}]}

OPTIONS: dict[str, Option] = {
    "name": Option(
        REQUIRED, "Class name in torchvision.datasets (e.g. SVHN, CIFAR100).", {"type": "string"}
    ),
    "root": Option(
        None,
        "Folder of the dataset's files; null: the workflow's data_root.",
        {"type": ["string", "null"]},
    ),
    "args": Option({}, "Further keyword arguments of the dataset class.", {"type": "object"}),
    "train_args": Option(
        None,
        "Keyword arguments selecting the training split; null: train=True or split='train'.",
        _KWARGS,
    ),
    "test_args": Option(
        None,
        "Keyword arguments selecting the test split; null: train=False or split='test'.",
        _KWARGS,
    ),
}

_LABEL_ATTRS = ("targets", "labels", "_labels")


def _class(name: str, dataset: str):
    import torchvision.datasets  # heavy: imported only when this source is used

    cls = getattr(torchvision.datasets, str(name), None)
    if not inspect.isclass(cls):
        known = [
            n
            for n in dir(torchvision.datasets)
            if inspect.isclass(getattr(torchvision.datasets, n))
        ]
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise DatasetError(
            f"dataset {dataset!r}: name: torchvision.datasets has no dataset class {name!r}{hint}"
        )
    return cls


def _split_args(cls, opts: dict) -> tuple[dict, dict]:
    train_args, test_args = opts.get("train_args"), opts.get("test_args")
    params = inspect.signature(cls).parameters
    if "train" in params:
        derived = ({"train": True}, {"train": False})
    elif "split" in params:
        derived = ({"split": "train"}, {"split": "test"})
    else:
        derived = None
    if (train_args is None or test_args is None) and derived is None:
        raise DatasetError(
            f"torchvision {cls.__name__} takes neither train nor split: give train_args and "
            "test_args (the keyword arguments that select each split)"
        )
    return (
        dict(derived[0] if train_args is None else train_args),
        dict(derived[1] if test_args is None else test_args),
    )


def _check_keywords(cls, dataset: str, opts: dict, train_args: dict, test_args: dict) -> None:
    """Refuse a keyword the class does not take, naming the option (before it is called:
    the class's own error would read as missing files)."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n in params if n != "root"]
    given = [("args", dict(opts.get("args") or {})), ("train_args", train_args)]
    given.append(("test_args", test_args))
    for option, kwargs in given:
        for key in kwargs:
            if key not in params:
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise DatasetError(
                    f"dataset {dataset!r}: {option}.{key}: torchvision {cls.__name__} takes no "
                    f"argument {key!r}{hint}; its arguments: {', '.join(known)}"
                )


def _construct(spec: DatasetSpec, data_root, download: bool):
    opts = dict(spec.options)
    if "name" not in opts:
        raise DatasetError(f"dataset {spec.name!r} (source: torchvision) needs name")
    cls = _class(opts["name"], spec.name)
    root = str(Path(str(opts.get("root") or data_root)).expanduser())
    train_args, test_args = _split_args(cls, opts)
    takes_download = "download" in inspect.signature(cls).parameters
    _check_keywords(cls, spec.name, opts, train_args, test_args)
    out = []
    for split_args in (train_args, test_args):
        kwargs = {**dict(opts.get("args") or {}), **split_args}
        if takes_download:
            kwargs.setdefault("download", bool(download))
        call = (
            f"torchvision {cls.__name__}({root!r}, "
            + ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            + ")"
        )
        try:
            ds = cls(root, **kwargs)
        except (RuntimeError, OSError, ValueError, TypeError, KeyError) as err:
            hint = "" if download else " (set download: true on a machine with internet)"
            raise DatasetError(
                f"{call} could not be loaded: {err}. Put its files under root={root!r}{hint}."
            ) from err
        out.append((ds, call))
    return cls.__name__, root, out


def _labels(ds, call: str) -> np.ndarray:
    for attr in _LABEL_ATTRS:
        values = getattr(ds, attr, None)
        if values is None or callable(values):
            continue
        values = values.numpy() if hasattr(values, "numpy") else np.asarray(values)
        if values.ndim >= 1 and len(values) == len(ds):
            return int_labels(values, f"{call}.{attr}")
    return int_labels([ds[i][1] for i in range(len(ds))], f"{call}[i][1]")


def _data(ds):
    data = getattr(ds, "data", None)
    if data is None or callable(data):
        return None
    if hasattr(data, "numpy"):  # a torch tensor
        data = data.numpy()
    if isinstance(data, np.ndarray) and data.ndim in (3, 4) and len(data) == len(ds):
        return data
    return None


def _first_image(ds, call: str) -> np.ndarray:
    """The first example's pixels as the dataset gives them (``[H, W]`` or ``[H, W, C]``)."""
    from ..lazy import GREY_MODES  # heavy dependency: data.lazy imports torch

    img = ds[0][0]
    if hasattr(img, "mode"):  # PIL
        img = img.convert("L" if img.mode in GREY_MODES else "RGB")
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise DatasetError(f"{call}[0][0]: an image of shape {arr.shape}, expected [H, W(, C)]")
    return arr


def _layout(data: np.ndarray, ds, call: str) -> str:
    try:
        return channel_axis(data.shape, None, f"{call}.data")
    except DatasetError:
        if data.ndim != 4:
            raise
        first = _first_image(ds, call)  # an ambiguous shape: the first image tells
        hw = first.shape[:2]
        if tuple(data.shape[2:]) == hw and data.shape[1] == (
            1 if first.ndim == 2 else first.shape[2]
        ):
            return "NCHW"
        if tuple(data.shape[1:3]) == hw:
            return "NHWC"
        raise


def _shape(ds, call: str) -> tuple[int, int, int]:
    data = _data(ds)
    if data is not None:
        return nchw_shape(data.shape, _layout(data, ds, call))
    first = _first_image(ds, call)
    return (1, *first.shape) if first.ndim == 2 else (first.shape[2], *first.shape[:2])


def _images(ds, call: str) -> np.ndarray:
    data = _data(ds)
    if data is not None:
        return to_nchw(data, _layout(data, ds, call))
    first = _first_image(ds, call)
    images = None
    for i in range(len(ds)):
        img = ds[i][0]
        if hasattr(img, "mode"):
            img = img.convert("L" if first.ndim == 2 else "RGB")
        arr = np.asarray(img)
        if arr.shape != first.shape:
            raise DatasetError(
                f"{call}[{i}][0] has shape {arr.shape}, the first image {first.shape}: images "
                "of different sizes are not supported (use source: image_folder with size)"
            )
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if images is None:
            dtype = np.uint8 if arr.dtype == np.uint8 else np.float32
            images = np.empty((len(ds), *arr.shape), dtype=dtype)
        images[i] = arr
    return images


def _classes(ds, n_labels: int) -> tuple[tuple[str, ...], int | None]:
    classes = getattr(ds, "classes", None)
    if isinstance(classes, (list, tuple)) and classes:
        return tuple(str(c) for c in classes), len(classes)
    return tuple(str(i) for i in range(n_labels)), None


def _checked(spec, data_root, download):
    name, root, ((train, train_call), (test, test_call)) = _construct(spec, data_root, download)
    tr_y, te_y = _labels(train, train_call), _labels(test, test_call)
    labels = np.concatenate([tr_y, te_y])
    is_test = np.r_[np.zeros(len(tr_y), bool), np.ones(len(te_y), bool)]
    classes, n_classes = _classes(train, int(labels.max()) + 1 if len(labels) else 0)
    counts = check_classes(labels, is_test, n_classes, f"{train_call} labels")
    return name, root, train, train_call, test, test_call, labels, is_test, classes, counts


def info(spec: DatasetSpec, data_root: str | Path = "data") -> DatasetInfo:
    name, root, train, train_call, _, _, _, is_test, classes, counts = _checked(
        spec, data_root, False
    )
    return DatasetInfo(
        n_train=int((~is_test).sum()),
        n_test=int(is_test.sum()),
        shape=_shape(train, train_call),
        classes=classes,
        source=f"torchvision {name}",
        train_class_counts=counts,
    )


def load(spec: DatasetSpec, data_root: str | Path = "data", download: bool = False) -> RawData:
    name, root, train, train_call, test, test_call, labels, is_test, classes, _ = _checked(
        spec, data_root, download
    )
    images = joined_images(
        _images(train, train_call),
        _images(test, test_call),
        lambda tr, te: f"{train_call} images are {tr}, {test_call} images {te}",
    )
    check_pixels(images, is_test, f"torchvision {name} (rows: training, then test examples)")
    return RawData(
        labels=labels,
        is_test=is_test,
        ids=np.arange(len(labels), dtype=np.int64),
        classes=classes,
        source=f"torchvision {name}",
        images=images,
        shape=tuple(images.shape[1:]),
    )
