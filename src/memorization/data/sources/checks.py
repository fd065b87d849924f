"""The checks the dataset sources apply to the raw arrays they read: pixels (real
numbers, finite, training images not constant), labels (integer class indices) and
classes (``0..K-1``, at least two, every one with two training examples or more).

Each check raises a :class:`~memorization.data.spec.DatasetError` that names where the
fault lies (``where``), listing at most a few of the offending values (:func:`some`).
"""

from __future__ import annotations

import numpy as np

from ..spec import DatasetError

__all__ = [
    "PIXEL_KINDS",
    "check_classes",
    "check_pixel_dtype",
    "check_pixels",
    "int_labels",
    "some",
]

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
