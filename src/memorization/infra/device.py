"""Device selection for the training scripts, and a GPU lease.

Snakemake's ``resources: gpu=1`` is only a counter: with ``--resources=gpu=2``
it runs at most two GPU jobs at a time but never tells a job *which* card to
use. :func:`lease_device` closes that gap: each card has a lock file, a job
takes (``flock``, exclusive, non-blocking) the first free one and holds it for
the life of the ``with`` block, so two concurrent jobs get different cards.
The kernel drops the lock when the process ends, however it ends, so a crashed
or killed job never leaves a card reserved.

Design, and the failures each part prevents:

* **Locks name the physical card, the same way in every process of the node.**
  The key is the device UUID (``GPU-8f0c...``, as ``nvidia-smi -L`` prints it),
  else the PCI bus id (``pci-00000000:3B:00.0``), else the card's
  ``CUDA_VISIBLE_DEVICES`` entry (or its local index); the log says which was
  used. A local index or a ``CUDA_VISIBLE_DEVICES`` entry is not enough: under
  SLURM with ``ConstrainDevices=yes`` every job sees its own card renumbered as
  ``CUDA_VISIBLE_DEVICES=0``, so two jobs of one node would both want
  ``gpu-0.lock`` and the second would wait on a card it owns.
* **One lock folder per machine, for every user and whatever ``TMPDIR`` says**:
  :data:`SHARED_LOCK_DIR` (``/tmp/memorization-gpu-locks``), or
  ``$MEMORIZATION_GPU_LOCK_DIR``. A per-user or ``TMPDIR``-based folder (Snakemake
  sets one ``TMPDIR`` per job) would let two jobs take the same card. The folder
  appears atomically with mode ``1777`` (world-writable, sticky: nobody removes
  another user's lock file); lock files are created ``0666`` whatever the umask.
  An existing file is opened without ``O_CREAT`` (``fs.protected_regular``
  refuses ``O_CREAT`` on another user's file in a sticky folder) and read-only
  when it is not writable (``flock`` works on a read-only descriptor). Card
  lock files are never removed, so every process agrees on the inode it locks.
  The folder must be local to the machine (``/tmp`` is) and spared by cleaners
  of old files in ``/tmp``, and the jobs must see the same ``/tmp`` (SLURM's
  ``job_container/tmpfs`` gives each job its own: harmless where the scheduler
  assigns the cards, else set ``$MEMORIZATION_GPU_LOCK_DIR``).
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

Tests drive the lock logic without GPUs through ``devices=[...]`` (fake card
keys), ``env={...}`` (fake environment variables), or by monkeypatching the
``_cuda_*`` functions (the only ones that touch ``torch.cuda``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import pwd
import re
import socket
import stat
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = [
    "DEFAULT_TIMEOUT",
    "LOCK_DIR_ENV",
    "PREFERENCES",
    "SHARED_LOCK_DIR",
    "Card",
    "SchedulerJob",
    "default_lock_dir",
    "lease_device",
    "lock_file_name",
    "normalize_uuid",
    "physical_ids",
    "resolve_threads",
    "scheduler_job",
    "visible_cards",
]

logger = logging.getLogger("memorization.device")

PREFERENCES = ("auto", "cpu", "cuda")
"""The values ``lease_device`` accepts (the config's ``device`` key)."""

LOCK_DIR_ENV = "MEMORIZATION_GPU_LOCK_DIR"
"""Environment variable overriding the lock folder (:data:`SHARED_LOCK_DIR`)."""

SHARED_LOCK_DIR = Path("/tmp/memorization-gpu-locks")
"""The machine-wide lock folder: a fixed path, not ``TMPDIR`` (which differs between jobs)."""

DEFAULT_TIMEOUT = 3600.0
"""Seconds ``lease_device`` waits for a free card before raising TimeoutError."""

POLL_INTERVAL = 0.1
"""Seconds between two attempts while every GPU is leased."""

JOB_ID_VARS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")
"""Environment variables naming the scheduler job a process belongs to (first set wins)."""

ASSIGNMENT_VARS = (
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
    "GPU_DEVICE_ORDINAL",
    "CUDA_VISIBLE_DEVICES",
)
"""Variables a scheduler sets when it gave the job its own cards."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # no symlinks, FIFOs never block
_RECORD_BYTES = 4096


# --- CUDA queries: the only functions that touch torch.cuda (monkeypatchable) ---


def cuda_device_count() -> int:
    """Number of CUDA devices this process can see (0 without CUDA)."""
    try:
        if not torch.cuda.is_available():
            return 0
        return int(torch.cuda.device_count())
    except Exception:  # a broken driver counts as no GPU
        return 0


def _cuda_set_device(index: int) -> None:
    torch.cuda.set_device(index)


def _cuda_device_name(index: int) -> str | None:
    try:
        return torch.cuda.get_device_name(index)
    except Exception:
        return None


def _cuda_device_uuid(index: int) -> str | None:
    """UUID of local device ``index`` as nvidia-smi writes it (``GPU-xxxxxxxx-...``), or None."""
    try:
        raw = torch.cuda.get_device_properties(index).uuid
    except Exception:
        return None
    return normalize_uuid(raw)


def _cuda_device_pci_bus_id(index: int) -> str | None:
    """PCI address of local device ``index`` (``00000000:3B:00.0``), or None."""
    try:
        props = torch.cuda.get_device_properties(index)
        domain, bus, device = props.pci_domain_id, props.pci_bus_id, props.pci_device_id
    except Exception:
        return None
    if not (domain or bus or device):
        return None
    return f"{int(domain):08X}:{int(bus):02X}:{int(device):02X}.0"


def normalize_uuid(raw: object) -> str | None:
    """``GPU-<8-4-4-4-12 hex>`` from torch's uuid (its ``bytes`` or its string), else None.

    A ``GPU-``/``MIG-`` prefix already present is kept; an all-zero or empty
    uuid (some drivers, emulators) is None.
    """
    if raw is None:
        return None
    data = getattr(raw, "bytes", None)
    if isinstance(data, (bytes, bytearray, list, tuple)) and len(data) == 16:
        text = str(uuidlib.UUID(bytes=bytes(bytearray(data))))
    else:
        text = str(raw).strip()
    prefix = ""
    if text[:4].upper() in ("GPU-", "MIG-"):
        prefix, text = text[:4].upper(), text[4:]
    text = text.lower()
    if not text or set(text) <= {"0", "-"}:
        return None
    if not prefix and _UUID.fullmatch(text):
        prefix = "GPU-"
    return prefix + text


# --- which cards, which job ---


def physical_ids(count: int, cuda_visible_devices: str | None = None) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` entries of the ``count`` visible devices, local index order.

    Entry ``k`` of ``CUDA_VISIBLE_DEVICES`` (read from the environment when
    ``cuda_visible_devices`` is None) is local device ``k``; without it the
    ids are ``"0"`` .. ``str(count - 1)``. Should the runtime report more
    devices than the variable lists, the extra ones get ``"local-<k>"``.
    These name a card only within one process's view (a cgroup renumbers
    them); the lock key prefers the UUID (:func:`visible_cards`).
    """
    if cuda_visible_devices is None:
        cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cuda_visible_devices is None:
        return [str(k) for k in range(count)]
    entries = [e.strip() for e in cuda_visible_devices.split(",") if e.strip()]
    return [entries[k] if k < len(entries) else f"local-{k}" for k in range(count)]


@dataclass(frozen=True)
class Card:
    """One visible GPU: its local index (``cuda:<index>``) and the key its lock is named by."""

    index: int
    key: str
    source: str
    """Where the key comes from: ``device uuid``, ``PCI bus id``,
    ``CUDA_VISIBLE_DEVICES entry``, ``local index`` or ``fake device``."""

    def __str__(self) -> str:
        return f"cuda:{self.index} = {self.key}"


def visible_cards(env: Mapping[str, str] | None = None) -> list[Card]:
    """The CUDA devices this process sees, each keyed by UUID, else PCI bus id, else its
    ``CUDA_VISIBLE_DEVICES`` entry or local index ([] without GPU)."""
    env = os.environ if env is None else env
    count = cuda_device_count()
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    entries = physical_ids(count, cvd) if cvd is not None else [str(k) for k in range(count)]
    cards = []
    for k in range(count):
        if uuid := _cuda_device_uuid(k):
            cards.append(Card(k, uuid, "device uuid"))
        elif pci := _cuda_device_pci_bus_id(k):
            cards.append(Card(k, f"pci-{pci}", "PCI bus id"))
        else:
            source = "CUDA_VISIBLE_DEVICES entry" if cvd is not None else "local index"
            cards.append(Card(k, entries[k], source))
    return cards


@dataclass(frozen=True)
class SchedulerJob:
    """The scheduler job this process runs in, and whether it was given its own cards."""

    job_id: str
    variable: str
    """The variable the job id was read from (``SLURM_JOB_ID``, ...)."""
    assigned_by: str | None
    """``NAME=value`` of the variable saying the scheduler assigned the cards, else None."""

    def __str__(self) -> str:
        return f"{self.variable.split('_')[0]} job {self.job_id}"


def scheduler_job(env: Mapping[str, str] | None = None) -> SchedulerJob | None:
    """The scheduler job of this process (SLURM, PBS, LSF), None outside one."""
    env = os.environ if env is None else env
    for var in JOB_ID_VARS:
        if job_id := env.get(var, "").strip():
            assigned = next((f"{a}={env[a]}" for a in ASSIGNMENT_VARS if env.get(a)), None)
            return SchedulerJob(job_id, var, assigned)
    return None


# --- lock folder and lock files ---


def lock_file_name(key: str) -> str:
    """File name of the lock for one card key, safe on any filesystem."""
    safe = _UNSAFE.sub("_", key).strip("._") or "unnamed"
    return f"gpu-{safe}.lock"


def _job_lock_name(key: str, job: SchedulerJob) -> str:
    job_id = _UNSAFE.sub("_", job.job_id).strip("._") or "unnamed"
    return lock_file_name(key)[: -len(".lock")] + f".job-{job_id}.lock"


def default_lock_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$MEMORIZATION_GPU_LOCK_DIR``, else :data:`SHARED_LOCK_DIR` (never ``TMPDIR``)."""
    env = os.environ if env is None else env
    override = env.get(LOCK_DIR_ENV)
    return Path(override) if override else SHARED_LOCK_DIR


def _ensure_lock_dir(path: Path) -> None:
    """Create the lock folder with mode 1777 unless it exists (made by anyone).

    The folder is made under a temporary name, given its mode, then renamed:
    it never exists with the umask's mode, when another user could not create
    a lock file in it. An existing folder is used as it is.
    """
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent)
    except OSError as exc:
        if path.is_dir():
            return
        raise PermissionError(
            f"cannot create the GPU lock folder {path}: {exc}; set {LOCK_DIR_ENV} to a folder "
            "every GPU job of this machine can write"
        ) from exc
    try:
        os.chmod(tmp, 0o1777)
        os.rename(tmp, path)  # atomic; fails when another process made a non-empty one
    except OSError:
        with contextlib.suppress(OSError):
            os.rmdir(tmp)
        if not path.is_dir():
            raise


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _unwritable_message(path: Path, exc: OSError) -> str:
    folder = path.parent
    try:
        st = folder.stat()
        made = f"owned by {_user_name(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o}"
    except OSError:
        made = "not readable"
    return (
        f"cannot open or create the GPU lock file {path} as user {_user_name(os.getuid())} "
        f"({exc.strerror}); its folder {folder} is {made}. Ask its owner to `chmod 1777` it, or "
        f"set {LOCK_DIR_ENV} to a folder that every GPU job of this machine shares and can write"
    )


def _open_lock(path: Path) -> tuple[int, bool]:
    """Open (creating it 0666 if absent) one lock file: ``(fd, writable)``.

    An existing file is opened without ``O_CREAT`` (refused on another user's
    file in a sticky folder under ``fs.protected_regular``), read-write when
    it may be written, else read-only.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | _OPEN_FLAGS)
            writable = True
        except FileNotFoundError:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, 0o666)
            except FileExistsError:
                continue  # created meanwhile by another process: open that one
            except PermissionError as exc:
                raise PermissionError(_unwritable_message(path, exc)) from exc
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666)  # whatever the umask: other users must write it too
            writable = True
        except PermissionError:
            try:
                fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
            except FileNotFoundError:
                continue
            except PermissionError as exc:
                raise PermissionError(_unwritable_message(path, exc)) from exc
            writable = False
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, f"GPU lock {path} is not a regular file")
        return fd, writable


