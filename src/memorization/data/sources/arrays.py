"""``source: arrays``: images and labels from one ``.npz`` or ``.nc`` file.

Options:

- ``path`` (required): the ``.npz`` (``numpy.savez``) or ``.nc`` (netCDF, e.g.
  ``xarray.Dataset.to_netcdf``) file, relative to the working directory of the
  workflow (not to ``data_root``).
- ``images_key`` (``images``): the images, ``[N, H, W]`` (one channel),
  ``[N, H, W, C]`` or ``[N, C, H, W]``; uint8 grey levels are kept as they are,
  any other dtype becomes float32 (values are not rescaled).
- ``labels_key`` (``labels``): the class of every image, ``[N]``, integers ``0..K-1``
  (floats with integral values are accepted).
- ``layout`` (null): ``NCHW`` or ``NHWC``, needed only where the shape does not tell
  which axis holds the channels (the channel axis is the one of 1, 3 or 4 entries;
  e.g. ``[N, 3, 32, 3]`` is ambiguous).
- ``test_fraction`` (0.2) and ``split_seed`` (0): where the file has no ``split``,
  a stratified split (scikit-learn ``train_test_split`` of the row indices with
  ``stratify=labels, random_state=split_seed``); 10,000 rows give exactly
  8,000 train / 2,000 test.

Optional keys in the file: ``split`` (``"train"`` / ``"test"`` per row),
``ids`` (the example ids) and ``class_names`` (``[K]`` strings; then the labels
must lie in ``0..K-1``, else ``K`` is the largest label + 1).

Example ids: the file's ``ids`` where present (unique non-negative integers),
else the row index in the file. Either way an example keeps its id across runs
and across a change of ``test_fraction`` or ``split_seed``. The prepared dataset
lists the examples in the order of their ids.

Everything is checked before any pixel is converted; a :class:`DatasetError`
names the file and the key at fault. :func:`info` reads only the shape and dtype
of the images (the ``.npy`` header inside the ``.npz``, the variable's shape of a
``.nc``) and the small keys (labels, split, ids, class names); pixels that are not
real numbers (complex, strings) are refused from the dtype. :func:`load` (and
:func:`check_file_pixels`, the config check's, for files up to 512 MiB of pixels)
refuses a NaN or infinite pixel in any split, naming its row, and training images
that are all one value.

The helpers :func:`int_labels`, :func:`check_classes`, :func:`stratified_split`
and :func:`to_nchw` are shared with the other sources.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...infra.options import REQUIRED, Option
from ..spec import DatasetError, DatasetInfo, DatasetSpec, RawData

__all__ = [
    "OPTIONS",
    "check_classes",
    "channel_axis",
    "info",
    "int_labels",
    "load",
    "stratified_split",
    "to_nchw",
]

_FRACTION = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}

OPTIONS: dict[str, Option] = {
    "path": Option(
        REQUIRED,
        "The .npz or .nc file holding the images and labels (relative to the working directory).",
        {"type": "string"},
    ),
    "test_fraction": Option(
        0.2,
        "Fraction of the examples held out as a stratified test split (only when the file "
        "has no split).",
        _FRACTION,
    ),
    "split_seed": Option(
        0, "Seed of the stratified train/test split.", {"type": "integer", "minimum": 0}
    ),
    "images_key": Option("images", "Name of the images in the file.", {"type": "string"}),
    "labels_key": Option("labels", "Name of the labels in the file.", {"type": "string"}),
    "layout": Option(
        None,
        "Axis order of 4-D images (NCHW or NHWC), needed only when the shape is ambiguous.",
        {"enum": [None, "NCHW", "NHWC"]},
    ),
}

_SPLIT_KEY, _IDS_KEY, _NAMES_KEY = "split", "ids", "class_names"
_CHANNEL_SIZES = (1, 3, 4)

#: pixel dtypes read: unsigned and signed integers, floats (numpy dtype kinds)
PIXEL_KINDS = "uif"


def some(values, n: int = 5) -> str:
    """At most ``n`` entries of a list, and how many more: messages stay one short line."""
    values = list(values)
    head = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:n])
    more = f", ... and {len(values) - n} more" if len(values) > n else ""
    return f"[{head}{more}]"


def check_pixel_dtype(dtype, where: str) -> None:
    """Refuse pixels that are not real numbers (complex, strings, objects, booleans)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in PIXEL_KINDS:
        what = {
            "c": "complex numbers",
            "U": "strings",
            "S": "bytes",
            "O": "Python objects",
            "b": "booleans",
        }.get(dtype.kind, f"dtype {dtype}")
        raise DatasetError(
            f"{where}: pixels must be real numbers (integers or floats), got {what} "
            f"(dtype {dtype}); convert them, e.g. images.astype(np.float32)"
        )


