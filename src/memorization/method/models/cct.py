"""Compact convolutional transformer (CCT) with turn-over dropout.

The architecture follows Hassani et al. (2021), "Escaping the big data paradigm
with compact transformers": a small convolutional tokenizer (each layer a
convolution, a ReLU and a 3x3 stride-2 max-pool; the last one produces
``embed_dim`` channels, flattened to a token sequence), an optional positional
embedding, ``depth`` pre-norm transformer encoder blocks (multi-head
self-attention and an MLP, each behind a layer norm, each added to the residual
stream), a final layer norm, *sequence pooling* (a softmax over a learned
``Linear(embed_dim, 1)`` score of every token, then the score-weighted sum of
the tokens) and a linear head. There is no class token, no dropout and no
stochastic depth: turn-over masks are the only dropout, so the model is
deterministic in both train and eval mode.

Masked layers (``mask_units``, in forward order, named in ``mask_names``):

1. ``tokenizer.{l}`` for every *hidden* tokenizer convolution ``l`` (all but the
   last): spatial turn-over dropout of its feature maps (``[B, C]`` broadcast as
   ``[B, C, 1, 1]``, after ReLU and max-pool). A masked feature map covers the
   convolution's filter and bias for that map, and the next convolution's input
   slices for that map; the last tokenizer convolution is therefore covered
   entirely (column-wise) by the mask before it.
2. ``blocks.{b}.attn``: a ``[B, heads]`` mask on every head's output (the
   attention-weighted values) before the output projection. A muted head
   receives no gradient at all, so the q/k/v rows of a head and the output
   projection's columns of that head belong to one sub-network.
3. ``blocks.{b}.mlp``: the hidden units of the block's MLP (``[B, hidden]``
   broadcast over tokens, after the activation): ``fc1``'s rows and bias and
   ``fc2``'s columns.

Why the last tokenizer convolution is not masked: its output channels *are* the
residual stream's embedding dimensions. Masking them would zero half of every
token's embedding before the positional embedding and the first layer norm,
while every downstream layer (layer norms, q/k/v, ``fc1``, pooling, head) still
reads all embedding dimensions, so the mask would partition no parameter
downstream; the only parameters it could cover are the last convolution's own
filters, which the hidden tokenizer mask already covers. With
``tokenizer_layers=1`` there is no hidden convolution: the single convolution
reads the unmasked image and writes the residual stream, and it is shared.

Shared parameters (:meth:`CCT.shared_parameter_names`): everything that reads or
writes the residual stream without passing through a masked unit, and so gets
gradient from both sub-networks of every example:

- ``pos_embedding`` (learnable positional embedding; ``"sine"`` or ``"none"``
  have no parameters),
- every layer norm (``blocks.{b}.norm1``, ``blocks.{b}.norm2``, ``norm``:
  weight and bias),
- ``pool.weight`` (the sequence-pooling score; it has no bias because a bias is
  invariant under the softmax and would get zero gradient anyway),
- ``head.weight`` (the classifier),
- with ``tokenizer_layers=1``: the single tokenizer convolution's weight; with
  ``heads=1`` (no head mask possible): ``qkv.weight`` and ``proj.weight``.

Biases that would be added to the residual stream (the last tokenizer
convolution, the attention output projection, ``fc2``, the head) are left out
(``bias=False``), as are the q/k/v biases (as in CCT); the hidden tokenizer
convolutions and ``fc1`` keep their biases, which their masks cover.

:func:`shared_fraction` counts parameter *entries* (scalars): the entries of the
shared parameters divided by all trainable entries. Every other entry belongs,
for any example, to exactly one of its sub-networks or to neither (e.g. a
weight from a muted feature map into a kept one), so the shared entries are
exactly the ones that can receive gradient from both sub-networks.
:meth:`CCT.parameter_usage` gives the per-example map of which entries a
sub-network uses, and :meth:`CCT.parameter_partition` the counts.

Default options (:data:`CCT_DEFAULTS`) are a CCT-7/3x2 scaled to 28x28 inputs:
two tokenizer convolutions (64 hidden maps, then 256), 28 -> 14 -> 7, i.e. 49
tokens of width 256, 7 blocks of 4 heads with MLP ratio 2 (about 3.8 M
parameters, 0.6 % shared). A tiny variant for CPU runs (:data:`CCT_TINY`):
``depth=2, heads=2, embed_dim=32, tokenizer_channels=16`` (23.5 k parameters,
9.5 % shared, most of it the positional embedding; ``positional_embedding="sine"``
brings it to 3.1 %). One turn-over training epoch over 4,000 28x28 images at batch
128 takes about 1-2 s on two CPU cores (on a loaded machine,
``torch.set_num_threads(1)`` is much faster than two contended threads).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..masks import check_keep_fraction
from .base import PrefixSharingNet, shared_fraction
from .options import CCT_DEFAULTS, CCT_TINY
from .options import CCT_OPTIONS as OPTIONS

__all__ = ["CCT", "CCT_DEFAULTS", "CCT_TINY", "OPTIONS"]


_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def _sine_embedding(n_tokens: int, dim: int) -> torch.Tensor:
    position = torch.arange(n_tokens, dtype=torch.float64)[:, None]
    freq = torch.pow(10000.0, -(2 * (torch.arange(dim) // 2)).double() / dim)
    angle = position * freq[None, :]
    pe = torch.where(torch.arange(dim) % 2 == 0, torch.sin(angle), torch.cos(angle))
    return pe.float()[None]


class _Attention(nn.Module):
    """Multi-head self-attention with an optional [B, heads] mask on the heads' outputs."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, T, head_dim]
        if mask is not None:
            out = out * mask[:, :, None, None]
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim, bias=False)
        self.act = _ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = self.act(self.fc1(x))
        if mask is not None:
            h = h * mask[:, None, :]
        return self.fc2(h)


