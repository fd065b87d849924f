"""The reference path: BackPACK's ``BatchGrad`` materialises every per-example gradient.

The parameter-carrying layers of a deep copy of the model are extended (``extend()``
installs hooks that would break ``torch.func`` on the original), the mean loss is
backpropagated with ``BatchGrad`` active, and the statistics are computed from
``p.grad_batch`` — which, for a mean-reduced loss, holds g_i / B. The whole batch of
per-example gradients (B × P numbers) is held at once: this path is slow and
memory-hungry on purpose, it is the yardstick the fast paths are tested and
benchmarked against.

Only layers BackPACK knows (Linear, Conv, ...) may carry parameters; activations may
be functional (``F.relu``) but not in place, and an elementwise mask multiply needs no
extension.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import materialized
from .cosine import inverse_norms
from .modules import trainable_parameters

__all__ = ["batch_gradients", "batch", "unit_sum"]


def batch_gradients(
    model: nn.Module, x: Tensor, y: Tensor
) -> tuple[Tensor, Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """Run BackPACK ``BatchGrad`` on a deep copy of ``model``.

    Returns the mean loss, the logits, ``{name: grad_batch * B}`` (the per-example
    gradients v_i, [B, *shape]) and ``{name: grad}`` (the mean-loss gradient).
    """
    from backpack import backpack, extend  # the reference only: heavy, and patches modules
    from backpack.extensions import BatchGrad  # (as above)

    n = x.shape[0]
    twin = copy.deepcopy(model)
    for p in twin.parameters():
        p.grad = None
    # extend the parameter-carrying layers only: extending a container would make
    # BackPACK store its output as ``.output``, which clashes with a child of that name
    for module in twin.modules():
        if any(True for _ in module.parameters(recurse=False)):
            extend(module)
    logits = twin(x)
    loss = F.cross_entropy(logits, y)
    with backpack(BatchGrad()), warnings.catch_warnings():
        # torch warns that the first layer's full backward hook sees no input gradient
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        loss.backward()
    grads, mean = {}, {}
    for name, p in trainable_parameters(twin):
        if p.grad is None:
            continue
        mean[name] = p.grad
        grads[name] = p.grad_batch.mul_(n)  # grad_batch holds g_i / B for a mean loss
        del p.grad_batch
    return loss.detach(), logits.detach(), grads, mean


def batch(model: nn.Module, x: Tensor, y: Tensor, cosine: bool) -> dict:
    """Like :func:`memorization.studies.per_example.hooks.batch`, from BackPACK's ``grad_batch``.

    ``p.grad`` of ``model`` is set to the mean-loss gradient computed on the copy.
    """
    loss, logits, grads, mean = batch_gradients(model, x, y)
    for name, p in trainable_parameters(model):
        p.grad = mean.get(name)
    out = {
        "loss": loss,
        "losses": F.cross_entropy(logits, y, reduction="none"),
        "dtype": logits.dtype,
    }
    if cosine:
        out["dots"], sq = materialized.dots_and_sq_norms(grads, mean)
        out["sq_norms"] = sq
        out["unit_sum"] = materialized.unit_sum(grads, inverse_norms(sq))
    else:
        out["dots"] = materialized.dots(grads, mean)
    return out


def unit_sum(
    model: nn.Module, x: Tensor, y: Tensor, whole_set: bool = False
) -> tuple[Tensor, dict[str, Tensor], float]:
    """||v_i||² and Σ_i v_i / ||v_i|| of one chunk; the model's ``p.grad`` is not touched."""
    _, _, grads, _ = batch_gradients(model, x, y)
    if not grads:
        return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device), {}, 0.0
    sq = materialized.sq_norms(grads)
    return sq, materialized.unit_sum(grads, inverse_norms(sq)), 0.0