def check_pixels(
    images: np.ndarray, is_test: np.ndarray, where: str, rows=None, constant: bool = True
) -> None:
    """Refuse NaN or infinite pixels in any split (naming the row) and a training split
    whose images are all one value in a channel (they cannot be standardised; checked
    with ``constant``).

    ``rows``: the row in the file of each image (default: its position)."""
    check_pixel_dtype(images.dtype, where)
    n = len(images)
    if images.dtype.kind == "f":
        for start in range(0, n, 4096):
            chunk = images[start : start + 4096]
            bad = ~np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
            if bad.any():
                i = start + int(np.argmax(bad))
                row = i if rows is None else int(rows[i])
                split = "test" if is_test[i] else "train"
                flat = np.asarray(images[i]).reshape(-1)
                value = flat[~np.isfinite(flat)][0]
                raise DatasetError(
                    f"{where}: the image at row {row} ({split} split) has a pixel {value}; "
                    "every pixel must be a finite number"
                )
    train = np.flatnonzero(~np.asarray(is_test))
    if constant and len(train) and images.ndim == 4:
        for c in range(images.shape[1]):
            first = images[train[0], c].flat[0]
            if all((images[i, c] == first).all() for i in train):
                raise DatasetError(
                    f"{where}: every training image has the value {first} in every pixel of "
                    f"channel {c}: constant images cannot be standardised (their standard "
                    "deviation is 0)"
                )


# --- helpers shared with the other sources ---------------------------------------------


def int_labels(values, where: str) -> np.ndarray:
    """``values`` as int64 ``[N]``; integral floats accepted, anything else refused."""
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DatasetError(f"{where}: labels must be one-dimensional [N], got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.argmax(bad))
            raise DatasetError(
                f"{where}: labels must be integers; found {float(arr[i])} at row {i} "
                f"({int(bad.sum())} non-integral values)"
            )
        return arr.astype(np.int64)
    raise DatasetError(
        f"{where}: labels must be integers (class indices), got dtype {arr.dtype}"
        + (f" (e.g. {arr[0]!r})" if arr.size else "")
    )


def check_classes(
    labels: np.ndarray,
    is_test: np.ndarray,
    n_classes: int | None,
    where: str,
) -> tuple[int, ...]:
    """Check class indices; the number of training examples of each class.

    Labels must lie in ``0..n_classes-1`` (``n_classes`` defaults to the largest + 1),
    there must be at least two classes and every class needs at least two training
    examples (a class left empty by a gap in the labels is refused).
    """
    if len(labels) == 0:
        raise DatasetError(f"{where}: no examples")
    low, high = int(labels.min()), int(labels.max())
    if n_classes is None and high >= len(labels):
        # K classes need 2K examples or more: a larger label is no class index (and
        # counting up to it would allocate memory for every class below it)
        row = int(np.argmax(labels))
        raise DatasetError(
            f"{where}: labels must be class indices 0..K-1 without gaps; found {high} at row "
            f"{row}, more than the {len(labels)} examples (number the classes 0, 1, 2, ...)"
        )
    k = high + 1 if n_classes is None else int(n_classes)
    if low < 0 or high >= k:
        row = int(np.argmax((labels < 0) | (labels >= k)))
        limit = f"class_names has {k} entries" if n_classes is not None else "largest label + 1"
        raise DatasetError(
            f"{where}: labels must lie in 0..{k - 1} ({limit}); found {int(labels[row])} "
            f"at row {row}"
        )
    if k < 2:
        raise DatasetError(f"{where}: at least two classes are needed, found {k}")
    counts = np.bincount(labels[~is_test], minlength=k)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise DatasetError(
            f"{where}: class(es) {some(empty.tolist())} have no training examples (labels must "
            f"be 0..{k - 1} without gaps)"
        )
    few = np.flatnonzero(counts < 2)
    if len(few):
        raise DatasetError(
            f"{where}: every class needs at least 2 training examples; class(es) "
            f"{some(few.tolist())} have {some(counts[few].tolist())}"
        )
    return tuple(int(c) for c in counts)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int, where: str) -> np.ndarray:
    """``is_test`` of a stratified seeded split of the row indices (scikit-learn)."""
    from sklearn.model_selection import train_test_split  # sklearn is slow to import

    if not 0 < float(test_fraction) < 1:
        raise DatasetError(f"{where}: test_fraction must lie in (0, 1), got {test_fraction}")
    counts = np.bincount(labels)
    few = np.flatnonzero((counts > 0) & (counts < 2))
    if len(few):
        raise DatasetError(
            f"{where}: a stratified split needs at least 2 examples of every class; "
            f"class(es) {some(few.tolist())} have 1"
        )
    idx = np.arange(len(labels))
    try:
        _, test = train_test_split(
            idx, test_size=float(test_fraction), stratify=labels, random_state=int(seed)
        )
    except ValueError as err:
        raise DatasetError(
            f"{where}: cannot split with test_fraction={test_fraction}: {err}"
        ) from err
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return is_test


