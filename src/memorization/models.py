"""Models with turn-over dropout on every hidden layer.

Every model takes ``forward(x, masks=None)``. ``masks`` is a list with one float
tensor per masked layer (``[B, units]``, values 0 or ``KEEP_SCALE``, from
:class:`memorization.masks.TurnOverMasks`); ``None`` runs the plain model with
no masks (the ordinary network used by the training-dynamics stages).

A masked layer's units are neurons for a Linear layer and whole feature maps
for a convolution (spatial turn-over dropout, the mask broadcast as
``[B, C, 1, 1]``). Every parameter attached to a masked unit (its incoming
weights and bias, its outgoing weights) belongs to exactly one of the two
sub-networks of an example; parameters attached to no masked unit are *shared*
and are listed by :meth:`TurnOverNet.shared_parameter_names`. The output layers
have no bias so that the MLP and VGG-11 share nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .masks import KEEP_SCALE

__all__ = ["MLP", "VGG11", "TurnOverNet", "build_model", "masked_relu", "MODELS"]


def masked_relu(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """ReLU followed by a turn-over mask ([B, units]; broadcast over feature maps)."""
    out = F.relu(z)
    if mask is None:
        return out
    if z.dim() == 4:
        mask = mask[:, :, None, None]
    return out * mask


def complement(masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The muted masks of unmuted ones (0 <-> KEEP_SCALE)."""
    return [KEEP_SCALE - m for m in masks]


class TurnOverNet(nn.Module):
    """Base class: a classifier whose hidden layers carry turn-over masks."""

    #: units (neurons or feature maps) of every masked layer, in forward order
    mask_units: list[int]

    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None):
        raise NotImplementedError

    def forward_pair(
        self,
        x: torch.Tensor,
        unmuted: Sequence[torch.Tensor],
        muted: Sequence[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the unmuted and of the muted sub-network of each example.

        ``muted`` defaults to the complements of ``unmuted`` (built only if needed).
        """
        return self(x, unmuted), self(x, complement(unmuted) if muted is None else muted)

    def shared_parameter_names(self) -> list[str]:
        """Parameters that no mask covers: every example updates them (they leak)."""
        return []

    def _check_masks(self, masks: Sequence[torch.Tensor] | None) -> None:
        if masks is not None and len(masks) != len(self.mask_units):
            raise ValueError(
                f"{type(self).__name__} has {len(self.mask_units)} masked layers, "
                f"got {len(masks)} masks"
            )


class MLP(TurnOverNet):
    """The paper's one-hidden-layer MLP (4096 hidden units in the paper)."""

    def __init__(self, in_shape: Sequence[int], n_classes: int, hidden: int = 4096) -> None:
        super().__init__()
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
        # The hidden layer runs once. The two masks sum to KEEP_SCALE everywhere and the
        # output layer is linear without bias, so the muted logits are the unmasked
        # network's (scaled) minus the unmuted ones: one masked product instead of two.
        h = F.relu(self.hidden(x.flatten(1)))
        logits_unmuted = self.output(h * unmuted[0])
        return logits_unmuted, self.output(h).mul_(KEEP_SCALE).sub_(logits_unmuted)


VGG11_CHANNELS: tuple[int | str, ...] = (
    64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M",
)  # fmt: skip


class VGG11(TurnOverNet):
    """VGG-11 without batch-norm, a mask on every convolution's feature maps.

    ``width`` multiplies every layer's channel count (1.0 is the paper's VGG-11).
    A max-pool is skipped once the feature maps are 1 pixel wide, so 28x28 and
    8x8 inputs work as well as CIFAR-10's 32x32.

    ``masked_layers`` masks only the last that many convolutions (``None``: all
    eight, as in the paper). Each masked layer halves the share of a path that
    two examples have in common, so with all eight masked an example's unmuted
    sub-network overlaps others' in 1/256 of its paths; narrow networks then
    learn each example through its mask rather than its image (the muted
    sub-networks stay at chance). The convolutions before the first mask are
    shared by both sub-networks (see :meth:`shared_parameter_names`).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        width: float = 1.0,
        masked_layers: int | None = None,
    ) -> None:
        super().__init__()
        channels, height, width_px = (int(s) for s in in_shape)
        size = min(height, width_px)
        self.convs = nn.ModuleList()
        self.pool_after: list[bool] = []
        self.mask_units = []
        c_in = channels
        for item in VGG11_CHANNELS:
            if item == "M":
                if size >= 2:
                    self.pool_after[-1] = True
                    size //= 2
                continue
            c_out = max(2, int(round(item * width)))
            self.convs.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            self.pool_after.append(False)
            c_in = c_out
        n_convs = len(self.convs)
        if masked_layers is None:
            masked_layers = n_convs
        if not 1 <= masked_layers <= n_convs:
            raise ValueError(f"masked_layers must be between 1 and {n_convs}, got {masked_layers}")
        self.first_masked = n_convs - masked_layers
        self.mask_units = [conv.out_channels for conv in self.convs[self.first_masked :]]
        self.classifier = nn.Linear(c_in * size * size, n_classes, bias=False)
        self.reset_parameters(turnover=True)

    def reset_parameters(self, turnover: bool = True) -> None:
        """He initialisation that keeps the activations' scale through 8 layers.

        Without batch-norm the scale of the activations must be kept by the init.
        A turn-over mask keeps half of the feature maps and doubles them, which
        doubles their second moment, as much as ReLU halves it: the masked model
        wants gain 1 (std 1/sqrt(fan_in)); the plain model the ReLU gain sqrt(2).
        """
        for i, conv in enumerate(self.convs):
            masked_input = turnover and i > self.first_masked
            gain = "linear" if masked_input or (turnover and i == 0) else "relu"
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity=gain)
            nn.init.zeros_(conv.bias)

    def forward(self, x, masks=None):
        self._check_masks(masks)
        for i, conv in enumerate(self.convs):
            m = None if masks is None or i < self.first_masked else masks[i - self.first_masked]
            x = masked_relu(conv(x), m)
            if self.pool_after[i]:
                x = F.max_pool2d(x, 2)
        return self.classifier(x.flatten(1))

    def shared_parameter_names(self) -> list[str]:
        return [
            name
            for i, conv in enumerate(self.convs[: self.first_masked])
            for name in (f"convs.{i}.weight", f"convs.{i}.bias")
        ]


MODELS = {"mlp": MLP, "vgg11": VGG11}

#: model options read from an experiment's config, with their defaults
MODEL_OPTIONS = {"mlp": {"hidden": 4096}, "vgg11": {"width": 1.0, "masked_layers": None}}


def build_model(
    name: str, in_shape: Sequence[int], n_classes: int, *, turnover: bool = True, **options
) -> TurnOverNet:
    """Build a model by its config name; options it does not take are ignored.

    ``turnover=False`` initialises it for plain training (no masks).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    kwargs = {k: options.get(k, v) for k, v in MODEL_OPTIONS[name].items()}
    model = MODELS[name](in_shape, n_classes, **kwargs)
    if not turnover and isinstance(model, VGG11):
        model.reset_parameters(turnover=False)
    return model


# The compact convolutional transformer lives in cct.py, which registers itself as
# MODELS["cct"] with its defaults in MODEL_OPTIONS["cct"] (a plain module import, so
# importing either module first works despite the cycle).
from . import cct as _cct  # noqa: E402, F401
