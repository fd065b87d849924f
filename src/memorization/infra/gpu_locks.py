"""The GPU lock folder and its lock files: one per card, locked with ``flock``.

One lock folder per machine, for every user and whatever ``TMPDIR`` says:
:data:`SHARED_LOCK_DIR` (``/tmp/memorization-gpu-locks``), or
``$MEMORIZATION_GPU_LOCK_DIR``. A per-user or ``TMPDIR``-based folder (Snakemake sets
one ``TMPDIR`` per job) would let two jobs take the same card. The folder appears
atomically with mode ``1777`` (world-writable, sticky: nobody removes another user's
lock file); lock files are created ``0666`` whatever the umask. An existing file is
opened without ``O_CREAT`` (``fs.protected_regular`` refuses ``O_CREAT`` on another
user's file in a sticky folder) and read-only when it is not writable (``flock`` works
on a read-only descriptor). Card lock files are never removed, so every process agrees
on the inode it locks; a per-job lock (``gpu-<key>.job-<id>.lock``) is removed on
release. The kernel drops a lock when its process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .scheduler import SchedulerJob

__all__ = ["LOCK_DIR_ENV", "SHARED_LOCK_DIR", "default_lock_dir", "lock_file_name"]

LOCK_DIR_ENV = "MEMORIZATION_GPU_LOCK_DIR"
"""Environment variable overriding the lock folder (:data:`SHARED_LOCK_DIR`)."""

SHARED_LOCK_DIR = Path("/tmp/memorization-gpu-locks")
"""The machine-wide lock folder: a fixed path, not ``TMPDIR`` (which differs between jobs)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK  # no symlinks, FIFOs never block


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