class _Block(nn.Module):
    """Pre-norm encoder block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _MLP(dim, hidden, activation)

    def forward(self, x, attn_mask, mlp_mask):
        x = x + self.attn(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x), mlp_mask)


class CCT(PrefixSharingNet):
    """Compact convolutional transformer with turn-over masks (see the module docstring).

    ``in_shape`` is (channels, height, width). ``tokenizer_layers`` convolutions
    (``kernel_size``, stride 1, same padding), each followed by ReLU and a 3x3
    stride-2 max-pool; all but the last have ``tokenizer_channels`` maps, the
    last ``embed_dim``. ``positional_embedding`` is ``"learnable"``, ``"sine"``
    or ``"none"``; ``activation`` (of the encoder MLPs) ``"gelu"`` or ``"relu"``;
    ``keep_fraction`` the share of every masked layer the unmuted sub-network keeps.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        n_classes: int,
        depth: int = 7,
        heads: int = 4,
        embed_dim: int = 256,
        tokenizer_channels: int = 64,
        mlp_ratio: float = 2.0,
        tokenizer_layers: int = 2,
        kernel_size: int = 3,
        positional_embedding: str = "learnable",
        activation: str = "relu",
        keep_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        self.keep_fraction = check_keep_fraction(keep_fraction)
        depth, heads, embed_dim = int(depth), int(heads), int(embed_dim)
        hidden = _check_options(
            depth,
            heads,
            embed_dim,
            int(tokenizer_channels),
            int(tokenizer_layers),
            int(kernel_size),
            positional_embedding,
            activation,
            mlp_ratio,
        )
        self.depth, self.heads, self.embed_dim, self.mlp_hidden = depth, heads, embed_dim, hidden
        self.mask_heads = heads >= 2
        self.mask_units: list[int] = []
        self.mask_names: list[str] = []
        self._build_tokenizer(
            in_shape, embed_dim, int(tokenizer_channels), int(tokenizer_layers), int(kernel_size)
        )
        self.positional_embedding = positional_embedding
        if positional_embedding == "learnable":
            self.pos_embedding = nn.Parameter(torch.zeros(1, self.n_tokens, embed_dim))
            nn.init.trunc_normal_(self.pos_embedding, std=0.2)
        elif positional_embedding == "sine":
            self.register_buffer(
                "pos_buffer", _sine_embedding(self.n_tokens, embed_dim), persistent=False
            )
        self.blocks = nn.ModuleList()
        for b in range(depth):
            self.blocks.append(_Block(embed_dim, heads, hidden, activation))
            if self.mask_heads:
                self.mask_units.append(heads)
                self.mask_names.append(f"blocks.{b}.attn")
            self.mask_units.append(hidden)
            self.mask_names.append(f"blocks.{b}.mlp")

        self.norm = nn.LayerNorm(embed_dim)
        self.pool = nn.Linear(embed_dim, 1, bias=False)
        self.head = nn.Linear(embed_dim, n_classes, bias=False)
        self.apply(self._init_weights)

    def _build_tokenizer(
        self, in_shape, embed_dim: int, tokenizer_channels: int, layers: int, kernel_size: int
    ) -> None:
        """Tokenizer: conv -> ReLU -> max-pool (3, stride 2, padding 1), spatial masks on all
        but the last layer, whose output channels are the residual stream."""
        channels, height, width = (int(s) for s in in_shape)
        self.tokenizer = nn.ModuleList()
        c_in = channels
        for layer in range(layers):
            last = layer == layers - 1
            c_out = embed_dim if last else tokenizer_channels
            conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=not last)
            self.tokenizer.append(conv)
            if not last:
                self.mask_units.append(c_out)
                self.mask_names.append(f"tokenizer.{layer}")
            height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
            c_in = c_out
        self.n_tokens = height * width
        self._n_tokenizer_masks = layers - 1

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # -- forward -------------------------------------------------------------------------

    def _shared(self, x: torch.Tensor) -> torch.Tensor:
        """The first tokenizer layer up to (excluding) its mask: the same for both sub-networks."""
        return F.max_pool2d(F.relu(self.tokenizer[0](x)), 3, stride=2, padding=1)

    def _rest(self, h: torch.Tensor, masks: Sequence[torch.Tensor] | None) -> torch.Tensor:
        n_tok = self._n_tokenizer_masks
        for layer in range(1, len(self.tokenizer)):
            if masks is not None:
                h = h * masks[layer - 1][:, :, None, None]
            h = F.max_pool2d(F.relu(self.tokenizer[layer](h)), 3, stride=2, padding=1)
        x = h.flatten(2).transpose(1, 2)  # [B, tokens, embed_dim]
        if self.positional_embedding == "learnable":
            x = x + self.pos_embedding
        elif self.positional_embedding == "sine":
            x = x + self.pos_buffer
        per_block = 2 if self.mask_heads else 1
        for b, block in enumerate(self.blocks):
            if masks is None:
                attn_mask = mlp_mask = None
            else:
                i = n_tok + per_block * b
                attn_mask = masks[i] if self.mask_heads else None
                mlp_mask = masks[i + per_block - 1]
            x = block(x, attn_mask, mlp_mask)
        x = self.norm(x)
        weights = torch.softmax(self.pool(x), dim=1)  # [B, tokens, 1]
        pooled = (weights * x).sum(dim=1)
        return self.head(pooled)

    # -- shared parameters -----------------------------------------------------------------

    def shared_parameter_names(self) -> list[str]:
        names = []
        if len(self.tokenizer) == 1:
            names.append("tokenizer.0.weight")
        if self.positional_embedding == "learnable":
            names.append("pos_embedding")
        for b in range(self.depth):
            p = f"blocks.{b}"
            names += [f"{p}.norm1.weight", f"{p}.norm1.bias"]
            if not self.mask_heads:
                names += [f"{p}.attn.qkv.weight", f"{p}.attn.proj.weight"]
            names += [f"{p}.norm2.weight", f"{p}.norm2.bias"]
        names += ["norm.weight", "norm.bias", "pool.weight", "head.weight"]
        return names

    def shared_fraction(self) -> float:
        """Shared parameter entries over all trainable parameter entries (see the module doc)."""
        return shared_fraction(self)

    def parameter_usage(self, masks: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Which entries of every parameter the sub-network of one example's masks uses.

        ``masks`` holds one example's masks (``[units]`` or ``[1, units]``, nonzero =
        kept), e.g. ``TurnOverMasks(...).muted(positions)`` indexed at one position.
        Returns a boolean tensor shaped like every parameter: True where the entry can
        influence that sub-network's output (and so receive its gradient). Shared
        parameters are all True; an entry outside the map gets exactly zero gradient.
        """
        self._check_masks(masks)
        keep = [m.reshape(-1).detach().cpu() != 0 for m in masks]
        usage = {name: torch.ones(p.shape, dtype=torch.bool) for name, p in self.named_parameters()}
        n_tok = self._n_tokenizer_masks
        for layer in range(len(self.tokenizer)):
            w = usage[f"tokenizer.{layer}.weight"]
            if layer < n_tok:  # output maps masked
                w &= keep[layer][:, None, None, None]
                usage[f"tokenizer.{layer}.bias"] &= keep[layer]
            if layer > 0:  # input maps masked
                w &= keep[layer - 1][None, :, None, None]
        per_block = 2 if self.mask_heads else 1
        hd = self.embed_dim // self.heads
        for b in range(self.depth):
            i = n_tok + per_block * b
            p = f"blocks.{b}"
            if self.mask_heads:
                head_keep = keep[i].repeat_interleave(hd)  # [embed_dim]
                usage[f"{p}.attn.qkv.weight"] &= head_keep.repeat(3)[:, None]
                usage[f"{p}.attn.proj.weight"] &= head_keep[None, :]
            mlp_keep = keep[i + per_block - 1]
            usage[f"{p}.mlp.fc1.weight"] &= mlp_keep[:, None]
            usage[f"{p}.mlp.fc1.bias"] &= mlp_keep
            usage[f"{p}.mlp.fc2.weight"] &= mlp_keep[None, :]
        return usage

    def parameter_partition(
        self, unmuted: Sequence[torch.Tensor], muted: Sequence[torch.Tensor]
    ) -> dict[str, int]:
        """Parameter entries of one example used by: ``both`` sub-networks (the shared
        entries), ``unmuted`` only, ``muted`` only, ``neither``; and the ``total``."""
        u = self.parameter_usage(unmuted)
        m = self.parameter_usage(muted)
        out = {"both": 0, "unmuted": 0, "muted": 0, "neither": 0, "total": 0}
        for name in u:
            out["both"] += int((u[name] & m[name]).sum())
            out["unmuted"] += int((u[name] & ~m[name]).sum())
            out["muted"] += int((~u[name] & m[name]).sum())
            out["neither"] += int((~u[name] & ~m[name]).sum())
            out["total"] += u[name].numel()
        return out


def _check_options(
    depth,
    heads,
    embed_dim,
    tokenizer_channels,
    tokenizer_layers,
    kernel_size,
    positional_embedding,
    activation,
    mlp_ratio,
) -> int:
    """Refuse impossible options; return the encoder MLP's hidden units."""
    if depth < 1 or heads < 1 or tokenizer_layers < 1:
        raise ValueError("depth, heads and tokenizer_layers must be at least 1")
    if embed_dim % heads:
        raise ValueError(f"embed_dim {embed_dim} is not divisible by heads {heads}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if positional_embedding not in ("learnable", "sine", "none"):
        raise ValueError(f"unknown positional_embedding {positional_embedding!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(_ACTIVATIONS)}")
    hidden = int(round(embed_dim * float(mlp_ratio)))
    if tokenizer_layers > 1 and tokenizer_channels < 2:
        raise ValueError("a masked tokenizer layer needs at least 2 channels")
    if hidden < 2:
        raise ValueError("the encoder MLP needs at least 2 hidden units")
    return hidden
