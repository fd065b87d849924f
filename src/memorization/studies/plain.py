"""What every plain-training study shares: train runs of the plain model, recording
per-example results after every epoch.

A study trains the experiment's model *plainly* (no turn-over masks) one or more
times, each run on some rows of the training split, and records what the paper
plots after every epoch (:func:`train_runs`). With a
:class:`~memorization.method.checkpoint.Checkpoint`, finished runs are skipped on
resume and the run in progress resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from ..data.tensors import TensorSplit
from ..method.checkpoint import Checkpoint
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from ..method.precision import autocast
from ..method.training import fit

__all__ = ["SUBSETS", "evaluate", "members", "subset_means", "subset_sds", "train_runs"]

SUBSETS = ("full", "easy", "difficult")


@torch.inference_mode()
def evaluate(
    model, split: TensorSplit, batch_size: int = 1024, precision: str = "fp32"
) -> tuple[np.ndarray, np.ndarray]:
    """(correct, loss) of the plain model for every example of ``split`` (the forward
    passes in the training's ``precision``, the losses in float32 from the logits)."""
    model.eval()
    correct, losses = [], []
    for start in range(0, len(split), batch_size):
        x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
        with autocast(precision, x.device):  # fp32: no autocast at all
            logits = model(x)
        correct.append((logits.argmax(1) == y).cpu())
        losses.append(F.cross_entropy(logits.float(), y, reduction="none").cpu())
    return torch.cat(correct).numpy(), torch.cat(losses).numpy()


def subset_means(values: np.ndarray, rows: Mapping[str, np.ndarray]) -> list[float]:
    """The mean of ``values`` over each subset's rows (NaN for an empty subset)."""
    return [float(values[rows[s]].mean()) if rows[s].any() else np.nan for s in rows]


def subset_sds(values: np.ndarray, rows: Mapping[str, np.ndarray]) -> list[float]:
    """The standard deviation of ``values`` over each subset's rows (NaN when empty)."""
    return [float(values[rows[s]].std()) if rows[s].any() else np.nan for s in rows]


def members(subsets: Mapping[str, np.ndarray] | None, n: int) -> dict[str, np.ndarray]:
    """Boolean rows of the full split and of its easy/difficult subsets (if given)."""
    out = {"full": np.ones(n, dtype=bool)}
    if subsets is not None:
        out.update({k: np.asarray(subsets[k], dtype=bool) for k in ("easy", "difficult")})
    return out


def plain_model(model: ModelSpec, train: TensorSplit, seed: int):
    """The study's plain model, seeded, on the training split's device."""
    net = model.build(tuple(train.x.shape[1:]), turnover=False, seed=seed)
    return net.to(train.x.device)


def train_runs(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seed: int,
    runs: Sequence[tuple[str, np.ndarray | None]],
    record: Callable[[int, int, torch.nn.Module], Mapping[str, float]],
    *,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    desc: Callable[[str], str] = "plain training ({})".format,
) -> None:
    """Train a fresh plain model for each ``(name, rows)`` of ``runs`` (rows ``None``:
    the whole split), calling ``record(run_index, epoch, model)`` before training
    (epoch 0) and after every epoch; ``record`` returns numbers for the log."""
    for r, (name, rows) in enumerate(runs):
        if checkpoint is not None and checkpoint.finished(name):
            continue
        net = plain_model(model, train, seed)
        positions = None if rows is None else torch.from_numpy(np.flatnonzero(rows))
        record(r, 0, net)
        fit(
            net,
            train,
            opt,
            seed=seed,
            positions=positions,
            after_epoch=lambda epoch, r=r, net=net: record(r, epoch, net),
            checkpoint=None if checkpoint is None else checkpoint.run(name),
            desc=desc(name),
            progress=progress,
        )
        if checkpoint is not None:
            checkpoint.finish(name)
