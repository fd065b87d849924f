"""Who holds a GPU lock: a record (pid, host, user, scheduler job, start time) written
into the lock file by its holder, read back by waiting jobs, cleared on release. A
record whose pid is dead on this host is stale and never counts."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import time
from pathlib import Path

from .gpu_cards import Card
from .gpu_locks import _OPEN_FLAGS, _Lock, _user_name
from .scheduler import SchedulerJob

_RECORD_BYTES = 4096


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
