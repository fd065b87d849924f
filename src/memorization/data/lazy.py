"""Images read from their files when a batch asks for them.

:class:`LazyImages` stands in for the ``x`` tensor of a
:class:`~memorization.data.tensors.TensorSplit` of an image folder prepared with
``lazy: true`` (the ``dataset`` artifact holds the files' paths, not the pixels).
Indexing it with rows (a LongTensor, a numpy integer array, a boolean mask, a
slice or an int) decodes only those images and returns them standardised, float32
``[B, C, H, W]`` on its device, exactly as :func:`~memorization.data.tensors.to_tensors`
would have from the pixels; so memory stays bounded by a batch.

:func:`read_image` is the one decoder of image files (shared with
:mod:`memorization.data.sources.image_folder`): grey (``L``) or ``RGB``, resized
with PIL's bilinear filter to ``(H, W)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .depth import to_8bit
from .spec import DatasetError

__all__ = ["GREY_MODES", "LazyImages", "check_files", "file_manifest", "read_image"]

#: PIL modes read as one channel (with ``channels: null``); every other mode as RGB
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def read_image(
    path: str | Path, size: Sequence[int] | None = None, channels: int = 3
) -> np.ndarray:
    """The image in ``path`` as uint8 ``[C, H, W]`` (``size`` = ``(H, W)``: resized)."""
    from PIL import Image  # PIL is imported only where images are decoded (heavy)

    try:
        with Image.open(path) as im:
            mode = "L" if channels == 1 else "RGB"
            wide = to_8bit(im, path)  # 16-bit and float images scaled, not clipped
            out = wide if wide.mode == mode else wide.convert(mode)
            if size is not None and out.size != (int(size[1]), int(size[0])):
                out = out.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
            arr = np.asarray(out, dtype=np.uint8)
    except DatasetError:
        raise  # to_8bit's: it names the file already
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"image file {str(path)!r} cannot be read: {err}") from err
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def file_manifest(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(sizes, mtime_ns)`` of image files, int64 each, as recorded at preparation."""
    stats = [os.stat(p) for p in paths]
    return (
        np.array([s.st_size for s in stats], dtype=np.int64),
        np.array([s.st_mtime_ns for s in stats], dtype=np.int64),
    )


def check_files(
    paths: Sequence[str], sizes: Sequence[int], mtimes: Sequence[int], dataset: str = ""
) -> None:
    """Refuse image files that changed (size or modification time) or vanished since the
    dataset was prepared: its labels, ids and channel statistics describe the old files."""
    bad = []
    for path, size, mtime in zip(paths, sizes, mtimes, strict=True):
        try:
            st = os.stat(path)
        except OSError:
            bad.append(f"{path} (gone)")
            continue
        if st.st_size != size or st.st_mtime_ns != mtime:
            bad.append(f"{path} (changed)")
    if not bad:
        return
    name = f" {dataset!r}" if dataset else ""
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    raise DatasetError(
        f"{len(bad)} image file(s) of dataset{name} changed or vanished since it was "
        f"prepared: {', '.join(bad[:5])}{more}. Prepare the dataset again: run snakemake "
        f"again (it notices the changed folder and rebuilds the dataset{name} and what "
        "depends on it)."
    )


class LazyImages:
    """Standardised float32 images ``[N, C, H, W]``, decoded from ``paths`` per index.

    ``mean`` and ``std`` are per channel, of pixel values scaled to ``[0, 1]``.
    Supports what training and scoring do with a split's ``x``: ``x[rows]`` (rows a
    LongTensor, numpy integer array, boolean tensor or array, slice; an int gives
    one ``[C, H, W]`` image, as for a tensor), ``x.shape``, ``x.device``,
    ``x.dtype``, ``x.to(device)`` and ``len(x)``; :meth:`materialize` decodes all.
    """

    dtype = torch.float32

    def __init__(
        self,
        paths: Sequence[str],
        size: Sequence[int],
        channels: int,
        mean: Sequence[float] | np.ndarray,
        std: Sequence[float] | np.ndarray,
        device: torch.device | str = "cpu",
    ):
        self.paths = np.asarray(paths, dtype=object)
        self.image_size = (int(size[0]), int(size[1]))
        self.channels = int(channels)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"{self.channels} channels but {len(self.mean)} means and {len(self.std)} stds"
            )
        self.device = torch.device(device)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), self.channels, *self.image_size))

    @property
    def ndim(self) -> int:
        return 4

    def size(self, dim: int | None = None):
        """``shape``, or one of its entries (as for a tensor)."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"LazyImages(n={len(self)}, channels={self.channels}, size={self.image_size}, "
            f"device={self.device})"
        )

    def to(self, device) -> LazyImages:
        """The same images, returned on ``device``."""
        return LazyImages(self.paths, self.image_size, self.channels, self.mean, self.std, device)

    def cpu(self) -> LazyImages:
        return self.to("cpu")

    def _rows(self, index) -> tuple[np.ndarray, tuple[int, ...]]:
        """Row numbers (flat) and the index's shape (``()`` for one int)."""
        n = len(self)
        if isinstance(index, slice):
            return np.arange(n)[index], (len(range(*index.indices(n))),)
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        if isinstance(index, (int, np.integer)):
            index = np.asarray(index)
        arr = np.asarray(index)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"boolean index of shape {arr.shape} for {n} images")
            rows = np.flatnonzero(arr)
            return rows, rows.shape
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise IndexError(f"images are indexed by integers, booleans or slices, not {arr.dtype}")
        rows = arr.astype(np.int64).reshape(-1)
        if rows.size and (rows.min() < -n or rows.max() >= n):
            bad = rows[(rows < -n) | (rows >= n)][0]
            raise IndexError(f"index {int(bad)} is out of bounds for {n} images")
        return np.where(rows < 0, rows + n, rows), arr.shape

    def _decode(self, rows: np.ndarray) -> np.ndarray:
        buf = np.empty((len(rows), self.channels, *self.image_size), dtype=np.uint8)
        for j, i in enumerate(rows):
            buf[j] = read_image(self.paths[i], self.image_size, self.channels)
        # the arithmetic of to_tensors for uint8 pixels (bit-identical to lazy: false),
        # in place: one float32 batch in memory
        x = buf.astype(np.float32)
        x /= np.float32(255.0)
        x -= self.mean[:, None, None]
        x /= self.std[:, None, None]
        return x

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, tuple):
            head = self[index[0]]
            lead = head.dim() - 3  # the dimensions the row index made
            return head[(slice(None),) * lead + tuple(index[1:])]
        rows, shape = self._rows(index)
        x = torch.from_numpy(self._decode(rows)).reshape(*shape, *self.shape[1:])
        return x if self.device.type == "cpu" else x.to(self.device)

    def materialize(self, batch_size: int = 1024) -> torch.Tensor:
        """All images as one tensor on the device (decoded ``batch_size`` at a time)."""
        out = torch.empty(self.shape, dtype=torch.float32, device=self.device)
        for start in range(0, len(self), batch_size):
            rows = np.arange(start, min(start + batch_size, len(self)))
            out[start : start + len(rows)] = torch.from_numpy(self._decode(rows))
        return out
