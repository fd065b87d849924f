"""The general exact path: per-example gradients with ``torch.func`` (vmap of grad).

Works for any module whose forward treats the examples of a batch independently
(LayerNorm, attention, embeddings, ...). Per-example gradients are materialised, but
only for a chunk of examples at a time, sized so that a chunk holds at most
:data:`CHUNK_BYTES` of gradients; the statistics of each chunk are reduced in float64
(:mod:`memorization.studies.per_example.materialized`) before the next one is computed.

The model must be a plain module: BackPACK's ``extend()`` installs hooks that break
``vmap``, which is why the BackPACK reference works on a deep copy. Randomness inside
the forward (dropout in training mode) is refused by ``vmap``: call ``model.eval()``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from . import materialized
from .cosine import inverse_norms
from .modules import trainable_parameters

__all__ = ["CHUNK_BYTES", "per_example_gradients", "batch", "unit_sum"]

#: bytes of per-example gradients one vmap chunk may hold
CHUNK_BYTES = 256 * 2**20


def per_example_gradients(
    model: nn.Module, x: Tensor, y: Tensor, chunk_size: int | None = None
) -> Iterator[tuple[slice, dict[str, Tensor]]]:
    """Yield ``(rows, {name: [c, *shape]})``: per-example gradients, chunk by chunk."""
    trainable = dict(trainable_parameters(model))
    params = {n: p.detach() for n, p in trainable.items()}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in trainable}
    frozen.update(dict(model.named_buffers()))

    def loss_one(params, xi, yi):
        logits = functional_call(model, {**params, **frozen}, (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))
    n = x.shape[0]
    if chunk_size is None:
        numel = sum(p.numel() * p.element_size() for p in params.values())
        chunk_size = max(1, CHUNK_BYTES // max(1, numel))
    for start in range(0, n, chunk_size):
        sl = slice(start, min(n, start + chunk_size))
        yield sl, per_example(params, x[sl], y[sl])


def batch(model: nn.Module, x: Tensor, y: Tensor, cosine: bool) -> dict:
    """Like :func:`~memorization.studies.per_example.hooks.batch`, per-example gradients by vmap.

    ``p.grad`` is set by an ordinary backward pass of the mean loss on ``model``.
    """
    n = x.shape[0]
    for _, p in trainable_parameters(model):
        p.grad = None
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    losses = F.cross_entropy(logits.detach(), y, reduction="none")
    loss.backward()
    gbar = {name: p.grad for name, p in trainable_parameters(model)}
    dots = torch.zeros(n, dtype=torch.float64, device=logits.device)
    sq = torch.zeros(n, dtype=torch.float64, device=logits.device)
    total: dict[str, Tensor] = {}
    for sl, grads in per_example_gradients(model, x, y):
        if cosine:
            dots[sl], sq[sl] = materialized.dots_and_sq_norms(grads, gbar)
            _add(total, materialized.unit_sum(grads, inverse_norms(sq[sl])))
        else:
            dots[sl] = materialized.dots(grads, gbar)
    out = {"loss": loss.detach(), "losses": losses, "dots": dots, "dtype": logits.dtype}
    if cosine:
        out["sq_norms"] = sq
        out["unit_sum"] = total
    return out


def unit_sum(
    model: nn.Module, x: Tensor, y: Tensor, whole_set: bool = False
) -> tuple[Tensor, dict[str, Tensor], float]:
    """||v_i||² and Σ_i v_i / ||v_i|| of one chunk; ``p.grad`` is not touched."""
    sq = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    total: dict[str, Tensor] = {}
    for sl, grads in per_example_gradients(model, x, y):
        sq[sl] = materialized.sq_norms(grads)
        _add(total, materialized.unit_sum(grads, inverse_norms(sq[sl])))
    return sq, total, 0.0


def _add(total: dict[str, Tensor], part: dict[str, Tensor]) -> None:
    for name, s in part.items():
        if name in total:
            total[name] += s
        else:
            total[name] = s
