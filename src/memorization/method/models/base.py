"""The interface of every turn-over model: masks in, logits of either sub-network out.

Every model takes ``forward(x, masks=None)``. ``masks`` is a list with one float
tensor per mask (``[B, units]``, values 0 or the sub-network's scale, from
:meth:`TurnOverNet.turnover_masks`); ``None`` runs the plain model with no masks
(the ordinary network used by the training-dynamics stages).

A masked layer's units are neurons for a Linear layer and whole feature maps
for a convolution (spatial turn-over dropout, the mask broadcast as
``[B, C, 1, 1]``). Every parameter attached to a masked unit (its incoming
weights and bias, its outgoing weights) belongs to exactly one of the two
sub-networks of an example; parameters attached to no masked unit are *shared*
and are listed by :meth:`TurnOverNet.shared_parameter_names`. The output layers
have no bias so that the MLP and VGG-11 (with its default masks) share nothing.

Every model takes the option ``keep_fraction`` (default 1/2, the paper's): the
unmuted sub-network keeps that fraction of every masked layer, scaled by
``1/p``; the muted one the rest, scaled by ``1/(1-p)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..masks import TurnOverMasks, complement

__all__ = ["PrefixSharingNet", "TurnOverNet", "masked_relu", "parameter_counts", "shared_fraction"]


def masked_relu(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """ReLU followed by a turn-over mask ([B, units]; broadcast over feature maps)."""
    out = F.relu(z)
    if mask is None:
        return out
    if z.dim() == 4:
        mask = mask[:, :, None, None]
    return out * mask


class TurnOverNet(nn.Module):
    """Base class: a classifier whose hidden layers carry turn-over masks."""

    #: mask bits of every mask, in forward order
    mask_units: list[int]
    #: fraction of every masked layer that the unmuted sub-network keeps
    keep_fraction: float = 0.5

    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None):
        raise NotImplementedError

    def turnover_masks(
        self,
        seed: int,
        examples: Sequence[int] | np.ndarray,
        device: torch.device | str = "cpu",
        *,
        check_unique: bool = True,
    ) -> TurnOverMasks:
        """This model's masks for these examples (its mask units and keep fraction)."""
        return TurnOverMasks(
            seed,
            self.mask_units,
            examples,
            device,
            check_unique=check_unique,
            keep_fraction=self.keep_fraction,
        )

    def forward_pair(
        self,
        x: torch.Tensor,
        unmuted: Sequence[torch.Tensor],
        muted: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the unmuted and of the muted sub-network of each example.

        ``muted`` defaults to the complements of ``unmuted`` (built only if needed).
        """
        if muted is None:
            muted = complement(unmuted, self.keep_fraction)
        return self(x, unmuted), self(x, muted)

    def shared_parameter_names(self) -> list[str]:
        """Parameters that no mask covers: every example updates them (they leak)."""
        return []

    def _check_masks(self, masks: Sequence[torch.Tensor] | None) -> None:
        if masks is not None and len(masks) != len(self.mask_units):
            raise ValueError(
                f"{type(self).__name__} has {len(self.mask_units)} masked layers, "
                f"got {len(masks)} masks"
            )


class PrefixSharingNet(TurnOverNet):
    """A turn-over network whose first layers precede every mask.

    Subclasses split their forward pass into ``_shared`` (no mask) and ``_rest`` (the masked
    layers): a pair of sub-networks runs the shared layers once.
    """

    def _shared(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _rest(self, h: torch.Tensor, masks: Sequence[torch.Tensor] | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x, masks=None):
        self._check_masks(masks)
        return self._rest(self._shared(x), masks)

    def forward_pair(self, x, unmuted, muted=None):
        muted = complement(unmuted, self.keep_fraction) if muted is None else muted
        self._check_masks(unmuted)
        self._check_masks(muted)
        h = self._shared(x)
        return self._rest(h, unmuted), self._rest(h, muted)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameter entries: ``total``, ``shared`` (no mask covers them), ``covered``."""
    shared_names = set(model.shared_parameter_names())
    total = shared = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        total += p.numel()
        if name in shared_names:
            shared += p.numel()
    return {"total": total, "shared": shared, "covered": total - shared}


def shared_fraction(model: nn.Module) -> float:
    """Shared trainable parameter entries over all trainable parameter entries.

    Works for any :class:`TurnOverNet`; 0 for a model that shares nothing.
    """
    counts = parameter_counts(model)
    return counts["shared"] / counts["total"] if counts["total"] else 0.0
