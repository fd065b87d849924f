"""Cross-subset training (figure 6): train on the easy subset only, then on the
difficult subset only, and record the accuracy on both after every epoch."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr

from ..data.tensors import TensorSplit
from ..method.checkpoint import Checkpoint, Records
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from .plain import evaluate, members, train_runs

__all__ = ["cross_training"]

SUBSETS = ("easy", "difficult")


def cross_training(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seed: int,
    train_subsets: Mapping[str, np.ndarray],
    *,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Train on the easy subset only, then on the difficult subset only (figure 6)."""
    rows = members(train_subsets, len(train))
    # only the two subsets are evaluated after every epoch (not the whole training split)
    both = np.flatnonzero(rows["easy"] | rows["difficult"])
    shown = TensorSplit(
        train.x[torch.from_numpy(both)], train.y[torch.from_numpy(both)], train.examples[both]
    )
    within = {s: rows[s][both] for s in SUBSETS}
    acc = np.full((opt.epochs + 1, 2, 2), np.nan)
    loss = np.full_like(acc, np.nan)
    if checkpoint is not None:
        checkpoint.track(Records(accuracy=acc, loss=loss))

    def record(t: int, epoch: int, model) -> dict[str, float]:
        correct, losses = evaluate(model, shown, precision=opt.precision)
        for e, evaluate_on in enumerate(SUBSETS):
            acc[epoch, t, e] = correct[within[evaluate_on]].mean()
            loss[epoch, t, e] = losses[within[evaluate_on]].mean()
        return {f"acc_{n}": acc[epoch, t, e] for e, n in enumerate(SUBSETS)}

    train_runs(
        model,
        train,
        opt,
        seed,
        [(s, rows[s]) for s in SUBSETS],
        record,
        checkpoint=checkpoint,
        progress=progress,
        desc="training on the {} subset".format,
    )
    return xr.Dataset(
        {
            "accuracy": (("epoch", "train_on", "evaluate_on"), acc),
            "loss": (("epoch", "train_on", "evaluate_on"), loss),
            "subset_size": (("evaluate_on",), np.array([rows[s].sum() for s in SUBSETS])),
        },
        coords={
            "epoch": np.arange(opt.epochs + 1),
            "train_on": list(SUBSETS),
            "evaluate_on": list(SUBSETS),
        },
    )
