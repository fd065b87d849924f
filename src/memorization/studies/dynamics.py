"""How easy and difficult examples are learnt (section 3.2-3.3, appendix E).

The studies of :mod:`memorization.studies` train the experiment's model *plainly* (no
turn-over masks) on its (possibly corrupted) training labels and record, after every
epoch, what the paper plots:

- :func:`training_dynamics`: accuracy and loss over (``run``, ``epoch``,
  ``split``, ``subset``); ``run`` is ``all`` (the whole training set) and
  ``without_difficult`` (the control run of figure 5, trained with the difficult
  subset removed);
- :func:`corruption_level`: train and test accuracy at one corruption level
  (figure 10).

Accuracies on the training split use the labels the model is trained on (the
corrupted ones); on the test split the true labels.

The gradient statistics (figure 4) are :mod:`.gradient_statistics`, the
cross-subset training (figure 6) :mod:`.crosstrain`. Each takes an optional
:class:`~memorization.method.checkpoint.Checkpoint`: the training resumes from it and
saves there, with the records so far and, for the studies with two runs, which run is
finished.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..data.tensors import TensorSplit
from ..method.checkpoint import Checkpoint, Records
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from .plain import evaluate, members, subset_means, subset_sds, train_runs

__all__ = ["RUNS", "corruption_level", "training_dynamics"]

RUNS = ("all", "without_difficult")


def training_dynamics(
    model: ModelSpec,
    train: TensorSplit,
    test: TensorSplit,
    opt: OptimSpec,
    seed: int,
    train_subsets: Mapping[str, np.ndarray] | None,
    test_subsets: Mapping[str, np.ndarray] | None,
    *,
    control: bool = True,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Accuracy/loss per epoch on the full, easy and difficult train and test examples.

    ``*_subsets`` map ``easy``/``difficult`` to boolean arrays over the split's rows;
    ``None`` records the full splits only. Epoch 0 is the untrained model.
    """
    rows = {"train": members(train_subsets, len(train)), "test": members(test_subsets, len(test))}
    runs = RUNS if control else RUNS[:1]
    subsets = list(rows["train"])
    acc = np.full((len(runs), opt.epochs + 1, 2, len(subsets)), np.nan)
    loss = np.full_like(acc, np.nan)
    loss_sd = np.full_like(acc, np.nan)
    if checkpoint is not None:
        checkpoint.track(Records(accuracy=acc, loss=loss, loss_sd=loss_sd))

    def record(r: int, epoch: int, model) -> dict[str, float]:
        for s, split in enumerate((train, test)):
            correct, losses = evaluate(model, split, precision=opt.precision)
            name = ("train", "test")[s]
            acc[r, epoch, s] = subset_means(correct.astype(float), rows[name])
            loss[r, epoch, s] = subset_means(losses, rows[name])
            loss_sd[r, epoch, s] = subset_sds(losses, rows[name])
        return {"train_acc": acc[r, epoch, 0, 0], "test_acc": acc[r, epoch, 1, 0]}

    # the control run trains without the difficult subset
    trained = [(run, None if run == "all" else ~rows["train"]["difficult"]) for run in runs]
    train_runs(model, train, opt, seed, trained, record, checkpoint=checkpoint, progress=progress)
    sizes = np.array([[m.sum() for m in rows[s].values()] for s in ("train", "test")])
    return xr.Dataset(
        {
            "accuracy": (("run", "epoch", "split", "subset"), acc),
            "loss": (("run", "epoch", "split", "subset"), loss),
            "loss_sd": (("run", "epoch", "split", "subset"), loss_sd),
            "subset_size": (("split", "subset"), sizes),
        },
        coords={
            "run": list(runs),
            "epoch": np.arange(opt.epochs + 1),
            "split": ["train", "test"],
            "subset": subsets,
        },
    )


def corruption_level(
    model: ModelSpec,
    train: TensorSplit,
    test: TensorSplit,
    opt: OptimSpec,
    seed: int,
    *,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Train and test accuracy per epoch at one corruption level (figure 10).

    ``train`` carries the corrupted labels; the layout is that of
    :func:`training_dynamics` with one run and the ``full`` subset only.
    """
    return training_dynamics(
        model,
        train,
        test,
        opt,
        seed,
        None,
        None,
        control=False,
        checkpoint=checkpoint,
        progress=progress,
    )
