"""A model's own preprocessing of images: its input size, mean, std and interpolation.

With ``preprocess: model`` the images are not standardised with the training split's
channel statistics but as the model's pretrained weights expect: pixels scaled to
``[0, 1]``, resized to the model's input size with its interpolation, then standardised
with its mean and std (timm's ``resolve_data_config``, a torchvision weights'
``transforms``). The images are resized whole (no centre crop): they are the user's
framing of the object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["INTERPOLATIONS", "Preprocess", "preprocess_images"]

#: interpolation names (timm's and torchvision's) as torch's ``interpolate`` modes
INTERPOLATIONS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


@dataclass(frozen=True)
class Preprocess:
    """Input size ``(H, W)``, per-channel mean and std of ``[0, 1]`` pixels, interpolation."""

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation {self.interpolation!r} of the model's preprocessing: "
                f"known are {', '.join(INTERPOLATIONS)}"
            )
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} of the model do not fit")

    def for_channels(self, channels: int) -> Preprocess:
        """The same for ``channels`` channels: a 3-channel mean/std averaged for grey."""
        if len(self.mean) == channels:
            return self
        if channels == 1:
            one = (float(np.mean(self.mean)),), (float(np.mean(self.std)),)
            return Preprocess(self.size, *one, self.interpolation)
        raise ValueError(
            f"the model's preprocessing has {len(self.mean)} channels, the images {channels}"
        )

    def stats(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32 ``[C, 1, 1]`` for ``channels`` channels."""
        fit = self.for_channels(channels)
        mean = np.asarray(fit.mean, dtype=np.float32)[:, None, None]
        return mean, np.asarray(fit.std, dtype=np.float32)[:, None, None]


def preprocess_images(images: np.ndarray, spec: Preprocess, chunk: int = 256) -> torch.Tensor:
    """``[N, C, H, W]`` images (uint8, or floats in ``[0, 1]``) as float32 ``[N, C, *size]``
    resized with the model's interpolation and standardised with its mean and std."""
    scale = np.float32(255.0) if images.dtype == np.uint8 else np.float32(1.0)
    mean, std = (torch.from_numpy(a) for a in spec.stats(images.shape[1]))
    mode = INTERPOLATIONS[spec.interpolation]
    size: Sequence[int] = tuple(int(s) for s in spec.size)
    out = torch.empty((len(images), images.shape[1], *size), dtype=torch.float32)
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(images[start : start + chunk].astype(np.float32) / scale)
        if tuple(x.shape[2:]) != size:
            smooth = mode != "nearest"  # antialias when shrinking, as PIL resizes
            x = F.interpolate(x, size=size, mode=mode, antialias=smooth, align_corners=None)
            if mode == "bicubic":  # bicubic overshoots: keep the pixels in [0, 1]
                x = x.clamp_(0.0, 1.0)
        out[start : start + chunk] = (x - mean) / std
    return out
