"""Images of more than 8 bits per pixel (16-bit grey PNGs, 32-bit integer or float
TIFFs) brought to the 8-bit grey levels every image is stored and standardised in.

PIL converts such an image to 8 bits by clipping (a 16-bit value of 1000 becomes 255),
which turns a 16-bit grey image into pure black and white. :func:`to_8bit` scales
instead, one rule per mode, the same for every image of a dataset:

- ``I;16`` (and ``I;16B``, ``I;16L``, ``I;16N``) and ``I``: 16-bit levels ``0..65535``,
  divided by 257 and rounded (65535 becomes 255); ``I`` values outside ``0..65535``
  are refused;
- ``F``: floats read as grey levels ``0..255`` (rounded, as PIL reads them); values
  outside, which PIL would clip, are refused.

Other modes are returned unchanged (PIL's own conversions are exact for them).
"""

from __future__ import annotations

import numpy as np

from .spec import DatasetError

__all__ = ["WIDE_MODES", "to_8bit"]

#: the PIL modes of more than 8 bits per pixel that :func:`to_8bit` scales
WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

_16BIT = 65535


def to_8bit(image, path) -> object:
    """``image`` (a PIL image) as an ``L`` image when its mode is wide, else unchanged."""
    if image.mode not in WIDE_MODES:
        return image
    from PIL import Image  # PIL is imported only where images are decoded (heavy)

    values = np.asarray(image)
    if image.mode == "F":
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
            raise DatasetError(
                f"image file {str(path)!r}: a float image (mode F) is read as grey levels "
                f"0..255, found {float(np.nanmin(values))}..{float(np.nanmax(values))}"
            )
        scaled = np.rint(values.astype(np.float64))
    else:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > _16BIT:
            raise DatasetError(
                f"image file {str(path)!r}: a 32-bit integer image (mode {image.mode}) is read "
                f"as 16-bit grey levels 0..{_16BIT}, found {low}..{high}"
            )
        scaled = np.rint(values.astype(np.float64) / 257)
    return Image.fromarray(scaled.astype(np.uint8))  # 2-D uint8: mode L
