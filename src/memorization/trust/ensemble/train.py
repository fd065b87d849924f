"""Training K plain models together, all at once or a chunk of models at a time.

Each model equals its one-by-one reference (:mod:`.reference`) to float tolerance."""

from __future__ import annotations

import copy
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ...data.tensors import TensorSplit
from ...method.models.spec import ModelSpec
from ...method.optim import OptimSpec, epoch_lr
from .backends import build_step
from .batches import epoch_batches
from .optimizer import StackedOptimizer
from .reference import batch_order, build_models, check_subsets
from .stacked import Ensemble

__all__ = ["default_chunk", "train_ensemble", "train_in_chunks"]

log = logging.getLogger(__name__)


def train_ensemble(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seeds: Sequence[int],
    subsets: np.ndarray,
    *,
    path: str = "auto",
    hidden_block: int = 128,
    progress: bool = False,
    desc: str = "ensemble",
    after_epoch: Callable[[Ensemble, int], None] | None = None,
    start: Mapping[str, Tensor] | None = None,
    epochs: tuple[int, int] | None = None,
) -> Ensemble:
    """Train ``len(seeds)`` models together (see :mod:`memorization.trust.ensemble`);
    returns the ensemble.

    ``subsets`` [K, N] says which rows of ``train`` each model trains on;
    ``after_epoch(ensemble, epoch)`` (1-based) is called after every epoch, e.g. to record
    every model's predictions along training (it must not change the models). The models,
    their momentum and their activations are held at once: train large K in chunks
    (:func:`train_in_chunks`). ``start`` (a plain model's ``state_dict``): every model
    starts from it instead of its own initialisation (branches of a forked run);
    ``epochs`` = (e0, e1): train only epochs [e0, e1) of ``opt``'s schedule.
    """
    subsets = check_subsets(subsets, len(seeds), len(train))
    optimizer = StackedOptimizer(opt)  # refuses a recipe it cannot follow, before training
    device = train.x.device
    models = [m.to(device) for m in build_models(model, train.x.shape[1:], seeds)]
    for m in models if start is not None else ():
        m.load_state_dict(start)
    step = build_step(
        path,
        models,
        train.x,
        train.y,
        precision=opt.precision,
        hidden_block=hidden_block,
        channels_last=opt.channels_last,
    )
    ensemble = Ensemble(copy.deepcopy(models[0]), step)
    del models
    positions = [torch.from_numpy(np.flatnonzero(s)).to(device) for s in subsets]
    generators = [batch_order(s) for s in seeds]
    for epoch in _epochs(opt, epochs, desc, progress):
        lr = epoch_lr(opt, epoch)
        for rows, weights, active in epoch_batches(positions, generators, opt.batch_size):
            grads = step.gradients(rows, weights)
            optimizer.step(step.tensors(), grads, lr, active, step.model_dim)
        log.info("%s epoch %d/%d lr %.4g", desc, epoch + 1, opt.epochs, lr)
        if after_epoch is not None:
            after_epoch(ensemble, epoch + 1)
    return ensemble


def _epochs(opt: OptimSpec, epochs: tuple[int, int] | None, desc: str, progress: bool):
    """The 0-based epochs to train (all of ``opt``'s by default), with a progress bar."""
    return tqdm(
        range(*(epochs or (0, opt.epochs))),
        desc=desc,
        unit="epoch",
        disable=not progress,
        file=sys.stderr,
        ascii=True,
    )


def default_chunk(model: ModelSpec, opt: OptimSpec, budget_mib: float = 128) -> int:
    """Models per chunk so that a step's activations stay near ``budget_mib``
    (MLP: about four [K, batch, hidden] float tensors; other models: 8)."""
    if model.name != "mlp":
        return 8
    hidden = int(model.options.get("hidden", 4096))
    per_model = 4 * opt.batch_size * hidden * 4 / 2**20
    return max(1, int(budget_mib // per_model))


def train_in_chunks(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seeds: Sequence[int],
    subsets: np.ndarray,
    evaluate: Callable[[Ensemble, int], None],
    *,
    chunk_size: int | None = None,
    path: str = "auto",
    hidden_block: int = 128,
    progress: bool = False,
    after_epoch: Callable[[Ensemble, int, int], None] | None = None,
    skip: Callable[[int, int], bool] | None = None,
) -> None:
    """Train the models ``chunk_size`` at a time and call ``evaluate(ensemble, k0)`` on
    each chunk (models ``k0 .. k0 + len(ensemble)``) before dropping it;
    ``after_epoch(ensemble, k0, epoch)`` after every epoch of each chunk. A chunk
    ``[k0, k1)`` for which ``skip(k0, k1)`` is true is not trained (its models were, before
    an interruption)."""
    subsets = np.asarray(subsets, dtype=bool)
    if chunk_size is None:
        chunk_size = default_chunk(model, opt)
    for k0 in range(0, len(seeds), chunk_size):
        k1 = min(k0 + chunk_size, len(seeds))
        if skip is not None and skip(k0, k1):
            continue
        ens = train_ensemble(
            model,
            train,
            opt,
            seeds[k0:k1],
            subsets[k0:k1],
            path=path,
            hidden_block=hidden_block,
            progress=progress,
            desc=f"ensemble models {k0}-{k1 - 1}",
            after_epoch=None if after_epoch is None else partial(_at_chunk, after_epoch, k0),
        )
        evaluate(ens, k0)


def _at_chunk(after_epoch, k0: int, ensemble: Ensemble, epoch: int) -> None:
    after_epoch(ensemble, k0, epoch)
