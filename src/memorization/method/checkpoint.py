"""Checkpoint and resume of training: a killed job goes on where it stopped.

A training stage (turn-over scoring, the plain-training studies) hands a
:class:`Checkpoint` to the library function that trains, which passes it on to
:func:`memorization.method.training.fit`. The checkpoint file holds everything the
rest of the training depends on:

- ``fit``'s state: the model's weights, the optimizer (momentum buffers), the
  learning-rate schedule, every random stream (torch CPU, CUDA when training
  there, NumPy's and Python's global generators, ``fit``'s batch-order and
  augmentation generators), the number of finished epochs and, when it was
  saved in the middle of an epoch, how many of that epoch's batches are done
  (with the batch-order generator's state at the start of the epoch, so that the
  resumed run draws the same batch order and skips the done batches);
- the caller's per-epoch records so far (:class:`Records`: e.g. the scores'
  history, the dynamics arrays, the within-epoch sums of the gradient
  statistics) and, for a stage with several training runs, which runs are
  finished.

It is saved atomically (temporary file, then rename) every ``every`` epochs and
when the process gets SIGTERM (a time limit, pre-emption) or SIGINT (Ctrl-C):
the signal is noted, the batch in progress finishes, the state is saved and the
process exits as the signal would have made it (status 143 for SIGTERM,
``KeyboardInterrupt`` for SIGINT). SIGKILL cannot be caught: then the last
periodic checkpoint is used. A resumed run computes bit-identical results to an
uninterrupted one on the CPU (with the same number of threads).

The file lies beside the artifact as ``.<artifact name>.checkpoint``
(:func:`checkpoint_path`), not among the rule's outputs, which Snakemake deletes
when a job fails; the stage removes it once the artifact is written. It stores a
fingerprint: the stage and its config slice hash, a hash of this package's
source code and the torch version. A checkpoint whose fingerprint differs, or
that cannot be read (truncated), is never resumed: that is logged, the file is
deleted and the training starts over.
"""

from __future__ import annotations

import copy
import functools
import glob
import hashlib
import logging
import os
import random
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..infra.files import atomic_write, stable_hash
from .optim import optimizer_state_copies

if TYPE_CHECKING:  # for the annotations only
    from .optim import OptimSpec

__all__ = [
    "Checkpoint",
    "Records",
    "RunCheckpoint",
    "SignalGuard",
    "checkpoint_bytes",
    "checkpoint_path",
    "optimizer_state_copies",
    "source_hash",
]

log = logging.getLogger(__name__)

#: version of the checkpoint file's layout
FORMAT = 1


@functools.cache
def source_hash() -> str:
    """SHA-256 (16 hex digits) of the memorization package's ``.py`` files (paths and text)."""
    root = Path(__file__).resolve().parents[1]  # the memorization package
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def checkpoint_bytes(parameters: int, opt: OptimSpec | None = None, records: int = 0) -> int:
    """Disk a training's checkpoint needs at its peak: the weights and the optimizer's state
    of ``opt`` (:func:`optimizer_state_copies`) in float32, plus the records, twice (the new
    file is written before the old one goes)."""
    per_copy = 4 * parameters * (1 + optimizer_state_copies(opt)) + records + (1 << 20)
    return 2 * per_copy


def checkpoint_path(output: str | os.PathLike, part: int | None = None) -> Path:
    """Where the checkpoint of the job writing ``output`` lies: ``.<name>.checkpoint`` beside
    it (``.<name>.seed<part>.checkpoint`` for one of several seeds the job trains)."""
    output = Path(output)
    tag = "" if part is None else f".seed{int(part)}"
    return output.parent / f".{output.name}{tag}.checkpoint"


# --- the caller's records -----------------------------------------------------------------


