"""SGD training with the paper's settings: plain, or through turn-over sub-networks."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
from collections.abc import Callable, Mapping

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..data.tensors import TensorSplit
from .augment import build_augment
from .checkpoint import Checkpoint, RunCheckpoint, SignalGuard, rng_state, set_rng_state
from .masks import TurnOverMasks
from .models.base import TurnOverNet
from .optim import OptimSpec

__all__ = ["fit"]

log = logging.getLogger("memorization.training")


def _batches(n: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def fit(
    model: TurnOverNet,
    train: TensorSplit,
    opt: OptimSpec,
    *,
    seed: int,
    masks: TurnOverMasks | None = None,
    positions: torch.Tensor | None = None,
    step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    after_epoch: Callable[[int], Mapping[str, float] | None] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    checkpoint: Checkpoint | RunCheckpoint | None = None,
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
    ``augment(x, generator)`` transforms every training batch's images (by default
    the augmentation ``opt.augment`` names, :mod:`memorization.method.augment`); its
    random draws come from a generator of its own seeded from ``seed``, so the batch
    order is the same with and without it.

    With ``checkpoint`` (:mod:`memorization.checkpoint`), training resumes from the
    state saved there, if any, and saves its state every ``checkpoint.every``
    epochs and, mid-epoch, when SIGTERM or SIGINT arrives (then the process exits
    as the signal would have made it); the result is bit-identical to an
    uninterrupted run on the CPU. Without, no file is written and no signal
    handler installed.
    """
    device = train.x.device
    rows_all = (
        torch.arange(len(train), device=device) if positions is None else positions.to(device)
    )
    if len(rows_all) == 0:
        raise ValueError("nothing to train on: the training set is empty")
    optimizer, schedule = _optimizer(model, opt)
    augment = augment if augment is not None else build_augment(opt.augment)
    generator = torch.Generator().manual_seed(int(seed) + 1)
    augment_generator = torch.Generator().manual_seed(int(seed) + 2)
    if isinstance(checkpoint, Checkpoint):
        checkpoint = checkpoint.run()
    run = _Run(
        (model, optimizer, schedule, generator, augment_generator),
        train,
        rows_all,
        opt,
        masks,
        step,
        augment,
        checkpoint,
        desc,
    )
    first, done_batches = 1, 0
    saved = None if checkpoint is None else checkpoint.resume()
    if saved is not None:
        first, done_batches, run.total, run.count = _restore(
            saved, run.trainer, len(rows_all), opt, device
        )
        _log_resume(desc, saved, opt, len(rows_all), checkpoint)
    bar = _progress(desc, first, opt.epochs, progress)
    with contextlib.nullcontext() if checkpoint is None else SignalGuard() as guard:
        for epoch in bar:
            run.train_epoch(epoch, done_batches, guard)
            done_batches = 0
            schedule.step()
            info = {"loss": run.total / run.count, "lr": optimizer.param_groups[0]["lr"]}
            run.total, run.count = 0.0, 0
            if after_epoch is not None:
                info.update(after_epoch(epoch) or {})
            bar.set_postfix({k: f"{v:.4g}" for k, v in info.items()}, refresh=True)
            log.info("%s epoch %d/%d %s", desc, epoch, opt.epochs, info)
            if checkpoint is not None:
                run.end_of_epoch(epoch, guard)


