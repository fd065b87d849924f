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
from .optim import OptimSpec, build_optimizer, clip_gradients
from .precision import autocast, loss_scaler, to_channels_last, to_channels_last_batch

__all__ = ["fit"]

log = logging.getLogger(__name__)


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
    order is the same with and without it. ``opt.precision`` and ``opt.channels_last``:
    :class:`_Run` (:mod:`memorization.method.precision`).

    With ``checkpoint`` (:mod:`memorization.method.checkpoint`), training resumes from the
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
        first, done_batches = run.resume(saved)
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
    """The optimizer of ``opt`` (SGD with momentum and weight decay, or AdamW) and its
    learning-rate schedule (:func:`~.optim.build_optimizer`)."""
    return build_optimizer(model.parameters(), opt)


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
    """The state of one :func:`fit` call and the work of one epoch.

    ``opt.precision``: bf16 and fp16 run the forward pass and the loss under autocast
    (fp16 with a loss scaler; the gradients are unscaled before clipping); parameters and
    optimizer state stay float32. A ``step`` of its own runs in the arithmetic it sets up
    itself (fp16 refused: it would not scale its loss). ``opt.channels_last`` converts a
    convolutional model and every batch to channels-last (a model without convolutions is
    left as it is, with a note in the log).
    """

    def __init__(self, trainer, train, rows_all, opt, masks, step, augment, checkpoint, desc):
        self.trainer = trainer
        self.model, self.optimizer, _, self.generator, self.augment_generator = trainer
        self.train, self.rows_all, self.opt = train, rows_all, opt
        self.masks, self.step, self.augment = masks, step, augment
        self.checkpoint, self.desc = checkpoint, desc
        self.device = train.x.device
        self.total, self.count = 0.0, 0
        if opt.channels_last:  # in place: the optimizer keeps the same parameters
            to_channels_last(self.model)
        # fp16's loss scaler (None for fp32 and bf16); a custom step does its own backward
        self.scaler = loss_scaler(opt.precision, self.device)
        if self.scaler is not None and step is not None:
            raise ValueError(
                f"precision: {opt.precision} needs loss scaling, which a training step of its "
                "own (e.g. the gradient statistics') does not do: use bf16 or fp32"
            )

    def resume(self, saved: Mapping) -> tuple[int, int]:
        """Load a saved state (fp16's loss scale too); return (first epoch, done batches)."""
        n_rows = len(self.rows_all)
        first, done, self.total, self.count = _restore(
            saved, self.trainer, n_rows, self.opt, self.device
        )
        if self.scaler is not None and "scaler" in saved:
            self.scaler.load_state_dict(saved["scaler"])
        return first, done

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
                self._add_scaler(state)
                self.checkpoint.save(
                    {**state, "order_generator": epoch_start, "loss": (self.total, self.count)}
                )
                _exit_on_signal(guard, self.desc, self.checkpoint, epoch - 1, k + 1, self.opt)

    def _step(self, rows: torch.Tensor) -> None:
        x, y = self.train.x[rows], self.train.y[rows]
        if self.augment is not None:
            x = self.augment(x, self.augment_generator)
        if self.opt.channels_last:
            x = to_channels_last_batch(x)
        self.optimizer.zero_grad(set_to_none=True)
        if self.step is not None:  # its own forward and backward, in its own arithmetic
            loss = self.step(x, y, rows)
        else:
            with autocast(self.opt.precision, self.device):  # fp32: no autocast at all
                logits = self.model(x, None if self.masks is None else self.masks.unmuted(rows))
                loss = F.cross_entropy(logits, y)
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
        clip_gradients(self.model, self.opt)
        if self.scaler is None:
            self.optimizer.step()
        else:  # skips the step when the scaled gradients overflowed
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.total += float(loss.detach()) * len(rows)
        self.count += len(rows)

    def end_of_epoch(self, epoch: int, guard: SignalGuard) -> None:
        """Save the periodic checkpoint, or the one a signal asked for (then exit)."""
        opt, every = self.opt, self.checkpoint.every
        if guard.received is not None or (epoch % every == 0 and epoch < opt.epochs):
            state = _state(self.trainer, self.device, opt, len(self.rows_all), epoch, 0)
            self._add_scaler(state)
            self.checkpoint.save(state)
        if guard.received is not None:
            _exit_on_signal(guard, self.desc, self.checkpoint, epoch, 0, opt)

    def _add_scaler(self, state: dict) -> None:
        """fp16's loss scale goes into the checkpoint (no key otherwise)."""
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()


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