class Records:
    """A caller's per-epoch records that a checkpoint saves and restores in place.

    Each item is a NumPy array, a list or a dict (e.g. per-epoch arrays filled by an
    ``after_epoch`` callback, within-epoch sums kept in a dict): restoring writes into
    the same objects, so closures that hold them see the restored values.
    """

    def __init__(self, **items: np.ndarray | list | dict) -> None:
        for name, item in items.items():
            if not isinstance(item, (np.ndarray, list, dict)):
                raise TypeError(
                    f"record {name!r} is a {type(item).__name__}: it cannot be "
                    "restored in place (use an array, a list or a dict)"
                )
        self._items = items

    def state_dict(self) -> dict:
        return copy.deepcopy(self._items)

    def load_state_dict(self, state: Mapping) -> None:
        if set(state) != set(self._items):
            raise ValueError(f"records {sorted(state)} do not match {sorted(self._items)}")
        for name, item in self._items.items():
            saved = copy.deepcopy(state[name])
            if isinstance(item, np.ndarray):
                item[...] = saved
            elif isinstance(item, list):
                item[:] = saved
            else:
                item.clear()
                item.update(saved)


# --- signals ------------------------------------------------------------------------------


class SignalGuard:
    """Defer SIGTERM and SIGINT while training (a context manager).

    The handlers only note the signal (:attr:`received`); the training loop saves
    a checkpoint at its next batch boundary and calls :meth:`exit`. A second signal
    before that stops the process at once. The previous handlers are restored on
    leaving. Outside the main thread (where Python cannot install handlers) it
    does nothing.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                previous = signal.getsignal(sig)
                if previous is not None:  # None: a handler not installed from Python
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # a second signal: do not wait for the checkpoint
            self._restore()
            self.exit(signum)
        self.received = signum

    def exit(self, signum: int | None = None) -> None:
        """Leave as the signal would have: ``KeyboardInterrupt`` or exit status 128 + signal."""
        signum = self.received if signum is None else signum
        self._restore()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + int(signum))


# --- random streams -----------------------------------------------------------------------


def rng_state(device: torch.device) -> dict:
    """The global random streams: torch CPU (and CUDA on ``device``), NumPy, Python."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": None,
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


# --- the checkpoint file ------------------------------------------------------------------