def channel_axis(shape: Sequence[int], layout: str | None, where: str) -> str:
    """``NHW``, ``NCHW`` or ``NHWC`` for images of ``shape``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DatasetError(
            f"{where}: images must be [N,H,W], [N,H,W,C] or [N,C,H,W], got shape {shape}"
        )
    if layout is not None:
        if layout not in ("NCHW", "NHWC"):
            raise DatasetError(f"{where}: layout must be NCHW or NHWC, got {layout!r}")
        return layout
    first, last = shape[1] in _CHANNEL_SIZES, shape[3] in _CHANNEL_SIZES
    if first != last:
        return "NCHW" if first else "NHWC"
    why = "both axis 1 and axis 3" if first else "neither axis 1 nor axis 3"
    raise DatasetError(
        f"{where}: cannot tell the channel axis of images of shape {shape} ({why} could hold "
        "1, 3 or 4 channels); set layout: NCHW or NHWC"
    )


def to_nchw(images: np.ndarray, layout: str) -> np.ndarray:
    """``[N, C, H, W]``: uint8 kept, anything else float32 (values unchanged)."""
    if layout == "NHW":
        images = images[:, None]
    elif layout == "NHWC":
        images = images.transpose(0, 3, 1, 2)
    dtype = np.uint8 if images.dtype == np.uint8 else np.float32
    return np.ascontiguousarray(images, dtype=dtype)


def nchw_shape(shape: Sequence[int], layout: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of images of ``shape`` in ``layout``."""
    if layout == "NHW":
        return (1, int(shape[1]), int(shape[2]))
    if layout == "NHWC":
        return (int(shape[3]), int(shape[1]), int(shape[2]))
    return (int(shape[1]), int(shape[2]), int(shape[3]))


def split_values(values, where: str) -> np.ndarray:
    """``is_test`` from ``"train"`` / ``"test"`` strings."""
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8")
    elif arr.dtype.kind == "O":
        arr = np.array([v.decode() if isinstance(v, bytes) else v for v in arr], dtype=object)
    if arr.dtype.kind not in "UO":
        raise DatasetError(
            f"{where}: split must hold the strings 'train' / 'test', got {arr.dtype}"
        )
    arr = arr.astype(str)
    bad = sorted(set(np.unique(arr)) - {"train", "test"})
    if bad:
        raise DatasetError(f"{where}: split values must be 'train' or 'test'; found {some(bad)}")
    return arr == "test"


