"""Device selection for the training scripts, and a GPU lease.

Snakemake's ``resources: gpu=1`` is only a counter: with ``--resources=gpu=2``
it runs at most two GPU jobs at a time but never tells a job *which* card to
use. :func:`lease_device` closes that gap: each card has a lock file, a job
takes (``flock``, exclusive, non-blocking) the first free one and holds it for
the life of the ``with`` block, so two concurrent jobs get different cards.
The kernel drops the lock when the process ends, however it ends, so a crashed
or killed job never leaves a card reserved.

Design, and the failures each part prevents:

* **Locks name the physical card, the same way in every process of the node**
  (:mod:`.gpu_cards`: the device UUID, else the PCI bus id, else the
  ``CUDA_VISIBLE_DEVICES`` entry; the log says which was used).
* **One lock folder per machine, for every user and whatever ``TMPDIR`` says**
  (:mod:`.gpu_locks`). The folder must be local to the machine (``/tmp`` is) and spared
  by cleaners of old files in ``/tmp``, and the jobs must see the same ``/tmp`` (SLURM's
  ``job_container/tmpfs`` gives each job its own: harmless where the scheduler assigns
  the cards, else set ``$MEMORIZATION_GPU_LOCK_DIR``).
* **A scheduler's assignment is respected, and one job never waits on another
  job.** When the job runs under a scheduler that gave it its own cards
  (``SLURM_JOB_ID`` with ``SLURM_JOB_GPUS``, ``SLURM_STEP_GPUS``,
  ``GPU_DEVICE_ORDINAL`` or ``CUDA_VISIBLE_DEVICES``), a card lock held by a
  process of a *different* job is foreign (stale naming, another cgroup): the
  job uses the card anyway and logs a warning. The holder's identity (pid, host,
  user, scheduler job, start time) is written into the lock file, read back by
  waiters and cleared on release; a record whose pid is dead on this host is
  stale and never counts as foreign. Processes of *one* job (several Snakemake
  jobs inside one allocation) still exclude each other: each first takes a
  per-job lock on the card (``gpu-<key>.job-<id>.lock``, removed on release),
  then the card lock.
* **A bounded wait**: when every card is leased the call polls for up to
  ``timeout`` seconds (:data:`DEFAULT_TIMEOUT`, an hour; None waits forever),
  then raises TimeoutError naming each card (key and local index) and its holder.

Usage in a script::

    with lease_device(snakemake.params.device, log=logger.info) as device:
        model.to(device)
        ...

The parts, one job each: card identity (:mod:`.gpu_cards`), the scheduler job
(:mod:`.scheduler`), the lock folder and files (:mod:`.gpu_locks`), holder records
(:mod:`.lock_holders`), thread counts (:mod:`.threads`); this module is the lease
policy, and every name of the parts stays importable from here.

Tests drive the lock logic without GPUs through ``devices=[...]`` (fake card
keys), ``env={...}`` (fake environment variables), or by setting the ``_cuda_*``
functions (the only ones that touch ``torch.cuda``) on this module: a name of a part
set here is set in that part too, where its functions read it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import gpu_cards, gpu_locks, lock_holders, scheduler, threads
from .gpu_cards import (  # noqa: F401 (the _cuda_* queries: stand-ins are set here)
    Card,
    _cuda_device_name,
    _cuda_device_pci_bus_id,
    _cuda_device_uuid,
    _cuda_set_device,
    cuda_device_count,
    normalize_uuid,
    physical_ids,
    visible_cards,
)
from .gpu_locks import (
    LOCK_DIR_ENV,
    SHARED_LOCK_DIR,
    _ensure_lock_dir,
    _job_lock_name,
    _Lock,
    _release,
    _try_lock,
    default_lock_dir,
    lock_file_name,
)
from .lock_holders import _describe, _identity, _read_record, _write_record
from .scheduler import ASSIGNMENT_VARS, JOB_ID_VARS, SchedulerJob, scheduler_job
from .threads import resolve_threads

if TYPE_CHECKING:  # torch is loaded by the jobs that lease a device, not on import
    import torch

__all__ = [
    "ASSIGNMENT_VARS",
    "DEFAULT_TIMEOUT",
    "JOB_ID_VARS",
    "LOCK_DIR_ENV",
    "PREFERENCES",
    "SHARED_LOCK_DIR",
    "Card",
    "SchedulerJob",
    "cuda_device_count",
    "default_lock_dir",
    "lease_device",
    "lock_file_name",
    "normalize_uuid",
    "physical_ids",
    "resolve_threads",
    "scheduler_job",
    "visible_cards",
]

logger = logging.getLogger(__name__)

PREFERENCES = ("auto", "cpu", "cuda")
"""The values ``lease_device`` accepts (the config's ``device`` key)."""

DEFAULT_TIMEOUT = 3600.0
"""Seconds ``lease_device`` waits for a free card before raising TimeoutError."""

POLL_INTERVAL = 0.1
"""Seconds between two attempts while every GPU is leased."""


@dataclass
class _Lease:
    card: Card
    locks: list[_Lock] = field(default_factory=list)
    foreign: dict | None = None  # the other job's holder record when its lock is bypassed

    def sign(self, job: SchedulerJob | None) -> _Lease:
        """Write this process's identity into its lock files, for waiting jobs to read."""
        for lock in self.locks:
            _write_record(lock, _identity(self.card, job))
        return self


@dataclass
class _Busy:
    card: Card
    record: dict | None  # the holder's, None when unknown
    foreign: bool  # held by a process of another scheduler job, on a card assigned to us


def _try_card(
    card: Card, lock_dir: Path, job: SchedulerJob | None, allow_foreign: bool
) -> _Lease | _Busy:
    """Lease one card, or say who holds it.

    Under a scheduler job the per-job lock comes first, then the card lock; a
    card lock held by another job is bypassed only when ``allow_foreign``, and
    only with the per-job lock held (a folder where it cannot be created,
    another user's read-only one, leaves the card lock alone to decide).
    """
    locks: list[_Lock] = []
    if job is not None:
        job_path = lock_dir / _job_lock_name(card.key, job)
        try:
            job_lock = _try_lock(job_path, transient=True)
        except PermissionError:
            allow_foreign = False
        else:
            if job_lock is None:
                return _Busy(card, _read_record(job_path), foreign=False)
            locks.append(job_lock)
    path = lock_dir / lock_file_name(card.key)
    card_lock = _try_lock(path)
    if card_lock is not None:
        return _Lease(card, [*locks, card_lock])
    record = _read_record(path)
    foreign = (
        job is not None
        and job.assigned_by is not None
        and record is not None
        and record.get("job") != job.job_id
    )
    if foreign and allow_foreign:
        return _Lease(card, locks, foreign=record)
    for lock in locks:
        _release(lock)
    return _Busy(card, record, foreign)


def _busy_lines(busy: Sequence[_Busy]) -> str:
    return "; ".join(f"{b.card} ({b.card.source}) held by {_describe(b.record)}" for b in busy)


def _acquire(
    cards: Sequence[Card],
    lock_dir: Path,
    timeout: float | None,
    say: Callable[[str], None],
    warn: Callable[[str], None] | None = None,
    job: SchedulerJob | None = None,
) -> _Lease:
    """Lease the first free card; wait for one when all are taken.

    Raises TimeoutError after ``timeout`` seconds (None waits forever, 0 tries
    once), naming every card and its holder.
    """
    warn = warn or say
    _ensure_lock_dir(lock_dir)
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        busy: list[_Busy] = []
        for card in cards:
            outcome = _try_card(card, lock_dir, job, allow_foreign=False)
            if isinstance(outcome, _Lease):
                if waited:
                    say(f"GPU {card} became free")
                return outcome.sign(job)
            busy.append(outcome)
        for b in busy:  # no free card: one held only by another job is ours anyway
            if b.foreign:
                outcome = _try_card(b.card, lock_dir, job, allow_foreign=True)
                if isinstance(outcome, _Lease):
                    if outcome.foreign is not None:
                        warn(
                            f"GPU {b.card} was assigned to this job ({job}, {job.assigned_by}) "
                            f"but its lock in {lock_dir} is held by {_describe(outcome.foreign)}: "
                            "a lock of another job on a card the scheduler gave this job is "
                            "foreign (stale lock naming, another cgroup); using the card anyway"
                        )
                    return outcome.sign(job)
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"all {len(cards)} visible GPU(s) stayed leased for {timeout} s: "
                f"{_busy_lines(busy)} (lock files in {lock_dir}). Run fewer GPU jobs at once "
                f"(--resources=gpu=N), raise the timeout, or set device: cpu"
            )
        if not waited:
            waited = True
            limit = "no timeout" if timeout is None else f"timeout {timeout} s"
            say(
                f"all {len(cards)} visible GPU(s) are leased: {_busy_lines(busy)}; "
                f"waiting for one ({limit}, lock files in {lock_dir})"
            )
        pause = POLL_INTERVAL
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        time.sleep(pause)


