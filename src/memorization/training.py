"""SGD training with the paper's settings: plain, or through turn-over sub-networks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .data import TensorSplit
from .masks import TurnOverMasks
from .models import TurnOverNet

__all__ = ["OptimConfig", "fit", "seed_everything"]

log = logging.getLogger("memorization.training")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum and a multi-step learning-rate schedule (appendix A)."""

    epochs: int
    lr: float
    momentum: float = 0.0
    batch_size: int = 256
    milestones: tuple[int, ...] = field(default_factory=tuple)
    gamma: float = 0.1
    weight_decay: float = 0.0

    @classmethod
    def from_config(cls, cfg: Mapping, epochs: int | None = None) -> OptimConfig:
        return cls(
            epochs=int(cfg["epochs"] if epochs is None else epochs),
            lr=float(cfg["lr"]),
            momentum=float(cfg.get("momentum", 0.0)),
            batch_size=int(cfg.get("batch_size", 256)),
            milestones=tuple(int(m) for m in cfg.get("milestones", ()) or ()),
            gamma=float(cfg.get("gamma", 0.1)),
            weight_decay=float(cfg.get("weight_decay", 0.0)),
        )


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and NumPy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fit(
    model: TurnOverNet,
    train: TensorSplit,
    opt: OptimConfig,
    *,
    seed: int,
    masks: TurnOverMasks | None = None,
    positions: torch.Tensor | None = None,
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    after_epoch: Callable[[int], Mapping[str, float] | None] | None = None,
    desc: str = "training",
    progress: bool = True,
) -> None:
    """Train ``model`` in place with SGD on ``train`` (already on the model's device).

    With ``masks``, example ``i`` runs through its unmuted sub-network (turn-over
    training); without, the plain model is trained. ``positions`` restricts
    training to these rows of ``train`` (e.g. the easy subset). ``step(x, y,
    rows)`` replaces the default forward/backward of a batch (it must leave the
    gradient of the batch's mean loss in ``.grad`` and return the loss), which is
    how gradient statistics ride along with training. ``after_epoch(epoch)`` is
    called after every epoch (1-based) and may return numbers for the log.
    """
    device = train.x.device
    rows_all = (
        torch.arange(len(train), device=device) if positions is None else positions.to(device)
    )
    if len(rows_all) == 0:
        raise ValueError("nothing to train on: the training set is empty")
    optimizer = torch.optim.SGD(
        model.parameters(), lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(opt.milestones), gamma=opt.gamma
    )
    generator = torch.Generator().manual_seed(int(seed) + 1)
    bar = tqdm(
        range(1, opt.epochs + 1),
        desc=desc,
        unit="epoch",
        disable=not progress,
        file=sys.stderr,
        ascii=True,
        mininterval=0,
    )
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for batch in _batches(len(rows_all), opt.batch_size, generator):
            rows = rows_all[batch.to(device)]
            x, y = train.x[rows], train.y[rows]
            optimizer.zero_grad(set_to_none=True)
            if step is not None:
                loss = step(x, y, rows)
            else:
                logits = model(x, None if masks is None else masks.unmuted(rows))
                loss = F.cross_entropy(logits, y)
                loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
            count += len(rows)
        schedule.step()
        info = {"loss": total / count, "lr": optimizer.param_groups[0]["lr"]}
        if after_epoch is not None:
            info.update(after_epoch(epoch) or {})
        bar.set_postfix({k: f"{v:.4g}" for k, v in info.items()}, refresh=True)
        log.info("%s epoch %d/%d %s", desc, epoch, opt.epochs, info)
