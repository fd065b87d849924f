"""Files that are never half-written, and the checks before a job writes one.

:func:`atomic_write` writes to a temporary file beside the target (a name unique to
the writer: process id and a random part), then renames it over the target, so a
file under its final name is always complete and two writers of the same file
(two ``--nolock`` runs) never delete each other's temporary file.
:func:`preflight` fails before any compute when an output cannot be written or its
filesystem has too little room. :func:`stable_hash` is the short hash of a
config slice that provenance records and checkpoints check.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "atomic_write",
    "free_bytes",
    "preflight",
    "remove_stale_parts",
    "stable_hash",
]

#: a temporary file of a writer that died this long ago (seconds) is removed by the next writer
STALE_PART_SECONDS = 24 * 3600


def stable_hash(value: Mapping | list | str) -> str:
    """A short, stable hash of a YAML-able value (canonical JSON, SHA-256, 16 hex digits)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _pid_of(part: Path) -> int | None:
    """The writer's process id in a temporary name ``.<name>.<pid>.<random>.part``."""
    pieces = part.name.rsplit(".", 3)
    try:
        return int(pieces[-3])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_parts(path: str | os.PathLike) -> None:
    """Remove the temporary files of earlier writers of ``path`` that are gone.

    A ``.part`` file whose writer process no longer runs (on this machine) is a
    leftover of a killed write; one of a live writer (another ``--nolock`` run) is
    kept. Parts without a readable process id are removed once a day old.
    """
    path = Path(path)
    for part in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        pid = _pid_of(part)
        try:
            old = time.time() - part.stat().st_mtime > STALE_PART_SECONDS
        except FileNotFoundError:
            continue
        if (pid is not None and pid != os.getpid() and not _alive(pid)) or (pid is None and old):
            part.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A failed write leaves no file behind; the result gets the usual permissions
    (0666 less the umask), not the temporary file's private 0600. The temporary
    name holds the writer's process id, so concurrent writers never share one, and
    leftovers of killed writers are removed first (:func:`remove_stale_parts`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".part", dir=path.parent
    )
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def free_bytes(folder: str | os.PathLike) -> int:
    """Free bytes on the filesystem of ``folder`` (its nearest existing parent)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def preflight(output: str | os.PathLike, needed_bytes: int = 0) -> None:
    """Fail before any compute when ``output`` cannot be written.

    Creates the folder, writes and removes a probe file in it, and checks that the
    filesystem has ``needed_bytes`` free (plus a margin).
    """
    path = Path(output)
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise NotADirectoryError(20, "not a folder", str(path.parent))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(
            f"cannot write {path} ({err.strerror or err}); make {path.parent} a writable folder "
            "or set `results:` in the config to a folder you can write"
        ) from err
    free = free_bytes(path.parent)
    if needed_bytes and free < 1.2 * needed_bytes + (16 << 20):
        raise OSError(
            f"{path.parent} has {free / 2**20:.0f} MiB free, but {path.name} needs about "
            f"{needed_bytes / 2**20:.0f} MiB (with its checkpoints); free some space or set "
            "`results:` elsewhere"
        )
