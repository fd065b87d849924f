"""The update half of the zero-gradient proof: the optimizer's step moves no parameter of an
example's muted sub-network because of that example.

The gradient half (:mod:`.proof`) shows that example ``i``'s unmuted loss sends exactly
zero gradient to the parameters of ``i``'s muted sub-network (the shared ones aside). The
optimizers of :mod:`~memorization.method.optim` act on each parameter entry alone: SGD's
momentum buffer and weight decay, AdamW's two moment estimates, its bias corrections and
its decoupled decay depend on that entry's gradient, its past state and the learning rate
only. So an entry that gets zero gradient from ``i`` moves through the other examples'
gradients, the state from earlier steps and the decay, none of which depends on ``i`` in
this step. Clipping by the global norm of the batch gradient breaks this: the norm sums
every example's gradient, so every entry's step depends on ``i``. Element-wise clipping
(``clip_value``) keeps it: an entry's gradient is clamped to ``[-v, v]`` by a function of
that entry's summed gradient alone, which for a muted entry is the other examples' sum.

:func:`prove_update` checks it on a batch: from the same state (one step taken on the whole
batch, so that momentum or moments are not zero), it takes one more step with the batch as
it is and one with ``i``'s loss weight set to zero (``i`` stays in the forward pass, so
batch-norm statistics are the same), and requires the entries of ``i``'s muted sub-network
outside the shared parameters to end bit for bit the same. Both steps clip as the
training does (after the backward pass, before the step), so the proof covers the clip; the
report says how many gradient entries the element-wise clip bound in the checked steps.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..optim import OptimSpec, build_optimizer, clip_gradients
from ..precision import autocast
from .errors import TurnoverSiteError

__all__ = ["prove_update"]


def _weighted_step(net, optimizer, x, y, unmuted, weights, opt: OptimSpec) -> int:
    """One optimizer step on the batch loss ``sum_j w_j CE_j`` through the unmuted masks;
    returns how many gradient entries ``clip_value`` clamped (0 without it)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(opt.precision, x.device):  # in the training's arithmetic
        losses = F.cross_entropy(net(x, unmuted).float(), y, reduction="none")
    (losses * weights).sum().backward()
    clamped = 0
    if opt.clip_value is not None:
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        clamped = sum(int((g.abs() > opt.clip_value).sum()) for g in grads)
    clip_gradients(net, opt)
    optimizer.step()
    return clamped


def _after_steps(model, x, y, unmuted, weights, opt: OptimSpec, seed: int):
    """A copy of ``model``'s parameters after a step on the whole batch and a step with
    ``weights``, and the gradient entries the clip clamped in the second step."""
    net = copy.deepcopy(model)
    net.train()
    optimizer, schedule = build_optimizer(net.parameters(), opt)
    full = torch.full_like(weights, 1.0 / len(weights))
    torch.manual_seed(seed)  # the same dropout draws in both runs
    _weighted_step(net, optimizer, x, y, unmuted, full, opt)
    schedule.step()
    clamped = _weighted_step(net, optimizer, x, y, unmuted, weights, opt)
    return {n: p.detach() for n, p in net.named_parameters() if p.requires_grad}, clamped


def _muted_use(model: nn.Module, x, muted, i: int) -> dict[str, torch.Tensor]:
    """Entries example ``i``'s muted sub-network uses: nonzero gradient of a random
    projection of its muted logits (train mode)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    model.train()
    logits = model(x, muted).float()
    probe = torch.randn(logits.shape[1], generator=torch.Generator().manual_seed(2))
    out = (logits[i] @ probe.to(logits.device)).sum()
    grads = torch.autograd.grad(out, [p for _, p in named], allow_unused=True)
    return {
        n: torch.zeros_like(p, dtype=torch.bool) if g is None else g != 0
        for (n, p), g in zip(named, grads, strict=True)
    }


def prove_update(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    opt: OptimSpec,
    shared,
    n_check: int = 2,
) -> str:
    """Check on the batch ``(x, y)`` (masks of ``seed``, examples numbered 0..len(x)-1) that
    ``opt``'s update moves no entry of the first ``n_check`` examples' muted sub-networks
    because of them (see the module docstring), the parameters named in ``shared`` aside;
    the steps clip as ``opt`` says (``clip_value`` element-wise, ``clip_norm`` by the norm).
    Raises :class:`TurnoverSiteError` naming the parameter (and ``clip_norm`` where clipping
    is the cause); returns the finding in words. The model and the random state are left
    as they were (the steps run on copies)."""
    masks = model.turnover_masks(seed, np.arange(len(x)), x.device, check_unique=False)
    rows = torch.arange(len(x), device=x.device)
    unmuted, muted = masks.unmuted(rows), masks.muted(rows)
    shared = set(shared)
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    flags = {name: m.training for name, m in model.named_modules()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    checked = clamped = 0
    with torch.random.fork_rng(devices=cuda), torch.enable_grad():
        for i in range(min(n_check, len(x))):
            uses = _muted_use(model, x, muted, i)
            full = torch.full((len(x),), 1.0 / len(x), device=x.device)
            without = full.clone()
            without[i] = 0.0
            with_i, bound = _after_steps(model, x, y, unmuted, full, opt, seed)
            without_i, _ = _after_steps(model, x, y, unmuted, without, opt, seed)
            clamped += bound
            for name, use in uses.items():
                if name in shared or not use.any():
                    continue
                moved = int(((with_i[name] != without_i[name]) & use).sum())
                if moved:
                    raise TurnoverSiteError(_leak_message(name, moved, i, opt))
                checked += int(use.sum())
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    for name, m in model.named_modules():
        m.training = flags[name]
    momentum = f", momentum {opt.momentum:g}" if opt.optimizer == "sgd" else ""
    steps = min(n_check, len(x))
    clip = "" if opt.clip_value is None else _clip_words(opt.clip_value, clamped, steps)
    return (
        f"The {opt.optimizer} update (weight decay {opt.weight_decay:g}{momentum}{clip}) moves "
        f"none of the {checked:,} muted entries checked because of their example "
        "(a step with the example against the same step with its loss weight zero)."
    )


def _clip_words(value: float, clamped: int, steps: int) -> str:
    """The element-wise clip in the report: its bound and how often it bound."""
    return (
        f", gradient clipped element-wise to [-{value:g}, {value:g}]: {clamped:,} entries "
        f"clamped in the {steps} checked steps"
    )


def _leak_message(name: str, moved: int, i: int, opt: OptimSpec) -> str:
    if opt.clip_norm is not None:
        return (
            f"clip_norm: clipping the gradient to a global norm of {opt.clip_norm:g} makes "
            f"every parameter's step depend on every example (through the norm): {moved} "
            f"entries of {name!r} in example {i}'s muted sub-network moved because of it. "
            "Turn-over training cannot clip by the global norm: use clip_value (element-wise "
            "clipping, which keeps turn-over exact) or remove clip_norm"
        )
    return (
        f"the {opt.optimizer} update moves {moved} entries of {name!r} in example {i}'s "
        "muted sub-network because of the example: the muted sub-network learns from it"
    )