def _optimizer(model, opt: OptimSpec):
    """SGD with momentum and weight decay, and its multi-step learning-rate schedule."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(opt.milestones), gamma=opt.gamma
    )
    return optimizer, schedule


def _progress(desc: str, first: int, epochs: int, progress: bool):
    """A progress bar over epochs ``first..epochs`` on stderr (the job's log)."""
    return tqdm(
        range(first, epochs + 1),
        desc=desc,
        unit="epoch",
        initial=first - 1,
        total=epochs,
        disable=not progress,
        file=sys.stderr,
        ascii=True,
        mininterval=0,
    )


class _Run:
    """The state of one :func:`fit` call and the work of one epoch."""

    def __init__(self, trainer, train, rows_all, opt, masks, step, augment, checkpoint, desc):
        self.trainer = trainer
        self.model, self.optimizer, _, self.generator, self.augment_generator = trainer
        self.train, self.rows_all, self.opt = train, rows_all, opt
        self.masks, self.step, self.augment = masks, step, augment
        self.checkpoint, self.desc = checkpoint, desc
        self.device = train.x.device
        self.total, self.count = 0.0, 0

    def train_epoch(self, epoch: int, done_batches: int, guard: SignalGuard | None) -> None:
        """One epoch of SGD steps (skipping ``done_batches``, trained before an interruption)."""
        self.model.train()
        epoch_start = self.generator.get_state()
        n = len(self.rows_all)
        for k, batch in enumerate(_batches(n, self.opt.batch_size, self.generator)):
            if k < done_batches:
                continue  # trained before the interruption
            rows = self.rows_all[batch.to(self.device)]
            self._step(rows)
            if guard is not None and guard.received is not None:
                state = _state(self.trainer, self.device, self.opt, n, epoch - 1, k + 1)
                self.checkpoint.save(
                    {**state, "order_generator": epoch_start, "loss": (self.total, self.count)}
                )
                _exit_on_signal(guard, self.desc, self.checkpoint, epoch - 1, k + 1, self.opt)

    def _step(self, rows: torch.Tensor) -> None:
        x, y = self.train.x[rows], self.train.y[rows]
        if self.augment is not None:
            x = self.augment(x, self.augment_generator)
        self.optimizer.zero_grad(set_to_none=True)
        if self.step is not None:
            loss = self.step(x, y, rows)
        else:
            logits = self.model(x, None if self.masks is None else self.masks.unmuted(rows))
            loss = F.cross_entropy(logits, y)
            loss.backward()
        self.optimizer.step()
        self.total += float(loss.detach()) * len(rows)
        self.count += len(rows)

    def end_of_epoch(self, epoch: int, guard: SignalGuard) -> None:
        """Save the periodic checkpoint, or the one a signal asked for (then exit)."""
        opt, every = self.opt, self.checkpoint.every
        if guard.received is not None or (epoch % every == 0 and epoch < opt.epochs):
            state = _state(self.trainer, self.device, opt, len(self.rows_all), epoch, 0)
            self.checkpoint.save(state)
        if guard.received is not None:
            _exit_on_signal(guard, self.desc, self.checkpoint, epoch, 0, opt)


def _state(trainer, device, opt: OptimSpec, n_rows: int, epoch: int, batch: int) -> dict:
    """Training state after ``epoch`` epochs and ``batch`` batches of the next one."""
    model, optimizer, schedule, generator, augment_generator = trainer
    return {
        "epoch": epoch,
        "batch": batch,
        "epochs": opt.epochs,
        "n_rows": n_rows,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": rng_state(device),
        "order_generator": generator.get_state(),  # at the start of the next epoch
        "augment_generator": augment_generator.get_state(),
        "loss": (0.0, 0),  # the running training loss of the epoch in progress
        "threads": torch.get_num_threads(),
        "device": device.type,
    }


def _restore(saved: Mapping, trainer, n_rows: int, opt: OptimSpec, device):
    """Load a saved training state; return (first epoch, done batches, loss sum, count)."""
    model, optimizer, schedule, generator, augment_generator = trainer
    if saved["n_rows"] != n_rows or saved["epochs"] != opt.epochs:
        raise ValueError(
            f"the checkpoint trained {saved['n_rows']} examples for {saved['epochs']} epochs, "
            f"this run {n_rows} for {opt.epochs}: delete the checkpoint and run again"
        )
    if (saved["threads"], saved["device"]) != (torch.get_num_threads(), device.type):
        log.warning(
            "the checkpoint was made with %d thread(s) on %s, this run has %d on %s: the "
            "result may differ in its last bits from an uninterrupted run",
            saved["threads"],
            saved["device"],
            torch.get_num_threads(),
            device.type,
        )
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    set_rng_state(saved["rng"], device)
    generator.set_state(saved["order_generator"])
    augment_generator.set_state(saved["augment_generator"])
    total, count = saved["loss"]
    return saved["epoch"] + 1, saved["batch"], total, count


def _log_resume(desc: str, saved: Mapping, opt: OptimSpec, n_rows: int, checkpoint) -> None:
    epoch, batch = saved["epoch"], saved["batch"]
    if epoch >= opt.epochs:
        log.info("%s: all %d epochs were done (checkpoint %s)", desc, opt.epochs, checkpoint.path)
        return
    within = ""
    if batch:
        within = f", after {batch} of its {math.ceil(n_rows / opt.batch_size)} batches"
    log.info(
        "%s: resuming from epoch %d of %d%s (checkpoint %s)",
        desc,
        epoch + 1,
        opt.epochs,
        within,
        checkpoint.path,
    )


def _exit_on_signal(guard: SignalGuard, desc, checkpoint, epochs: int, batches: int, opt) -> None:
    """Log where the checkpoint stands, then leave as the signal would have."""
    log.warning(
        "%s: %s received; saved a checkpoint after %d of %d epochs%s (%s); exiting",
        desc,
        signal.Signals(guard.received).name,
        epochs,
        opt.epochs,
        f" and {batches} batches" if batches else "",
        checkpoint.path,
    )
    guard.exit()
