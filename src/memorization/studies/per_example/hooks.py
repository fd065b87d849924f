"""The fast exact path: per-example statistics from layer inputs and output-gradients.

A forward hook on every ``nn.Linear`` / ``nn.Conv2d`` saves the layer's input a_i, and
a tensor hook on its output saves the output-gradient d_i. Written as *tokens*
(positions of a sequence, or the L = H'W' patches of a convolution, unfolded to
K = C_in k_h k_w inputs each), example i's weight gradient is G_i = D_iᵀ A_i
(D_i: [L, O], A_i: [L, K]) and its bias gradient D_iᵀ 1. From these, without ever
forming a batch of per-example gradients:

* the contribution <G_i, Ḡ> = Σ_t d_itᵀ Ḡ a_it, with Ḡ the accumulated ``.grad``
  (for a convolution, ``conv2d(a, Ḡ)`` computes Ḡ a_it at every position);
* the squared norm ||G_i||² = <A_i A_iᵀ, D_i D_iᵀ> (for one token: ||a_i||² ||d_i||²),
  or ||D_iᵀ A_i||² directly when L is large, whichever takes fewer operations;
* the sum of unit gradients Σ_i w_i G_i = (D diag(w))ᵀ A, one matmul over all tokens.

When the batch is the whole set and (n L)² < K O (the MLP's wide layer), the n × n
Gram matrix M_ij = <G_i, G_j> = Σ_{t,s} <a_it, a_js><d_it, d_js> is cheaper still: its
diagonal holds the squared norms, its row sums n <v_i, g> (the contributions), and
wᵀ M w = ||Σ_i w_i G_i||², so neither Ḡ a_i nor the sum of unit vectors is formed.

Everything that enters the cosine similarity (norms, unit sums, Gram matrices) is
computed in float64 from the saved float32 tensors, a chunk of examples at a time so
that the temporaries stay below :data:`CHUNK_ELEMENTS` numbers; contributions alone
need only the model's precision. Extra memory is thus the saved output-gradients (one
activation per layer), a fixed-size chunk and at most one float64 copy of the
parameters (the unit sum) — never batch × parameter count.

The layer kinds (their tokens and dot products) are in :mod:`.layers`, the recording
in :mod:`.recorder`; this module is the algebra over the recorded tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .cosine import inverse_norms
from .layers import Call, Layer
from .modules import trainable_parameters
from .recorder import LayerRecorder

__all__ = ["CHUNK_ELEMENTS", "LayerRecorder", "batch", "unit_sum"]

#: float64 numbers a chunk of per-example temporaries may hold (2**21: 16 MiB)
CHUNK_ELEMENTS = 1 << 21


def _chunks(n: int, per_example: int) -> Iterator[slice]:
    step = max(1, CHUNK_ELEMENTS // max(1, per_example))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _rowdot(x: Tensor, y: Tensor) -> Tensor:
    """<x_i, y_i> for the rows of two [n, m] tensors, without an [n, m] temporary."""
    return torch.bmm(x.unsqueeze(1), y.unsqueeze(2)).view(-1)


def _layer_sq_norms(layer: Layer, n: int) -> tuple[Tensor, tuple | None]:
    """||this layer's part of v_i||² for every example (float64 [n]), unscaled d.

    Also returns the float64 tokens ``(a, d)`` when one call's tokens of all n
    examples were converted at once (for :func:`_layer_unit_sum` to reuse), else None.
    """
    calls = layer.live_calls()
    out = torch.zeros(n, dtype=torch.float64, device=calls[0].d.device if calls else None)
    if not calls:
        return out, None
    k, o = layer.in_features(), layer.out_features()
    tokens = sum(layer.tokens_per_example(c) for c in calls)
    need_a = layer.weight is not None
    gram = tokens * (k + o) <= k * o
    per_example = tokens * (k + o) + (2 * tokens * tokens if gram else k * o)
    a = d = None
    for sl in _chunks(n, per_example):
        a, d = _concat_tokens(layer, calls, sl, need_a)
        if tokens == 1:
            d2 = _rowdot(d[:, 0], d[:, 0])
            if need_a:
                a2 = _rowdot(a[:, 0], a[:, 0])
                out[sl] += (a2 + 1 if layer.bias is not None else a2) * d2
            else:
                out[sl] += d2
            continue
        if need_a:
            if gram:
                out[sl] += ((a @ a.mT) * (d @ d.mT)).sum((1, 2))
            else:
                out[sl] += (d.mT @ a).square().sum((1, 2))
        if layer.bias is not None:
            db = d.sum(1)
            out[sl] += _rowdot(db, db)
    whole = len(calls) == 1 and d is not None and d.shape[0] == n
    return out, (a, d) if whole else None


def _concat_tokens(layer: Layer, calls: list[Call], sl: slice, need_a: bool, dtype=torch.float64):
    parts = [layer.tokens(c, sl, need_a, dtype) for c in calls]
    if len(parts) == 1:
        return parts[0]
    a = torch.cat([p[0] for p in parts], 1) if need_a else None
    return a, torch.cat([p[1] for p in parts], 1)


def _layer_unit_sum(
    layer: Layer, w: Tensor, n: int, cached: tuple | None = None
) -> dict[str, Tensor]:
    """Σ_i w_i (this layer's part of v_i) per parameter (float64), unscaled d.

    ``cached``: the float64 tokens of the layer's only call, all n examples.
    """
    out: dict[str, Tensor] = {}
    calls = layer.live_calls()
    if not calls:
        return out
    k, o = layer.in_features(), layer.out_features()
    need_a = layer.weight is not None
    sw = torch.zeros(o, k, dtype=torch.float64, device=w.device) if need_a else None
    sb = torch.zeros(o, dtype=torch.float64, device=w.device) if layer.bias is not None else None
    for call in calls:
        if cached is not None:
            chunks = [(slice(0, n), cached)]
        else:
            per_example = layer.tokens_per_example(call) * (k + o)
            chunks = ((sl, layer.tokens(call, sl, need_a)) for sl in _chunks(n, per_example))
        for sl, (a, d) in chunks:
            dw = d * w[sl, None, None]
            if sw is not None:
                sw.addmm_(dw.reshape(-1, o).T, a.reshape(-1, k))
            if sb is not None:
                sb += dw.sum((0, 1))
    if sw is not None:
        out[layer.key("weight")] = sw.reshape(layer.weight.shape)
    if sb is not None:
        out[layer.key("bias")] = sb
    return out


def _pairwise_fits(layer: Layer, n: int) -> bool:
    """Whether ||Σ_i w_i G_i||² is cheaper from the n × n Gram matrix than from Σ_i w_i G_i."""
    calls = layer.live_calls()
    if not calls:
        return False
    k, o = layer.in_features(), layer.out_features()
    rows = n * sum(layer.tokens_per_example(c) for c in calls)
    return rows * rows <= k * o and 2 * rows * rows + rows * (k + o) <= CHUNK_ELEMENTS


def _layer_gram(layer: Layer, n: int, dtype=torch.float64) -> Tensor:
    """<G_i, G_j> of this layer's part of the gradients (float64 [n, n]), unscaled d.

    <G_i, G_j> = Σ_{t,s} <a_it, a_js> <d_it, d_js> (+ <Σ_t d_it, Σ_s d_js> for the
    bias). Its diagonal holds the squared norms and wᵀ M w = ||Σ_i w_i G_i||², so the
    sum itself is never formed; only used when :func:`_pairwise_fits`.
    """
    calls = layer.live_calls()
    need_a = layer.weight is not None
    a, d = _concat_tokens(layer, calls, slice(0, n), need_a, dtype)
    tokens = d.shape[1]
    if tokens == 1:
        # one token: the bias term <d_i, d_j> shares the Gram matrix of d
        dd = d[:, 0] @ d[:, 0].T
        if not need_a:
            return dd
        aa = a[:, 0] @ a[:, 0].T
        if layer.bias is not None:
            aa += 1
        return aa.mul_(dd)
    gram = torch.zeros(n, n, dtype=dtype, device=d.device)
    if need_a:
        af, df = a.reshape(n * tokens, -1), d.reshape(n * tokens, -1)
        prod = (af @ af.T).mul_(df @ df.T)
        gram += prod.reshape(n, tokens, n, tokens).sum((1, 3)) if tokens > 1 else prod
    if layer.bias is not None:
        db = d.sum(1)
        gram += db @ db.T
    return gram


class _Reduced(NamedTuple):
    sq_norms: Tensor  # ||v_i||² [n], float64
    unit_sum: dict[str, Tensor]  # Σ_i u_i per parameter, for the layers without a Gram
    unit_sum_sq: float  # ||Σ_i u_i||² restricted to the layers with a Gram matrix
    gram_dots: Tensor | None  # Σ_j <v_i, v_j> over the layers with a Gram matrix, [n]
    gram_layers: set[int]  # indices of those layers


def _reduce(layers: list[Layer], n: int, whole_set: bool) -> _Reduced:
    """Squared norms of the recorded gradients and the sum of their unit vectors.

    The sum is returned per parameter, except — when ``whole_set`` says no other chunk
    will be added — for layers where the n × n Gram matrix M is cheaper: their share
    of ||Σ u_i||² = wᵀ M w is returned as a number, and their share of Σ_j <v_i, v_j>
    (= B <v_i, g> when the chunk is the mini-batch) as ``gram_dots``.
    """
    grams: dict[int, Tensor] = {}
    room = CHUNK_ELEMENTS if whole_set else 0  # float64 numbers the Gram matrices may hold
    sq = torch.zeros(n, dtype=torch.float64)
    gram_dots = None
    gram_layers: set[int] = set()
    cache: dict[int, tuple] = {}
    cache_room = CHUNK_ELEMENTS  # float64 numbers of tokens kept for the second pass
    for i, layer in enumerate(layers):
        if n * n <= room and _pairwise_fits(layer, n):
            grams[i] = _layer_gram(layer, n)
            gram_layers.add(i)
            room -= n * n
            part = grams[i].diagonal()
            row_sums = grams[i].sum(1)
            gram_dots = row_sums if gram_dots is None else gram_dots + row_sums
        else:
            part, tokens = _layer_sq_norms(layer, n)
            size = 0 if tokens is None else sum(t.numel() for t in tokens if t is not None)
            if tokens is not None and size <= cache_room:
                cache[i] = tokens
                cache_room -= size
        sq = sq.to(part.device) + part
    w = inverse_norms(sq)
    total: dict[str, Tensor] = {}
    sum_sq = 0.0
    for i, layer in enumerate(layers):
        if i in grams:
            sum_sq += float(w @ grams.pop(i) @ w)
        else:
            total.update(_layer_unit_sum(layer, w, n, cache.pop(i, None)))
    return _Reduced(sq, total, sum_sq, gram_dots, gram_layers)


def batch(model: nn.Module, x: Tensor, y: Tensor, cosine: bool) -> dict:
    """One forward and backward of the mean loss, as a training step does.

    Leaves ``p.grad`` = gradient of the mean loss (set to None first) and returns the
    loss, per-example losses, <v_i, g> and, with ``cosine``, ||v_i||² and Σ u_i.
    """
    n = x.shape[0]
    for _, p in trainable_parameters(model):
        p.grad = None
    with LayerRecorder(model, n) as rec:
        logits = model(x)
    loss = F.cross_entropy(logits, y)
    losses = F.cross_entropy(logits.detach(), y, reduction="none")
    loss.backward()
    rec.check_all_seen()
    out = {"loss": loss.detach(), "losses": losses, "dtype": logits.dtype}
    # The hooks saw the gradients of the mean loss, d_i / n: with them a layer's
    # <v_i, g> is n <its v_i / n, ḡ> = n Σ_j <v_i / n, v_j / n>, and ||v_i||² is n² times.
    dots = torch.zeros(n, dtype=torch.float64, device=logits.device)
    skip: set[int] = set()
    if cosine:
        red = _reduce(rec.layers, n, whole_set=True)
        out["sq_norms"] = red.sq_norms * (n * n)
        # unit vectors do not depend on the scale of d
        out["unit_sum"], out["unit_sum_sq"] = red.unit_sum, red.unit_sum_sq
        if red.gram_dots is not None:
            dots += red.gram_dots.to(dots.device)
        skip = red.gram_layers
    room = CHUNK_ELEMENTS
    for i, layer in enumerate(rec.layers):
        if i in skip:
            continue
        if not cosine and n * n <= room and _pairwise_fits(layer, n):
            # Σ_j <v_i, v_j> from the Gram matrix, in the model's precision: cheaper
            # than <G_i, Ḡ> when n² < K O (a contribution needs no float64)
            dots += _layer_gram(layer, n, logits.dtype).sum(1, dtype=torch.float64)
            room -= n * n
            continue
        gw = None if layer.weight is None else layer.weight.grad
        gb = None if layer.bias is None else layer.bias.grad
        for call in layer.live_calls():
            dots += layer.dot(call, gw, gb)
    out["dots"] = dots * n
    return out


def unit_sum(
    model: nn.Module, x: Tensor, y: Tensor, whole_set: bool = False
) -> tuple[Tensor, dict[str, Tensor], float]:
    """||v_i||², Σ_i v_i / ||v_i|| of one chunk, and a part of ||Σ u_i||² given as a number.

    The number is 0 unless ``whole_set`` (no other chunk will be added): then layers
    for which it is cheaper give their share of ||Σ u_i||² instead of their share of
    the sum. Every ``p.grad`` is left untouched.
    """
    n = x.shape[0]
    with LayerRecorder(model, n, keep_outputs=True) as rec:
        logits = model(x)
    loss = F.cross_entropy(logits, y, reduction="sum")
    outputs = rec.outputs()
    if outputs and rec.outputs_intact():
        # stop the backward pass at the layer outputs: no weight gradients are computed
        torch.autograd.grad(loss, outputs, allow_unused=True)
    else:
        # a layer output was modified in place: differentiate w.r.t. the parameters, so
        # that the tensor hooks see the gradient of the output before the modification
        params = [p for _, p in trainable_parameters(model)]
        torch.autograd.grad(loss, params, allow_unused=True)
    for layer in rec.layers:
        for call in layer.calls:
            call.z = None
    red = _reduce(rec.layers, n, whole_set)
    return red.sq_norms, red.unit_sum, red.unit_sum_sq
