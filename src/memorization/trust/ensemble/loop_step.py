"""The step backend that steps the K models one after another: ordinary autograd per model.

The parameters, buffers and templates are :class:`~.func_step.FuncStep`'s (stacked
[K, ...] tensors the stacked optimizer updates in place); each model's batch gradient comes
from one ``functional_call`` of the template on that model's slices and
``torch.autograd.grad``, its predictions from one call of the eval-mode template. So each
model's convolutions run as one network's dense ones: on a CPU, ``vmap``'s grouped
convolutions run well below that rate (on VGG-11 at 1/4 to 1/6 width, 1.3 to 2.1 times
slower per step; the tiny transformer's attention has no batching rule at all), while a GPU
gains from running K small networks as one kernel (the ``func`` path).

A model's batch holds only its own rows: the rows a step pads with weight 0 (where subsets
differ in size) and a model that sits a step out are not run, so batch normalisation sees
exactly the batches one model trained alone sees, and its running statistics move only
when the model takes a step.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import functional_call
from torch.nn import functional as F

from ...method.precision import autocast, to_channels_last_batch
from .func_step import FuncStep

__all__ = ["LoopStep"]


class LoopStep(FuncStep):
    """Batch gradients of each model in turn (see the module docstring); the stacked state,
    the mixed ``precision`` and ``channels_last`` are :class:`FuncStep`'s."""

    name = "loop"

    def _model(self, k: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Model ``k``'s parameters and buffers: views of the stacked ones (batch
        normalisation updates its running statistics in place)."""
        return ({n: v[k] for n, v in self.params.items()},
                {n: v[k] for n, v in self.buffers.items()})  # fmt: skip

    def gradients(self, rows: Tensor, weights: Tensor) -> list[Tensor]:
        grads = [torch.zeros_like(v) for v in self.params.values()]
        for k in range(rows.shape[0]):
            own = weights[k] != 0
            if not bool(own.any()):  # the model sits this step out
                continue
            x, y, w = self.x[rows[k][own]], self.y[rows[k][own]], weights[k][own]
            if self.channels_last:
                x = to_channels_last_batch(x)
            views, buffers = self._model(k)
            params = {n: v.detach().requires_grad_() for n, v in views.items()}  # leaves
            with autocast(self.precision, x.device):
                logits = functional_call(self.template, (params, buffers), (x,))
                loss = (F.cross_entropy(logits, y, reduction="none") * w).sum()
            for g, gk in zip(grads, torch.autograd.grad(loss, list(params.values())), strict=True):
                g[k] = gk
        return grads

    def logits(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = to_channels_last_batch(x)
        k = next(iter(self.params.values())).shape[0]
        out = []
        for i in range(k):
            with autocast(self.precision, x.device):
                out.append(functional_call(self.eval_template, self._model(i), (x,)))
        return torch.stack(out)
