"""The axis order of image arrays: which axis holds the channels, the conversion to
``[N, C, H, W]`` (uint8 kept, anything else float32) and the ``(C, H, W)`` of a shape,
and the training and test images joined into one array."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..spec import DatasetError

__all__ = ["channel_axis", "joined_images", "nchw_shape", "to_nchw"]

#: the number of entries of an axis that can hold the channels (grey, RGB, RGBA)
_CHANNEL_SIZES = (1, 3, 4)


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


def joined_images(
    train: np.ndarray,
    test: np.ndarray,
    mismatch: Callable[[tuple[int, ...], tuple[int, ...]], str],
) -> np.ndarray:
    """The training images, then the test images, in one ``[N, C, H, W]`` array.

    The test images must have the training images' ``(C, H, W)``, else the error
    says ``mismatch(train_chw, test_chw)``; where the two dtypes differ, both become
    float32 (values unchanged)."""
    if train.shape[1:] != test.shape[1:]:
        raise DatasetError(mismatch(train.shape[1:], test.shape[1:]))
    if train.dtype != test.dtype:
        train, test = train.astype(np.float32), test.astype(np.float32)
    return np.concatenate([train, test])