@dataclass
class _Lock:
    """One locked file."""

    path: Path
    fd: int
    writable: bool
    transient: bool  # a per-job lock: removed on release


def _try_lock(path: Path, transient: bool = False) -> _Lock | None:
    """The locked file, or None when another process holds it."""
    while True:
        fd, writable = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        # a per-job lock may have been removed by its last holder between open and flock:
        # the lock is ours only if the path still names the locked file
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            return _Lock(path, fd, writable, transient)
        os.close(fd)


def _release(lock: _Lock) -> None:
    try:
        if lock.transient:
            with contextlib.suppress(OSError):
                os.unlink(lock.path)  # still locked: whoever opened it re-checks the path
        elif lock.writable:
            with contextlib.suppress(OSError):
                os.ftruncate(lock.fd, 0)  # no holder any more
        fcntl.flock(lock.fd, fcntl.LOCK_UN)  # also for forked children sharing the fd
    finally:
        os.close(lock.fd)


# --- holder records ---


def _identity(card: Card, job: SchedulerJob | None) -> dict:
    """Who holds a lock: written into the lock file, read back by waiting jobs."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": _user_name(os.getuid()),
        "job": None if job is None else job.job_id,
        "scheduler": None if job is None else job.variable,
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "card": card.key,
        "cuda": card.index,
    }


def _write_record(lock: _Lock, record: dict) -> None:
    if not lock.writable:
        return  # another user's read-only file: the holder stays unknown to waiters
    with contextlib.suppress(OSError):
        os.ftruncate(lock.fd, 0)
        os.pwrite(lock.fd, (json.dumps(record) + "\n").encode(), 0)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _read_record(path: Path) -> dict | None:
    """The holder record in a lock file, None when absent, unreadable or stale.

    Stale: written on this host by a process that no longer lives (a holder
    that could not write, the file being another user's read-only one, leaves
    its predecessor's record behind).
    """
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        record = json.loads(os.pread(fd, _RECORD_BYTES, 0).decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return None
    if record.get("host") == socket.gethostname() and not _pid_alive(record["pid"]):
        return None
    return record


def _describe(record: dict | None) -> str:
    if record is None:
        return "an unknown process (no readable holder record in its lock file)"
    job = record.get("job")
    scheduler = (record.get("scheduler") or "").split("_")[0] or "scheduler"
    where = f"{scheduler} job {job}" if job else "no scheduler job"
    return (
        f"pid {record['pid']} (user {record.get('user')}, {where}, host {record.get('host')}, "
        f"since {record.get('since')})"
    )


# --- acquiring ---


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
    lock bypassed); they also go to the ``memorization.device`` logger.
    devices: fake card keys standing in for the visible GPUs (tests); they
    are leased like real ones, but torch.cuda is never called.
    env: the environment variables to read (``CUDA_VISIBLE_DEVICES``, the
    scheduler's, ``MEMORIZATION_GPU_LOCK_DIR``); default ``os.environ``.
    """
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


def resolve_threads(n: int) -> int:
    """Give torch ``n`` intra-op threads (the rule's ``threads``); return ``n``."""
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be at least 1, not {n}")
    torch.set_num_threads(n)
    return n
