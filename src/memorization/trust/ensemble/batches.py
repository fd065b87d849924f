"""One epoch's batches of K models: each model's own order, padded where subsets differ.

Each model's batches are ``fit``'s order of its subset; where the subsets differ in size,
a step's batches are padded to the widest with rows of weight 0."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["epoch_batches"]


def epoch_batches(
    positions: list[Tensor], generators: list[torch.Generator], batch_size: int
) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """One epoch's steps: (rows [K, b], weights [K, b], active [K] or None).

    Model k's batches are ``fit``'s: its positions in a fresh random order, cut into
    ``batch_size`` pieces. ``weights`` is 1/len(batch) on a model's rows and 0 on padding;
    a model whose epoch has no batch left at a step is not ``active`` (None: all are).
    """
    device = positions[0].device
    orders = [
        pos[torch.randperm(len(pos), generator=g).to(device)]
        for pos, g in zip(positions, generators, strict=True)
    ]
    sizes = [len(o) for o in orders]
    n_steps = max(math.ceil(s / batch_size) for s in sizes)
    if len(set(sizes)) == 1:
        yield from _equal_batches(torch.stack(orders), n_steps, batch_size)
        return
    for s in range(n_steps):
        lo = s * batch_size
        yield _padded([o[lo : lo + batch_size] for o in orders], device)


def _equal_batches(stacked: Tensor, n_steps: int, batch_size: int):
    """The steps of subsets of one size: every model's batch of the same width."""
    for s in range(n_steps):
        lo = s * batch_size
        rows = stacked[:, lo : lo + batch_size]
        weights = torch.full(rows.shape, 1.0 / rows.shape[1], device=stacked.device)
        yield rows, weights, None


def _padded(pieces: list[Tensor], device) -> tuple[Tensor, Tensor, Tensor | None]:
    """One step of the models' batches ``pieces`` padded to the widest with weight 0."""
    width = max(len(p) for p in pieces)
    rows = torch.zeros(len(pieces), width, dtype=torch.int64, device=device)
    weights = torch.zeros(len(pieces), width, device=device)
    for k, p in enumerate(pieces):
        rows[k, : len(p)] = p
        if len(p):
            weights[k, : len(p)] = 1.0 / len(p)
    active = torch.tensor([len(p) > 0 for p in pieces], device=device)
    return rows, weights, None if bool(active.all()) else active
