"""Device selection for the training scripts, and a GPU lease.

Snakemake's ``resources: gpu=1`` is only a counter: with ``--resources gpu=2``
it runs at most two GPU jobs at a time but never tells a job *which* card to
use. :func:`lease_device` closes that gap. Each visible GPU has a lock file;
a job takes (``flock``, exclusive, non-blocking) the first free one and holds
it for the life of the ``with`` block, so two concurrent jobs get different
cards. The kernel drops the lock when the process ends, however it ends, so a
crashed job never leaves a card reserved.

Lock files are named after the *physical* card, not the local index: when a
scheduler (SLURM, a container runtime) sets ``CUDA_VISIBLE_DEVICES=3,5``, local
``cuda:0`` is card ``3`` and its lock is ``gpu-3.lock``, so jobs that see
different subsets of the cards still agree on who holds what. Entries may be
indices or UUIDs (``GPU-ab12...``, ``MIG-...``). All jobs sharing a machine must
use the same lock directory (the default is per user and per machine) and the
same ``CUDA_DEVICE_ORDER`` for this to hold.

Usage in a script::

    with lease_device(snakemake.params.device, log=logger.info) as device:
        model.to(device)
        ...

Tests drive the lock logic without GPUs through ``devices=[...]`` (fake
physical ids), or by monkeypatching :func:`_cuda_device_count`,
:func:`_cuda_set_device` and :func:`_cuda_device_name`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

__all__ = [
    "LOCK_DIR_ENV",
    "PREFERENCES",
    "default_lock_dir",
    "lease_device",
    "lock_file_name",
    "physical_ids",
    "resolve_threads",
]

logger = logging.getLogger("memorization.device")

PREFERENCES = ("auto", "cpu", "cuda")
"""The values ``lease_device`` accepts (the config's ``device`` key)."""

LOCK_DIR_ENV = "MEMORIZATION_GPU_LOCK_DIR"
"""Environment variable overriding the default lock directory."""

POLL_INTERVAL = 0.1
"""Seconds between two attempts while every GPU is leased."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --- CUDA queries: the only functions that touch torch.cuda (monkeypatchable) ---


def _cuda_device_count() -> int:
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


# --- physical ids and lock files ---


def physical_ids(count: int, cuda_visible_devices: str | None = None) -> list[str]:
    """Physical ids of the ``count`` visible devices, local index order.

    Entry ``k`` of ``CUDA_VISIBLE_DEVICES`` (read from the environment when
    ``cuda_visible_devices`` is None) is local device ``k``; without it the
    ids are ``"0"`` .. ``str(count - 1)``. Should the runtime report more
    devices than the variable lists, the extra ones get ``"local-<k>"``.
    """
    if cuda_visible_devices is None:
        cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cuda_visible_devices is None:
        return [str(k) for k in range(count)]
    entries = [e.strip() for e in cuda_visible_devices.split(",") if e.strip()]
    return [entries[k] if k < len(entries) else f"local-{k}" for k in range(count)]


def _visible_devices() -> list[str]:
    """Physical ids of the CUDA devices this process sees ([] without GPU)."""
    return physical_ids(_cuda_device_count())


def lock_file_name(physical_id: str) -> str:
    """File name of the lock for one physical card, safe on any filesystem."""
    safe = _UNSAFE.sub("_", physical_id).strip("._") or "unnamed"
    return f"gpu-{safe}.lock"


def default_lock_dir() -> Path:
    """``$MEMORIZATION_GPU_LOCK_DIR``, else a per-user folder in the temp dir."""
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"memorization-gpu-locks-{os.getuid()}"


def _open_lock(path: Path) -> int:
    flags = os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, flags | os.O_RDWR, 0o666)
    except PermissionError:  # another user's lock file in a shared dir: flock works read-only
        return os.open(path, flags | os.O_RDONLY)


def _try_lock(path: Path) -> int | None:
    """The locked file descriptor, or None when another process holds it."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    with contextlib.suppress(OSError):  # who holds it, for humans reading the dir
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
    return fd


def _release(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)  # also for forked children sharing the fd
    finally:
        os.close(fd)


def _acquire(
    ids: Sequence[str],
    lock_dir: Path,
    timeout: float | None,
    say: Callable[[str], None],
) -> tuple[int, int]:
    """Lock the first free device; wait for one when all are taken.

    Returns ``(local index, locked fd)``; raises TimeoutError after
    ``timeout`` seconds (None waits forever, 0 tries once).
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    paths = [lock_dir / lock_file_name(pid) for pid in ids]
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        for k, path in enumerate(paths):
            fd = _try_lock(path)
            if fd is not None:
                if waited:
                    say(f"GPU {ids[k]!r} became free")
                return k, fd
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"all {len(ids)} visible GPU(s) {list(ids)} stayed leased by other jobs "
                f"for {timeout} s (lock files in {lock_dir}); run fewer GPU jobs at once "
                f"(--resources gpu=N) or set device: cpu"
            )
        if not waited:
            waited = True
            limit = "no timeout" if timeout is None else f"timeout {timeout} s"
            say(
                f"all {len(ids)} visible GPU(s) {list(ids)} are leased by other jobs; "
                f"waiting for one ({limit}, lock files in {lock_dir})"
            )
        pause = POLL_INTERVAL
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        time.sleep(pause)


def _no_gpu_message() -> str:
    built = torch.version.cuda
    return (
        "device 'cuda' was requested but no CUDA device is visible "
        f"(torch {torch.__version__}, built with CUDA {built or 'none: a CPU-only build'}, "
        f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}). "
        "Run the job on a GPU node (e.g. resources: gpu=1 under the SLURM profile), "
        "install a CUDA build of torch, or set device: auto or cpu in the config."
    )


@contextlib.contextmanager
def lease_device(
    preference: str = "auto",
    *,
    lock_dir: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    log: Callable[[str], object] | None = None,
    devices: Sequence[str] | None = None,
) -> Iterator[torch.device]:
    """Yield the device a job should use, holding a GPU lease while inside.

    preference: ``"cpu"`` (never touches locks), ``"auto"`` (a GPU when one is
    visible, else the CPU) or ``"cuda"`` (a GPU, RuntimeError when none is
    visible). The GPU is the first visible one whose lock is free; when all
    are leased the call waits, up to ``timeout`` seconds (None: forever), then
    raises TimeoutError.

    lock_dir: where the lock files live; default :func:`default_lock_dir`.
    log: called with the one-line message saying which device is used (the
    message also goes to the ``memorization.device`` logger).
    devices: fake physical ids standing in for the visible GPUs (tests); they
    are leased like real ones, but torch.cuda is never called.
    """
    if preference not in PREFERENCES:
        raise ValueError(
            f"device preference must be one of {', '.join(map(repr, PREFERENCES))}, "
            f"not {preference!r}"
        )

    def say(message: str) -> None:
        logger.info(message)
        if log is not None:
            log(message)

    if preference == "cpu":
        say("using cpu (device: cpu requested)")
        yield torch.device("cpu")
        return

    fake = devices is not None
    ids = [str(d) for d in devices] if fake else _visible_devices()
    if not ids:
        if preference == "cuda":
            raise RuntimeError(_no_gpu_message())
        say("using cpu (no CUDA device visible)")
        yield torch.device("cpu")
        return

    directory = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    k, fd = _acquire(ids, directory, timeout, say)
    try:
        if not fake:
            _cuda_set_device(k)
        name = None if fake else _cuda_device_name(k)
        if fake:
            origin = f"fake device {ids[k]!r}"
        elif os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
            origin = f"CUDA_VISIBLE_DEVICES entry {ids[k]!r}"
        else:
            origin = f"physical GPU {ids[k]!r}"
        say(f"using cuda:{k} ({origin}{', ' + name if name else ''})")
        yield torch.device("cuda", k)
    finally:
        _release(fd)


def resolve_threads(n: int) -> int:
    """Give torch ``n`` intra-op threads (the rule's ``threads``); return ``n``."""
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be at least 1, not {n}")
    torch.set_num_threads(n)
    return n
