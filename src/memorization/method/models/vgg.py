"""VGG-11 without batch-norm, with spatial turn-over dropout on its feature maps."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..masks import check_keep_fraction
from .base import PrefixSharingNet, masked_relu
from .options import MASK_AT
from .options import VGG_OPTIONS as OPTIONS

__all__ = ["MASK_AT", "OPTIONS", "VGG11", "VGG11_CHANNELS"]

VGG11_CHANNELS: tuple[int | str, ...] = (
    64,
    "M",
    128,
    "M",
    256,
    256,
    "M",
    512,
    512,
    "M",
    512,
    512,
    "M",
)


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
    held-out ones (benchmarks/vgg_masking.py; the table is in docs/departures.md).

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
