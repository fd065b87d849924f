"""Statistics of a chunk of materialised per-example gradients (BackPACK and torch.func).

``grads`` maps parameter names to tensors ``[c, *param.shape]`` holding the c
per-example gradients. Everything is reduced in float64, a block of rows at a time so
that the float64 temporaries stay below :data:`BLOCK_ELEMENTS` even for a BackPACK
``grad_batch`` of the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

__all__ = ["BLOCK_ELEMENTS", "dots", "dots_and_sq_norms", "sq_norms", "unit_sum"]

#: float64 numbers converted at once (2**21: 16 MiB)
BLOCK_ELEMENTS = 1 << 21


def _blocks(g: Tensor) -> Iterator[tuple[slice, slice, Tensor]]:
    """``(rows, cols, block)``: ``g`` ([c, ...], flattened per row) in float64 blocks.

    Several whole rows per block for small parameters, one row in segments for large
    ones. The block is a view of one reused buffer: valid until the next iteration.
    """
    c = g.shape[0]
    flat = g.detach().reshape(c, -1)
    numel = flat.shape[1]
    cols = min(numel, BLOCK_ELEMENTS)
    rows = max(1, BLOCK_ELEMENTS // max(1, numel)) if cols == numel else 1
    rows = min(rows, c)
    buf = torch.empty(rows * cols, dtype=torch.float64, device=g.device)
    for r0 in range(0, c, rows):
        rs = slice(r0, min(c, r0 + rows))
        for c0 in range(0, numel, cols):
            cs = slice(c0, min(numel, c0 + cols))
            part = flat[rs, cs]
            block = buf[: part.numel()].view(part.shape)
            block.copy_(part)
            yield rs, cs, block


def _zeros(grads: Mapping[str, Tensor]) -> Tensor:
    first = next(iter(grads.values()))
    return torch.zeros(first.shape[0], dtype=torch.float64, device=first.device)


def dots_and_sq_norms(
    grads: Mapping[str, Tensor], gbar: Mapping[str, Tensor | None] | None
) -> tuple[Tensor | None, Tensor]:
    """<v_i, gbar> (None without ``gbar``; a missing entry counts as 0) and ||v_i||²."""
    dots = None if gbar is None else _zeros(grads)
    sq = _zeros(grads)
    for name, g in grads.items():
        ref = None if gbar is None else gbar.get(name)
        if ref is not None:
            ref = ref.detach().reshape(-1).to(device=g.device, dtype=torch.float64)
        for rs, cs, block in _blocks(g):
            sq[rs] += torch.bmm(block.unsqueeze(1), block.unsqueeze(2)).view(-1)
            if ref is not None:
                dots[rs] += block @ ref[cs]
    return dots, sq


def dots(grads: Mapping[str, Tensor], gbar: Mapping[str, Tensor | None]) -> Tensor:
    """<v_i, gbar> for every example i (float64 [c]); a missing gbar entry counts as 0."""
    out = _zeros(grads)
    for name, g in grads.items():
        ref = gbar.get(name)
        if ref is None:
            continue
        ref = ref.detach().reshape(-1).to(device=g.device, dtype=torch.float64)
        for rs, cs, block in _blocks(g):
            out[rs] += block @ ref[cs]
    return out


def sq_norms(grads: Mapping[str, Tensor]) -> Tensor:
    """||v_i||^2 for every example i (float64 [c])."""
    return dots_and_sq_norms(grads, None)[1]


def unit_sum(grads: Mapping[str, Tensor], weights: Tensor) -> dict[str, Tensor]:
    """sum_i weights[i] v_i per parameter (float64, parameter-shaped)."""
    out: dict[str, Tensor] = {}
    for name, g in grads.items():
        w = weights.to(device=g.device, dtype=torch.float64)
        total = torch.zeros(g[0].numel(), dtype=torch.float64, device=g.device)
        for rs, cs, block in _blocks(g):
            total[cs].addmv_(block.T, w[rs])
        out[name] = total.reshape(g.shape[1:])
    return out
