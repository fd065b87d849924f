"""The paper's one-hidden-layer MLP with turn-over dropout on its hidden units."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.nn import functional as F

from ..masks import KEEP_SCALE, check_keep_fraction
from .base import TurnOverNet, masked_relu
from .options import MLP_OPTIONS as OPTIONS

__all__ = ["MLP", "OPTIONS"]


class MLP(TurnOverNet):
    """The paper's one-hidden-layer MLP (4096 hidden units in the paper)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        hidden: int = 4096,
        keep_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        self.keep_fraction = check_keep_fraction(keep_fraction)
        in_features = 1
        for s in in_shape:
            in_features *= int(s)
        self.hidden = nn.Linear(in_features, hidden)
        self.output = nn.Linear(hidden, n_classes, bias=False)
        self.mask_units = [hidden]

    def forward(self, x, masks=None):
        self._check_masks(masks)
        z = self.hidden(x.flatten(1))
        return self.output(masked_relu(z, None if masks is None else masks[0]))

    def forward_pair(self, x, unmuted, muted=None):
        # The hidden layer runs once.
        self._check_masks(unmuted)
        h = F.relu(self.hidden(x.flatten(1)))
        logits_unmuted = self.output(h * unmuted[0])
        if muted is not None:
            self._check_masks(muted)
            return logits_unmuted, self.output(h * muted[0])
        # The muted mask is the complement, m = (1 - p u) / (1 - p), and the output layer is
        # linear without bias, so the muted logits are the unmasked network's scaled by
        # 1/(1-p) minus p/(1-p) times the unmuted ones (at p = 1/2: 2 out(h) - unmuted):
        # one masked product instead of two.
        p = self.keep_fraction
        if p == 0.5:
            return logits_unmuted, self.output(h).mul_(KEEP_SCALE).sub_(logits_unmuted)
        muted_logits = self.output(h).mul_(1.0 / (1.0 - p)).sub_(logits_unmuted, alpha=p / (1 - p))
        return logits_unmuted, muted_logits