def _no_gpu_message(env: Mapping[str, str]) -> str:
    import torch  # heavy: as in lease_device

    built = torch.version.cuda
    return (
        "device 'cuda' was requested but no CUDA device is visible "
        f"(torch {torch.__version__}, built with CUDA {built or 'none: a CPU-only build'}, "
        f"CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}). "
        "Run the job on a GPU node (e.g. resources: gpu=1 under the SLURM profile), "
        "install a CUDA build of torch, or set device: auto or cpu in the config."
    )


@contextlib.contextmanager
def lease_device(
    preference: str = "auto",
    *,
    lock_dir: str | os.PathLike[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    log: Callable[[str], object] | None = None,
    devices: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[torch.device]:
    """Yield the device a job should use, holding a GPU lease while inside.

    preference: ``"cpu"`` (never touches locks), ``"auto"`` (a GPU when one is
    visible, else the CPU) or ``"cuda"`` (a GPU, RuntimeError when none is
    visible). The GPU is the first visible card whose lock is free (see the
    module docstring for the lock keys and the scheduler rules); when all are
    leased the call waits, up to ``timeout`` seconds (None: forever), then
    raises TimeoutError naming the cards and their holders.

    lock_dir: where the lock files live; default :func:`default_lock_dir`.
    log: called with each message (which device is used, waiting, a foreign
    lock bypassed); they also go to the ``memorization.infra.device`` logger.
    devices: fake card keys standing in for the visible GPUs (tests); they
    are leased like real ones, but torch.cuda is never called.
    env: the environment variables to read (``CUDA_VISIBLE_DEVICES``, the
    scheduler's, ``MEMORIZATION_GPU_LOCK_DIR``); default ``os.environ``.
    """
    import torch  # heavy: the jobs lease a device; the workflow's start needs no torch

    if preference not in PREFERENCES:
        raise ValueError(
            f"device preference must be one of {', '.join(map(repr, PREFERENCES))}, "
            f"not {preference!r}"
        )
    env = os.environ if env is None else env

    def say(message: str) -> None:
        logger.info(message)
        if log is not None:
            log(message)

    def warn(message: str) -> None:
        logger.warning(message)
        if log is not None:
            log(message)

    if preference == "cpu":
        say("using cpu (device: cpu requested)")
        yield torch.device("cpu")
        return

    fake = devices is not None
    if fake:
        cards = [Card(k, str(d), "fake device") for k, d in enumerate(devices)]
    else:
        cards = visible_cards(env)
    if not cards:
        if preference == "cuda":
            raise RuntimeError(_no_gpu_message(env))
        say("using cpu (no CUDA device visible)")
        yield torch.device("cpu")
        return

    yield from _leased(cards, fake, lock_dir, env, timeout, say, warn)


def _leased(cards, fake, lock_dir, env, timeout, say, warn) -> Iterator[torch.device]:
    """Lease one of ``cards`` (waiting up to ``timeout``) and yield it as a torch device."""
    import torch  # heavy: as in lease_device

    job = scheduler_job(env)
    weak = [c for c in cards if c.source in ("CUDA_VISIBLE_DEVICES entry", "local index")]
    if weak:
        warn(
            f"no device uuid or PCI bus id for {', '.join(f'cuda:{c.index}' for c in weak)}: "
            "their locks are named after this process's view of the cards, which other jobs "
            "of the machine may number differently"
        )
    directory = Path(lock_dir) if lock_dir is not None else default_lock_dir(env)
    lease = _acquire(cards, directory, timeout, say, warn, job)
    card = lease.card
    try:
        if not fake:
            _cuda_set_device(card.index)
        name = None if fake else _cuda_device_name(card.index)
        origin = f"fake device {card.key!r}" if fake else f"{card.source} {card.key!r}"
        say(f"using cuda:{card.index} ({origin}{', ' + name if name else ''})")
        yield torch.device("cuda", card.index)
    finally:
        for lock in reversed(lease.locks):
            _release(lock)


#: the modules this one is made of (see :class:`_Forwarding`)
_PARTS = (gpu_cards, gpu_locks, lock_holders, scheduler, threads)


class _Forwarding(types.ModuleType):
    """This module, where setting a name that a part holds as the same object sets it in
    that part too: the part's functions read their own module's names, so a stand-in CUDA
    query or lock folder set here reaches them."""

    def __setattr__(self, name, value):
        old = self.__dict__.get(name, _Forwarding)
        for part in _PARTS:
            if old is not _Forwarding and vars(part).get(name, _Forwarding) is old:
                setattr(part, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Forwarding
