"""The per-channel mean and standard deviation of the training images, exactly.

For uint8 images the sums of the pixels and of their squares are kept as exact
integers (:class:`ChannelSums`), so the statistics do not depend on the order the
images are read in: a dataset read as an arrays file, as an image folder with its
pixels, or lazily image by image, standardises to the same bits. Pixel values are
scaled to ``[0, 1]`` (divided by 255).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ChannelSums", "channel_stats"]


class ChannelSums:
    """Exact running sums of uint8 pixels per channel (Python integers: no overflow)."""

    def __init__(self, channels: int) -> None:
        self.total = [0] * channels
        self.squares = [0] * channels
        self.count = 0

    def add(self, images: np.ndarray) -> None:
        """Add a batch ``[N, C, H, W]`` (or one image ``[C, H, W]``) of uint8 pixels."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        flat = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1).astype(np.int64)
        for c in range(flat.shape[0]):
            self.total[c] += int(flat[c].sum())
            self.squares[c] += int((flat[c] * flat[c]).sum())
        self.count += flat.shape[1]

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) per channel of the pixels scaled to [0, 1] (population std)."""
        n = self.count
        if n == 0:
            raise ValueError("no training pixels to compute the channel statistics from")
        mean = [s / (255 * n) for s in self.total]
        var = [
            (n * q - s * s) / (255 * 255 * n * n)
            for s, q in zip(self.total, self.squares, strict=True)
        ]
        return np.array(mean, dtype=np.float64), np.sqrt(np.array(var, dtype=np.float64))


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per channel of ``[N, C, H, W]`` images: exact sums for uint8, float64
    means of the values as given otherwise."""
    if images.dtype == np.uint8:
        sums = ChannelSums(images.shape[1])
        for start in range(0, len(images), chunk):
            sums.add(images[start : start + chunk])
        return sums.stats()
    values = images.astype(np.float64)
    return values.mean(axis=(0, 2, 3)), values.std(axis=(0, 2, 3))
