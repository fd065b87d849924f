"""The public functions: contributions (eq. 4) and cosine similarity (eq. 3)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import backpack_reference, func, hooks
from .cosine import UnitGradientSum
from .modules import resolve_method

__all__ = ["BatchStatistics", "batch_statistics", "contributions", "cosine_similarity"]

_BACKENDS = {"hooks": hooks, "func": func, "backpack": backpack_reference}


@dataclass(frozen=True)
class BatchStatistics:
    """What one forward/backward pass over a mini-batch yields.

    ``loss``: mean loss (detached scalar); ``losses``: per-example losses [B];
    ``contribution``: (v_i · g) / ||g|| [B] (0 if g = 0); ``grad_norm``: ||g||;
    ``sq_norms``: ||v_i||² [B] float64 and ``cosine``: the batch's mean pairwise
    cosine similarity (both ``None`` unless asked for; cosine is NaN for B < 2);
    ``method``: the method that computed them.
    """

    loss: Tensor
    losses: Tensor
    contribution: Tensor
    grad_norm: float
    sq_norms: Tensor | None
    cosine: float | None
    method: str


def _device(model: nn.Module, x: Tensor) -> torch.device:
    for p in model.parameters():
        return p.device
    return x.device


def batch_statistics(
    model: nn.Module, x: Tensor, y: Tensor, method: str = "auto", *, cosine: bool = True
) -> BatchStatistics:
    """Contributions (and, with ``cosine``, the cosine similarity) of a mini-batch.

    Runs one forward and backward pass of the mean cross-entropy and leaves ``p.grad``
    holding its gradient (set to ``None`` first, as ``zero_grad()`` does), so a
    training loop can call this instead of ``loss.backward()`` and then step.
    """
    method = resolve_method(model, method)
    device = _device(model, x)
    x, y = x.to(device), y.to(device)
    with torch.enable_grad():
        out = _BACKENDS[method].batch(model, x, y, cosine)
    # mean_i <v_i, g> = <g, g>: ||g||² comes with the dot products, in float64
    g_norm = math.sqrt(max(float(out["dots"].mean()), 0.0))
    contribution = out["dots"] / g_norm if g_norm > 0 else torch.zeros_like(out["dots"])
    cos = None
    if cosine:
        acc = UnitGradientSum()
        acc.add(out["sq_norms"], out["unit_sum"], out.get("unit_sum_sq", 0.0))
        cos = acc.cosine() if acc.n >= 2 else math.nan
    return BatchStatistics(
        loss=out["loss"],
        losses=out["losses"],
        contribution=contribution.to(out["dtype"]),
        grad_norm=g_norm,
        sq_norms=out.get("sq_norms"),
        cosine=cos,
        method=method,
    )


def contributions(
    model: nn.Module, x: Tensor, y: Tensor, method: str = "auto"
) -> tuple[Tensor, Tensor]:
    """``(loss, contribution)``: the mean loss and (v_i · g) / ||g|| for every example.

    Leaves ``p.grad`` = gradient of the mean loss, like ``zero_grad(); loss.backward()``.
    """
    stats = batch_statistics(model, x, y, method, cosine=False)
    return stats.loss, stats.contribution


def cosine_similarity(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    method: str = "auto",
    chunk_size: int | None = None,
) -> float:
    """Mean pairwise cosine similarity of the examples' gradients (eq. 3).

    The set may be processed ``chunk_size`` examples at a time (``None``: all at once);
    the sum of unit gradients is accumulated across chunks in float64, so the result
    does not depend on the chunking. ``p.grad`` is left untouched. ``x`` and ``y`` may
    live on the CPU; each chunk is moved to the model's device.
    """
    method = resolve_method(model, method)
    backend = _BACKENDS[method]
    device = _device(model, x)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"cosine similarity needs at least 2 examples, got {n}")
    step = n if chunk_size is None else int(chunk_size)
    if step < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    acc = UnitGradientSum()
    with torch.enable_grad():
        for start in range(0, n, step):
            xs = x[start : start + step].to(device)
            ys = y[start : start + step].to(device)
            acc.add(*backend.unit_sum(model, xs, ys, whole_set=step >= n))
    return acc.cosine()
