"""New classifier heads for turn-over: bias-free, optionally with a masked hidden layer.

A classifier's bias is added to every example's logits by both sub-networks, so it is
shared (every example updates it). Like the paper's models (the MLP and VGG-11 have
bias-free output layers), the heads built here have no output bias, so that with
``turnover: head`` nothing in the head is shared.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HiddenHead", "bias_free_head", "replace_module"]


class HiddenHead(nn.Module):
    """``Linear(features, hidden)`` + ReLU + turn-over mask + ``Linear(hidden, classes)``.

    The mask is on the hidden units; the wrapper applies it to the output of ``hidden``
    (before the ReLU, which is the same: ``relu(m * z) = m * relu(z)`` for ``m >= 0``), so
    that ``hidden``'s rows and bias and ``out``'s columns are split between the two
    sub-networks and nothing in the head is shared (``out`` has no bias).
    """

    def __init__(self, in_features: int, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, n_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(x)))


def replace_module(net: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` (dotted) of ``net`` is."""
    parent_name, _, child = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    if isinstance(parent, (nn.Sequential, nn.ModuleList)) and child.isdigit():
        parent[int(child)] = new
    else:
        setattr(parent, child, new)


def bias_free_head(old: nn.Linear, n_classes: int, hidden: int | None = None) -> nn.Module:
    """A fresh head reading ``old``'s features: ``Linear(features, n_classes, bias=False)``,
    or a :class:`HiddenHead` with ``hidden`` units; on ``old``'s device and dtype."""
    features = old.in_features
    ref = old.weight
    if hidden is None:
        new = nn.Linear(features, n_classes, bias=False)
    else:
        new = HiddenHead(features, int(hidden), n_classes)
    return new.to(device=ref.device, dtype=ref.dtype)