class Checkpoint:
    """The resumable state of one training stage, kept in one file.

    ``identity`` names what is trained (e.g. ``{"stage": "score", "config_hash":
    ...}``); with the source hash and the torch version it makes the fingerprint a
    file must carry to be resumed. ``every``: save after every this many epochs.

    A training function registers its records with :meth:`track` (which restores
    them from a valid file), trains each run through ``fit(...,
    checkpoint=checkpoint.run(name))`` (``fit(..., checkpoint=checkpoint)`` for a
    single run), skips runs that :meth:`finished` says are done and marks a run
    done with :meth:`finish`. The stage calls :meth:`remove` once its artifact is
    written.
    """

    def __init__(self, path: str | os.PathLike, identity: Mapping, every: int = 5) -> None:
        if int(every) < 1:
            raise ValueError(f"a checkpoint is saved every >= 1 epochs, got {every}")
        self.path = Path(path)
        self.every = int(every)
        self.fingerprint = {
            "format": FORMAT,
            "source": source_hash(),
            "torch": torch.__version__,
            **{
                k: v if isinstance(v, (str, int, float, bool)) else str(v)
                for k, v in identity.items()
            },
        }
        self._records: Records | None = None
        self._finished: list[str] = []
        self._training: dict | None = None
        self._state: dict | None = None
        self._loaded = False

    @classmethod
    def for_output(
        cls,
        output: str | os.PathLike,
        stage: str,
        config: Mapping,
        every: int = 5,
        part: int | None = None,
        **identity,
    ) -> Checkpoint:
        """The checkpoint of the stage writing ``output`` from the config slice ``config``
        (``part``: of one of several seeds the stage trains)."""
        ident = {"stage": stage, "config_hash": stable_hash(dict(config)), **identity}
        if part is not None:
            ident["part"] = int(part)
        return cls(checkpoint_path(output, part), ident, every)

    # -- reading ------------------------------------------------------------------------

    def _load(self) -> dict | None:
        """The saved state if the file exists, is readable and has our fingerprint."""
        if self._loaded:
            return self._state
        self._loaded = True
        if not self.path.exists():
            return None
        try:
            # weights_only=False: the file holds NumPy arrays and RNG tuples; it is one
            # this workflow wrote into its own results folder
            state = torch.load(self.path, map_location="cpu", weights_only=False)
            fingerprint = state["fingerprint"]
            records, finished, training = state["records"], state["finished"], state["training"]
        except Exception as err:  # noqa: BLE001 - any unreadable file means: start over
            log.warning(
                "checkpoint %s cannot be read (%s: %s); starting over and deleting it",
                self.path,
                type(err).__name__,
                err,
            )
            self.remove()
            return None
        if fingerprint != self.fingerprint:
            differ = sorted(
                k
                for k in set(fingerprint) | set(self.fingerprint)
                if fingerprint.get(k) != self.fingerprint.get(k)
            )
            why = ", ".join(
                f"{k} {fingerprint.get(k)!r} there, {self.fingerprint.get(k)!r} now" for k in differ
            )
            log.warning(
                "checkpoint %s was made from another config or code (%s); not resuming it: "
                "starting over and deleting it",
                self.path,
                why,
            )
            self.remove()
            return None
        self._state = {"records": records, "finished": list(finished), "training": training}
        return self._state

    def track(self, records: Records | None) -> bool:
        """Register the caller's records; restore them (and the finished runs) from the file.

        Returns whether a checkpoint was restored. Call it once, before training.
        """
        self._records = records
        state = self._load()
        if state is None:
            return False
        if records is not None and state["records"] is not None:
            records.load_state_dict(state["records"])
        self._finished = list(state["finished"])
        self._training = state["training"]
        return True

    def finished(self, run: str) -> bool:
        """Whether ``run`` had finished when the checkpoint was saved (its records restored)."""
        if not self._loaded:
            self.track(self._records)
        done = run in self._finished
        if done:
            log.info("%s: finished before the interruption (checkpoint %s)", run, self.path)
        return done

    # -- writing ------------------------------------------------------------------------

    def run(self, name: str = "main") -> RunCheckpoint:
        """The handle ``fit`` uses to resume and save training run ``name``."""
        return RunCheckpoint(self, name)

    def save(self, run: str | None, training: Mapping | None) -> None:
        """Write the records, the finished runs and ``run``'s training state atomically."""
        state = {
            "fingerprint": self.fingerprint,
            "records": None if self._records is None else self._records.state_dict(),
            "finished": list(self._finished),
            "training": None if training is None else {"run": run, **training},
        }
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))
        self._training = state["training"]
        self._loaded = True

    def finish(self, run: str) -> None:
        """Mark ``run`` done: a later resume skips it and keeps its records."""
        self._finished.append(run)
        self.save(None, None)

    def remove(self) -> None:
        """Delete the checkpoint file (and any half-written one)."""
        self.path.unlink(missing_ok=True)
        for part in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.part"):
            part.unlink(missing_ok=True)


class RunCheckpoint:
    """One training run of a :class:`Checkpoint`, as
    :func:`memorization.method.training.fit` uses it."""

    def __init__(self, checkpoint: Checkpoint, name: str) -> None:
        self.checkpoint = checkpoint
        self.name = name

    @property
    def every(self) -> int:
        return self.checkpoint.every

    @property
    def path(self) -> Path:
        return self.checkpoint.path

    def resume(self) -> dict | None:
        """The saved training state of this run, or ``None`` to start it from scratch."""
        ckpt = self.checkpoint
        if not ckpt._loaded:
            ckpt.track(ckpt._records)
        training = ckpt._training
        if training is None:
            return None
        if training["run"] != self.name:
            raise RuntimeError(
                f"checkpoint {ckpt.path} holds run {training['run']!r}, not {self.name!r}: "
                f"delete it (rm {ckpt.path}) and run again"
            )
        return training

    def save(self, training: Mapping) -> None:
        self.checkpoint.save(self.name, training)
