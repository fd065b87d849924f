"""SGD or AdamW with gradient clipping on K models' stacked [K, ...] tensors.

The optimizer of an :class:`~memorization.method.optim.OptimSpec`, after each model's own
gradient clipping, every model updated as ``torch.optim`` updates it alone (a model may
sit a step out)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ...method.optim import OptimSpec

__all__ = ["StackedOptimizer", "clip_by_norm", "clip_by_value"]

PerModel = Callable[[Tensor, Tensor], Tensor]


@dataclass
class StackedOptimizer:
    """``torch.optim.SGD`` (dampening 0, no Nesterov) or ``torch.optim.AdamW`` on stacked
    tensors, after ``clip_grad_norm_`` of each model's own gradient (``clip_norm``) or
    ``clip_grad_value_`` of each element (``clip_value``; not both, as ``fit`` refuses)."""

    opt: OptimSpec

    def __post_init__(self) -> None:
        self.clip_value = getattr(self.opt, "clip_value", None)  # getattr: older specs lack it
        if self.opt.clip_norm is not None and self.clip_value is not None:
            raise ValueError(
                "clip_norm and clip_value are both set; a step clips one way: keep one of them"
            )
        self.buffers: list[Tensor] | None = None  # SGD momentum, or Adam's first moments
        self.second: list[Tensor] | None = None  # Adam's second moments
        self.steps: Tensor | None = None  # [K] steps each model took (Adam)

    def step(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        lr: float,
        active: Tensor | None,
        model_dim: int = 0,
    ) -> None:
        """One update of every model; ``active`` [K] bool (None: all) says which take it.

        The models are indexed along ``model_dim`` of every tensor. A model that sits
        the step out keeps its parameters, its momentum or moments and its step count.
        """
        k = params[0].shape[model_dim]

        def per_model(v: Tensor, like: Tensor) -> Tensor:  # [K] broadcast along model_dim
            shape = [1] * like.dim()
            shape[model_dim] = k
            return v.view(shape)

        def select(new: Tensor, old: Tensor) -> Tensor:
            return new if active is None else torch.where(per_model(active, new), new, old)

        if self.opt.clip_norm is not None:
            grads = clip_by_norm(grads, self.opt.clip_norm, model_dim, per_model)
        if self.clip_value is not None:
            grads = clip_by_value(grads, self.clip_value)
        if self.opt.optimizer == "adamw":
            self._adamw(params, grads, lr, active, k, per_model, select)
        else:
            self._sgd(params, grads, lr, select)

    def _sgd(self, params, grads, lr, select) -> None:
        momentum, decay = self.opt.momentum, self.opt.weight_decay
        if decay:
            grads = [g.add(p, alpha=decay) for g, p in zip(grads, params, strict=True)]
        if momentum:
            first = self.buffers is None
            if first:
                self.buffers = [torch.zeros_like(g) for g in grads]
            for buf, g in zip(self.buffers, grads, strict=True):
                new = g if first else buf.mul(momentum).add_(g)
                buf.copy_(select(new, buf))
            grads = self.buffers
        for p, g in zip(params, grads, strict=True):
            p.add_(select(g, torch.zeros_like(g)), alpha=-lr)

    def _adamw(self, params, grads, lr, active, k, per_model, select) -> None:
        beta1, beta2 = self.opt.betas
        if self.buffers is None:
            self.buffers = [torch.zeros_like(p) for p in params]
            self.second = [torch.zeros_like(p) for p in params]
            self.steps = torch.zeros(k, dtype=torch.float64, device=params[0].device)
        self.steps += 1 if active is None else active.to(self.steps.dtype)
        t = self.steps.clamp(min=1)  # a model yet to take a step: any value, it is not used
        step_size = (lr / (1 - beta1**t)).to(params[0].dtype)
        root2 = (1 - beta2**t).sqrt().to(params[0].dtype)
        for p, g, m, v in zip(params, grads, self.buffers, self.second, strict=True):
            m.copy_(select(m.lerp(g, 1 - beta1), m))
            v.copy_(select(v.mul(beta2).addcmul_(g, g, value=1 - beta2), v))
            denom = (v.sqrt() / per_model(root2, p)).add_(self.opt.eps)
            new = p.mul(1 - lr * self.opt.weight_decay).sub_(m * per_model(step_size, p) / denom)
            p.copy_(select(new, p))


def clip_by_norm(
    grads: list[Tensor], max_norm: float, model_dim: int, per_model: PerModel
) -> list[Tensor]:
    """Each model's gradient scaled to a global norm of at most ``max_norm``, as
    ``clip_grad_norm_`` scales one model's (the norm over all its tensors)."""
    norms = torch.stack(
        [torch.linalg.vector_norm(g.movedim(model_dim, 0).flatten(1), dim=1) for g in grads]
    )
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    return [g * per_model(coef, g) for g in grads]


def clip_by_value(grads: list[Tensor], clip_value: float) -> list[Tensor]:
    """Every gradient element clamped to ``[-clip_value, clip_value]``, as
    ``clip_grad_value_`` clamps one model's (element-wise: the same for K models at once)."""
    value = float(clip_value)
    return [g.clamp(-value, value) for g in grads]
