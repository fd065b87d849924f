"""The disk a checkpoint needs counts the optimizer state of the configured optimizer."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from memorization.method.checkpoint import checkpoint_bytes, optimizer_state_copies
from memorization.method.optim import OptimSpec, build_optimizer

SGD = OptimSpec(epochs=2, lr=0.1)
MOMENTUM = OptimSpec(epochs=2, lr=0.1, momentum=0.9)
ADAMW = OptimSpec(epochs=2, lr=1e-3, optimizer="adamw")


def _saved_bytes(opt: OptimSpec) -> tuple[int, int]:
    """(parameters, bytes of the model's and the optimizer's state saved after a step)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 10))
    optimizer, _ = build_optimizer(net.parameters(), opt)
    net(torch.randn(8, 300)).sum().backward()
    optimizer.step()  # the state exists after the first step
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    return sum(p.numel() for p in net.parameters()), buffer.tell()


@pytest.mark.parametrize(("opt", "copies"), [(SGD, 0), (MOMENTUM, 1), (ADAMW, 2)])
def test_the_estimate_holds_what_the_optimizer_saves(opt, copies):
    assert optimizer_state_copies(opt) == copies
    parameters, saved = _saved_bytes(opt)
    weights_and_state = 4 * parameters * (1 + copies)
    # what torch saves is the weights and the state (plus a few KiB of pickle)
    assert weights_and_state <= saved < weights_and_state + (64 << 10)
    per_copy = checkpoint_bytes(parameters, opt) // 2  # two copies at the peak
    assert saved <= per_copy < saved + (2 << 20)


def test_adamw_needs_more_disk_than_sgd_with_momentum_than_plain_sgd():
    n = 10_000_000
    plain, momentum, adamw = (checkpoint_bytes(n, opt) for opt in (SGD, MOMENTUM, ADAMW))
    assert momentum - plain == adamw - momentum == 2 * 4 * n  # one float32 copy, twice
    assert checkpoint_bytes(n) == plain  # no recipe: the weights alone
    assert checkpoint_bytes(n, ADAMW, records=1000) == adamw + 2 * 1000
