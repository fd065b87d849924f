"""Models with turn-over dropout on their hidden layers.

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

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .masks import KEEP_SCALE, TurnOverMasks, check_keep_fraction, complement

__all__ = [
    "MLP",
    "MODELS",
    "MODEL_OPTIONS",
    "VGG11",
    "TurnOverNet",
    "build_model",
    "complement",
    "masked_relu",
]


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


VGG11_CHANNELS: tuple[int | str, ...] = (
    64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M",
)  # fmt: skip

#: where VGG-11's turn-over masks go: on convolutions' feature maps, or on the classifier's input
MASK_AT = ("convs", "classifier")


def _group_sizes(units: int, groups: int | None) -> list[int]:
    """Sizes of the consecutive unit groups that share one mask bit (as equal as possible)."""
    bits = units if groups is None else min(int(groups), units)
    return [units // bits + (1 if k < units % bits else 0) for k in range(bits)]


class VGG11(PrefixSharingNet):
    """VGG-11 without batch-norm; by default a mask on every convolution's feature maps.

    ``width`` multiplies every layer's channel count (1.0 is the paper's VGG-11).
    A max-pool is skipped once the feature maps are 1 pixel wide, so 28x28 and
    8x8 inputs work as well as CIFAR-10's 32x32.

    Masking options (the defaults are the paper's spatial turn-over dropout on all
    eight convolutions, one mask bit per feature map, half kept):

    - ``masked_layers``: mask only the last that many convolutions (``None``: all
      eight). The convolutions before the first mask are shared by both
      sub-networks (see :meth:`shared_parameter_names`).
    - ``mask_at="classifier"``: no convolution is masked; one mask on the
      flattened features that the output layer reads (Kobayashi et al.'s
      turn-over dropout before the output layer): only the classifier's columns
      are split between the sub-networks, the convolutions are shared. Where the
      last feature maps are 1x1 (32x32 and 28x28 inputs), a feature is a feature
      map, so the last convolution's filters are split as well and this trains
      exactly the model ``masked_layers=1`` trains.
    - ``mask_groups``: one mask bit per group of consecutive feature maps (or
      features), ``mask_groups`` groups per masked layer (a layer with fewer units
      keeps one bit per unit).
    - ``share_masks``: masked layers of equal width use one mask (the same
      feature maps kept in each), so an example has one mask per distinct width.
    - ``keep_fraction``: the unmuted sub-network keeps this fraction of each masked
      layer (scaled by ``1/p``), the muted one the rest (scaled by ``1/(1-p)``).

    Why the options: the pattern of kept feature maps is a per-example code that
    the layers after a mask can read. With masks on all eight convolutions (or
    the last three, shared, grouped by 8, or keeping 1/4) the unmuted
    sub-networks learn each training example through its code rather than its
    image, and both the muted sub-networks and held-out images under fresh masks
    stay near chance. With one masked layer the code is only read linearly by the
    classifier, and grouping its feature maps (``masked_layers=1,
    mask_groups=64``) cuts the code to 64 bits: the muted sub-networks then
    classify their own training images as well as the masked network classifies
    held-out ones (benchmarks/vgg_masking.py; the table is in the README).

    ``mask_units`` lists the mask bits of every mask in forward order (with
    ``share_masks`` one entry per distinct width); the model expands them to
    feature maps itself.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        width: float = 1.0,
        masked_layers: int | None = None,
        keep_fraction: float = 0.5,
        mask_groups: int | None = None,
        share_masks: bool = False,
        mask_at: str = "convs",
    ) -> None:
        super().__init__()
        self.keep_fraction = check_keep_fraction(keep_fraction)
        if mask_at not in MASK_AT:
            raise ValueError(f"mask_at must be one of {MASK_AT}, got {mask_at!r}")
        if mask_groups is not None and int(mask_groups) < 2:
            raise ValueError(f"mask_groups must be at least 2, got {mask_groups}")
        channels, height, width_px = (int(s) for s in in_shape)
        size = min(height, width_px)
        self.convs = nn.ModuleList()
        self.pool_after: list[bool] = []
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
        features = c_in * size * size
        self.mask_at = mask_at
        self.final_size = size
        if mask_at == "classifier":
            if masked_layers is not None:
                raise ValueError(
                    "masked_layers counts masked convolutions: not with mask_at=classifier"
                )
            self.first_masked = n_convs  # no convolution masked
            site_units = [features]
        else:
            if masked_layers is None:
                masked_layers = n_convs
            if not 1 <= masked_layers <= n_convs:
                raise ValueError(
                    f"masked_layers must be between 1 and {n_convs}, got {masked_layers}"
                )
            self.first_masked = n_convs - masked_layers
            site_units = [conv.out_channels for conv in self.convs[self.first_masked :]]
        # masked sites (masked convolutions in order, or the classifier input) -> their mask
        self.share_masks = bool(share_masks)
        self.mask_groups = None if mask_groups is None else int(mask_groups)
        widths = list(dict.fromkeys(site_units)) if self.share_masks else site_units
        sites = range(len(site_units))
        self._site_mask = [widths.index(site_units[k]) if self.share_masks else k for k in sites]
        self._site_groups = [_group_sizes(u, self.mask_groups) for u in site_units]
        self.mask_units = [len(_group_sizes(u, self.mask_groups)) for u in widths]
        self.classifier = nn.Linear(features, n_classes, bias=False)
        self.reset_parameters(turnover=True)

    @property
    def n_sites(self) -> int:
        """Masked layers along the forward path (a shared mask counts at every layer)."""
        return len(self._site_mask)

    def reset_parameters(self, turnover: bool = True) -> None:
        """He initialisation that keeps the activations' scale through 8 layers.

        Without batch-norm the scale of the activations must be kept by the init.
        A turn-over mask keeps a fraction p of the feature maps scaled by 1/p,
        which multiplies their second moment by 1/p (doubles it at p = 1/2, as much
        as ReLU halves it). Each masked layer is compensated by one convolution
        with std sqrt(2p / fan_in) instead of ReLU's sqrt(2 / fan_in) (at p = 1/2,
        gain 1): the first convolution and every convolution whose input is masked.
        The plain model (``turnover=False``) gets ReLU's gain everywhere.
        """
        for i, conv in enumerate(self.convs):
            masked_input = turnover and i > self.first_masked
            compensate = masked_input or (turnover and i == 0)
            gain = math.sqrt(2.0 * self.keep_fraction) if compensate else math.sqrt(2.0)
            fan_in = conv.weight[0].numel()
            nn.init.normal_(conv.weight, 0.0, gain / math.sqrt(fan_in))
            nn.init.zeros_(conv.bias)

    def _expand(self, masks: Sequence[torch.Tensor], site: int) -> torch.Tensor:
        """The [B, units] mask of a masked site from its mask bits."""
        m = masks[self._site_mask[site]]
        sizes = self._site_groups[site]
        if len(sizes) == m.shape[1] and all(s == 1 for s in sizes):
            return m
        if all(s == sizes[0] for s in sizes):
            return m.repeat_interleave(sizes[0], dim=1)
        repeats = torch.tensor(sizes, device=m.device)
        return m.repeat_interleave(repeats, dim=1, output_size=sum(sizes))

    def _shared(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions before the first mask: the same for both sub-networks."""
        for i in range(self.first_masked):
            x = F.relu(self.convs[i](x))
            if self.pool_after[i]:
                x = F.max_pool2d(x, 2)
        return x

    def _rest(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None) -> torch.Tensor:
        for i in range(self.first_masked, len(self.convs)):
            m = None if masks is None else self._expand(masks, i - self.first_masked)
            x = masked_relu(self.convs[i](x), m)
            if self.pool_after[i]:
                x = F.max_pool2d(x, 2)
        x = x.flatten(1)
        if masks is not None and self.mask_at == "classifier":
            x = x * self._expand(masks, 0)
        return self.classifier(x)

    def shared_parameter_names(self) -> list[str]:
        n_shared = self.first_masked
        if self.mask_at == "classifier" and self.final_size == 1:
            n_shared -= 1  # the last convolution's filter c only feeds feature c: split
        return [name for i in range(n_shared) for name in (f"convs.{i}.weight", f"convs.{i}.bias")]


MODELS = {"mlp": MLP, "vgg11": VGG11}

#: model options read from an experiment's config, with their defaults
MODEL_OPTIONS = {
    "mlp": {"hidden": 4096, "keep_fraction": 0.5},
    "vgg11": {
        "width": 1.0,
        "masked_layers": None,
        "keep_fraction": 0.5,
        "mask_groups": None,
        "share_masks": False,
        "mask_at": "convs",
    },
}


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
