"""Mean pairwise cosine similarity (eq. 3) from a running sum of unit gradients.

For n vectors with unit versions u_i = v_i / ||v_i||,

    mean_{i != j} cos(v_i, v_j) = (||sum_i u_i||^2 - sum_i ||u_i||^2) / (n (n - 1)),

and sum_i ||u_i||^2 = n. The sum is kept per parameter in float64: with mean cosines
around 1e-6 a float32 sum loses the answer in rounding. An example whose gradient is
exactly zero has no direction; like :func:`torch.nn.functional.cosine_similarity` it
counts as cosine 0 with every other example (u_i = 0, still one of the n).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["inverse_norms", "UnitGradientSum"]


def inverse_norms(sq_norms: Tensor) -> Tensor:
    """1 / ||v_i|| from squared norms (float64), 0 where the gradient is zero."""
    sq = sq_norms.to(torch.float64)
    return torch.where(sq > 0, sq.clamp_min(torch.finfo(torch.float64).tiny).rsqrt(), 0.0)


class UnitGradientSum:
    """Accumulates sum_i u_i over chunks of examples and yields the mean cosine.

    A chunk may hand over part of the sum already squared (``sum_sq``: ||part||²,
    cheaper for some layers than the part itself); that is only exact when the chunk
    is the whole set, so adding anything to, or after, such a chunk raises.
    """

    def __init__(self) -> None:
        self.total: dict[str, Tensor] = {}
        self.n = 0
        self.n_nonzero = 0
        self.sum_sq = 0.0

    def add(self, sq_norms: Tensor, unit_sum: Mapping[str, Tensor], sum_sq: float = 0.0) -> None:
        """Add a chunk: squared norms [c], sum of unit vectors per parameter, ``sum_sq``.

        The tensors of ``unit_sum`` are taken over (accumulated into, not copied).
        """
        if self.n and (sum_sq or self.sum_sq):
            raise ValueError("a pre-squared part of the unit sum must cover the whole set")
        self.n += int(sq_norms.numel())
        self.n_nonzero += int((sq_norms > 0).sum())
        self.sum_sq += float(sum_sq)
        for name, s in unit_sum.items():
            s = s.to(torch.float64)
            if name in self.total:
                self.total[name] += s
            else:
                self.total[name] = s

    def squared_norm(self) -> float:
        """||sum_i u_i||^2 over all parameters (float64)."""
        return self.sum_sq + sum(
            float(torch.dot(s.ravel(), s.ravel())) for s in self.total.values()
        )

    def cosine(self) -> float:
        """Mean pairwise cosine similarity of everything added so far."""
        if self.n < 2:
            raise ValueError(f"cosine similarity needs at least 2 examples, got {self.n}")
        return (self.squared_norm() - self.n_nonzero) / (self.n * (self.n - 1))
