"""What the hooks path records of a layer, and what it must know of each layer kind.

A :class:`Call` is one call of a hooked layer: its input a and, after backward, its
output-gradient d. A :class:`Layer` holds a module, the parameters of it that are
trained and its calls; each layer kind (one module of this package each) writes its
calls as *tokens* (A [c, L, K], D [c, L, O]: example i's weight gradient is D_iᵀ A_i)
and computes <v_i, Ḡ> for every example.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Call", "Layer"]


class Call:
    """One call of a hooked layer: its input and, after backward, its output-gradient."""

    __slots__ = ("a", "a_version", "z", "z_version", "out_shape", "d")

    def __init__(self, a: Tensor, z: Tensor, keep_output: bool) -> None:
        self.a = a.detach()
        self.a_version = a._version
        self.z = z if keep_output else None
        self.z_version = z._version
        self.out_shape = z.shape
        self.d: Tensor | None = None

    def save_grad(self, grad: Tensor) -> None:
        self.d = grad if self.d is None else self.d + grad


class Layer:
    """A hooked layer, the parameters of it that are trained, and its calls."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        w, b = module.weight, module.bias
        self.weight = w if w.requires_grad else None
        self.bias = b if b is not None and b.requires_grad else None
        self.calls: list[Call] = []

    def key(self, what: str) -> str:
        return f"{self.name}.{what}" if self.name else what

    def live_calls(self) -> list[Call]:
        calls = [c for c in self.calls if c.d is not None]
        for c in calls:
            if c.a._version != c.a_version:
                raise ValueError(
                    f"the input of layer {self.name!r} was modified in place after the "
                    "layer used it; the hooks path needs it intact (use method='func')"
                )
        return calls

    # --- per-layer algebra, specialised below ---------------------------------------
    def tokens_per_example(self, call: Call) -> int:
        raise NotImplementedError

    def in_features(self) -> int:
        raise NotImplementedError

    def out_features(self) -> int:
        raise NotImplementedError

    def tokens(
        self, call: Call, sl: slice, need_a: bool, dtype=torch.float64
    ) -> tuple[Tensor | None, Tensor]:
        """A [c, L, K] (or None) and D [c, L, O] of examples ``sl``, in ``dtype``."""
        raise NotImplementedError

    def dot(self, call: Call, gw: Tensor | None, gb: Tensor | None) -> Tensor:
        """<this call's part of v_i, (gw, gb)> for every example (float64 [B])."""
        raise NotImplementedError
