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

The checks of pixels, labels and classes (:mod:`.checks`), the axis order
(:mod:`.layout`) and the stratified split (:mod:`.split`) are shared with the other
sources.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...infra.options import REQUIRED, Option
from ..spec import DatasetError, DatasetInfo, DatasetSpec, RawData
from .checks import check_classes, check_pixel_dtype, check_pixels, int_labels, some
from .layout import channel_axis, nchw_shape, to_nchw
from .split import stratified_split

__all__ = ["OPTIONS", "check_file_pixels", "info", "load"]

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
