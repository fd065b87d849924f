"""Training-set augmentation applied to a batch of images: random crop and horizontal flip.

The standard CIFAR-10 augmentation: every image is padded by 4 pixels on each
side and a random 32x32 window of it is kept (a shift of up to 4 pixels in each
direction), then it is mirrored left-right with probability 1/2. The images
here are already standardised, so the padding is 0, the training set's mean
colour (torchvision pads the raw image with black before normalising).

An augmentation is a callable ``augment(x, generator) -> x`` on a batch
``[B, C, H, W]``; :func:`memorization.method.training.fit` passes it a CPU generator of
its own, so training stays deterministic for a given seed. The random draws are
made on the CPU and the indexing runs on the batch's device. The config's ``augment``
option names one of :data:`AUGMENTATIONS` for every training run of an experiment.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

__all__ = ["AUGMENTATIONS", "Augment", "RandomCropFlip", "build_augment"]

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class RandomCropFlip:
    """Random crop from a zero-padded image (``padding`` pixels a side), then a random flip.

    ``padding=0`` leaves out the crop, ``flip=False`` the flip.
    """

    def __init__(self, padding: int = 4, flip: bool = True) -> None:
        if padding < 0:
            raise ValueError(f"padding must be non-negative, got {padding}")
        self.padding = int(padding)
        self.flip = bool(flip)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        pad = self.padding
        if pad:
            # offsets into the padded image: 0 .. 2 * pad in each direction, per image
            off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
            padded = F.pad(x, (pad, pad, pad, pad))
            rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            batch = torch.arange(b, device=x.device)[:, None, None, None]
            chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chans, rows, cols]
        if self.flip:
            flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


#: augmentations by their config name
AUGMENTATIONS: dict[str, Callable[[], Augment]] = {
    "crop_flip": RandomCropFlip,
    "flip": lambda: RandomCropFlip(padding=0),
}


def build_augment(name: str | None) -> Augment | None:
    """The augmentation named in a config (``None`` or ``"none"``: no augmentation)."""
    if name is None or name == "none":
        return None
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; known: {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]()