def check_ids(values, n: int, where: str) -> np.ndarray:
    """Example ids as int64: ``n`` unique non-negative integers."""
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise DatasetError(f"{where}: ids must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise DatasetError(f"{where}: ids must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and n and int(arr.max()) > np.iinfo(np.int64).max:
        row = int(np.argmax(arr))
        raise DatasetError(
            f"{where}: ids must be at most {np.iinfo(np.int64).max} (2**63 - 1); found "
            f"{int(arr[row])} at row {row}"
        )
    arr = arr.astype(np.int64)
    if n and arr.min() < 0:
        raise DatasetError(f"{where}: ids must be non-negative; found {int(arr.min())}")
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != n:
        dup = uniq[counts > 1]
        raise DatasetError(
            f"{where}: ids must be unique; {len(dup)} repeated, e.g. {some(dup.tolist())}"
        )
    return arr


# --- the file --------------------------------------------------------------------------


class _File:
    """Shapes and values of the keys of an .npz or .nc file (lazily where possible)."""

    def __init__(self, path: Path):
        self.path = path
        if not path.exists():
            raise DatasetError(f"arrays file {str(path)!r} does not exist")
        suffix = path.suffix.lower()
        try:
            if suffix == ".npz":
                if not zipfile.is_zipfile(path):
                    raise DatasetError(
                        f"arrays file {str(path)!r} cannot be opened: it is not an .npz file "
                        "(not a zip archive as numpy.savez writes); write it with "
                        "numpy.savez(path, images=..., labels=...)"
                    )
                self._npz = np.load(path, mmap_mode="r", allow_pickle=False)
                self._nc = None
                self.keys = list(self._npz.files)
            elif suffix in (".nc", ".nc4", ".netcdf", ".h5", ".hdf5"):
                import xarray as xr  # only needed for netCDF files

                self._npz = None
                self._nc = xr.open_dataset(path)
                self.keys = list(self._nc.variables)
            else:
                raise DatasetError(
                    f"arrays file {str(path)!r}: expected an .npz or .nc file, got {suffix!r}"
                )
        except DatasetError:
            raise
        except Exception as err:
            raise DatasetError(f"arrays file {str(path)!r} cannot be opened: {err}") from err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._npz is not None:
            self._npz.close()
        if self._nc is not None:
            self._nc.close()

    def where(self, key: str) -> str:
        return f"{str(self.path)!r} key {key!r}"

    def require(self, key: str, option: str) -> None:
        if key not in self.keys:
            raise DatasetError(
                f"arrays file {str(self.path)!r} has no key {key!r} (option {option}); "
                f"its keys: {sorted(self.keys)}"
            )

    def shape(self, key: str) -> tuple[int, ...]:
        return self.header(key)[0]

    def header(self, key: str) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of a key (the ``.npy`` header only, for an ``.npz``)."""
        if self._nc is not None:
            return tuple(self._nc[key].shape), np.dtype(self._nc[key].dtype)
        try:
            with self._npz.zip.open(key + ".npy") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    return tuple(shape), np.dtype(dtype)
                if version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    return tuple(shape), np.dtype(dtype)
        except (KeyError, ValueError, zipfile.BadZipFile):
            pass
        arr = self.get(key)
        return tuple(arr.shape), arr.dtype

    def get(self, key: str) -> np.ndarray:
        try:
            if self._nc is not None:
                return np.asarray(self._nc[key].values)
            return np.asarray(self._npz[key])
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise DatasetError(
                    f"{self.where(key)} is an object (pickled) array, which is not read; "
                    "store strings as a fixed-width array (np.array(names, dtype=str))"
                ) from err
            raise DatasetError(f"{self.where(key)} cannot be read: {err}") from err
        except Exception as err:
            raise DatasetError(f"{self.where(key)} cannot be read: {err}") from err


def _read(spec: DatasetSpec, with_images: bool):
    opts = spec.options
    if "path" not in opts:
        raise DatasetError(f"dataset {spec.name!r} (source: arrays) needs path")
    path = Path(str(opts["path"])).expanduser()
    images_key = str(opts.get("images_key", OPTIONS["images_key"].default))
    labels_key = str(opts.get("labels_key", OPTIONS["labels_key"].default))
    layout = opts.get("layout")
    with _File(path) as f:
        f.require(images_key, "images_key")
        f.require(labels_key, "labels_key")
        shape, dtype = f.header(images_key)
        check_pixel_dtype(dtype, f.where(images_key))
        order = channel_axis(shape, layout, f.where(images_key))
        labels = int_labels(f.get(labels_key), f.where(labels_key))
        n = int(shape[0])
        if len(labels) != n:
            raise DatasetError(
                f"arrays file {str(path)!r}: {n} images (key {images_key!r}) but "
                f"{len(labels)} labels (key {labels_key!r})"
            )
        names = None
        if _NAMES_KEY in f.keys:
            raw_names = f.get(_NAMES_KEY)
            if raw_names.dtype.kind == "S":
                raw_names = np.char.decode(raw_names, "utf-8")
            if raw_names.ndim != 1 or raw_names.dtype.kind not in "UO":
                raise DatasetError(
                    f"{f.where(_NAMES_KEY)}: class_names must be a 1-D array of strings"
                )
            names = tuple(str(s) for s in raw_names)
            if len(set(names)) != len(names):
                raise DatasetError(f"{f.where(_NAMES_KEY)}: class names must be unique")
        if _IDS_KEY in f.keys:
            ids = check_ids(f.get(_IDS_KEY), n, f.where(_IDS_KEY))
        else:
            ids = np.arange(n, dtype=np.int64)
        if _SPLIT_KEY in f.keys:
            split = f.get(_SPLIT_KEY)
            if split.shape != (n,):
                raise DatasetError(
                    f"{f.where(_SPLIT_KEY)}: split must have shape ({n},), got {split.shape}"
                )
            is_test = split_values(split, f.where(_SPLIT_KEY))
            where = f.where(labels_key)
        else:
            # (the range of the labels first: the split needs valid classes)
            check_classes(
                labels,
                np.zeros(n, bool),
                len(names) if names else None,
                f.where(labels_key),
            )
            where = f"{f.where(labels_key)} (split with test_fraction)"
            is_test = stratified_split(
                labels,
                opts.get("test_fraction", OPTIONS["test_fraction"].default),
                opts.get("split_seed", OPTIONS["split_seed"].default),
                f.where(labels_key),
            )
        counts = check_classes(labels, is_test, len(names) if names else None, where)
        classes = names or tuple(str(i) for i in range(len(counts)))
        # rows in the order of their ids (the example order of every artifact)
        rows = None if np.all(ids[1:] > ids[:-1]) else np.argsort(ids, kind="stable")
        if rows is not None:
            labels, is_test, ids = labels[rows], is_test[rows], ids[rows]
        images = None
        if with_images:
            images = f.get(images_key)
            images = to_nchw(images if rows is None else images[rows], order)
            file_rows = np.arange(n) if rows is None else rows
            check_pixels(images, is_test, f.where(images_key), file_rows)
    return path, shape, order, labels, is_test, ids, classes, counts, images


#: the config check reads the pixels of an arrays file up to this size (a larger file's
#: pixels are checked when the dataset is prepared, still before any training)
CHECK_PIXELS_BYTES = 512 * 2**20


def check_file_pixels(spec: DatasetSpec, max_bytes: int = CHECK_PIXELS_BYTES) -> bool:
    """Refuse NaN, infinite or constant pixels of the file as :func:`load` does, where its
    images take at most ``max_bytes`` (the config check); whether they were read."""
    opts = spec.options
    key = str(opts.get("images_key", OPTIONS["images_key"].default))
    with _File(Path(str(opts["path"])).expanduser()) as f:
        f.require(key, "images_key")
        shape, dtype = f.header(key)
    if float(np.prod(shape, dtype=np.float64)) * dtype.itemsize > max_bytes:
        return False
    _read(spec, with_images=True)
    return True


def info(spec: DatasetSpec, data_root: str | Path = "data") -> DatasetInfo:
    path, shape, order, _, is_test, _, classes, counts, _ = _read(spec, with_images=False)
    return DatasetInfo(
        n_train=int((~is_test).sum()),
        n_test=int(is_test.sum()),
        shape=nchw_shape(shape, order),
        classes=classes,
        source=f"arrays {path}",
        train_class_counts=counts,
    )


def load(spec: DatasetSpec, data_root: str | Path = "data", download: bool = False) -> RawData:
    path, _, _, labels, is_test, ids, classes, _, images = _read(spec, with_images=True)
    return RawData(
        labels=labels,
        is_test=is_test,
        ids=ids,
        classes=classes,
        source=f"arrays {path}",
        images=images,
        shape=tuple(images.shape[1:]),
    )
