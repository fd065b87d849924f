"""A folder's listing, walked once per process while its folders are unchanged.

An image folder's manifest (every image file's relative path, size and modification
time) is read at every parse of the Snakefile and, in the ``dataset`` job, before and
after the images are read, and its source lists the same tree to number the images.
Walking a large tree (on a network file system above all) costs far more than asking
each file for its size: :func:`listing` walks a folder once and keeps the names of its
folders and files for the process; a later call reuses them while every folder's
modification time is what it was (adding, removing or renaming an entry changes its
folder's time). The files' sizes and times are read afresh at each :func:`manifest`, so
a file rewritten in place is seen.

A folder modified less than :data:`RACY_NS` before it was walked is walked again: a
change in the same tick of its clock would leave its time as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .spec import DatasetError

__all__ = ["RACY_NS", "Listing", "listing", "manifest"]

#: a folder modified this close (ns) before its walk is walked again next time
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Listing:
    """The folders (``rel/``; ``""`` is the root) and files (``rel``) under a root, the
    folders that are symbolic links, and each folder's ``(mtime_ns, inode, device)``."""

    folders: tuple[str, ...]
    files: tuple[str, ...]
    links: frozenset[str]
    stamps: tuple[tuple[int, int, int], ...]
    walked_ns: int


_MEMO: dict[str, Listing] = {}


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_ino, st.st_dev)


def _walk(root: Path) -> Listing:
    walked_ns = time.time_ns()
    folders, files, links, stamps = [], [], set(), []
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            stamps.append(_stamp(os.stat(root / rel)))
            entries = list(os.scandir(root / rel))
        except OSError as err:
            raise DatasetError(f"folder {str(root / rel)!r} cannot be listed: {err}") from err
        folders.append(rel)
        for entry in entries:
            name = f"{rel}{entry.name}"
            if entry.is_dir():
                pending.append(name + "/")
                if entry.is_symlink():
                    links.add(name + "/")
            else:
                files.append(name)
    return Listing(tuple(folders), tuple(files), frozenset(links), tuple(stamps), walked_ns)


def _unchanged(root: Path, known: Listing) -> bool:
    for rel, stamp in zip(known.folders, known.stamps, strict=True):
        if stamp[0] >= known.walked_ns - RACY_NS:
            return False
        try:
            if _stamp(os.stat(root / rel)) != stamp:
                return False
        except OSError:
            return False
    return True


def listing(root: str | os.PathLike) -> Listing:
    """The folders and files under ``root`` (followed into linked folders), walked once
    per process while its folders are unchanged."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"folder {str(root)!r} does not exist or is not a folder")
    key = str(root.resolve())
    known = _MEMO.get(key)
    if known is None or not _unchanged(root, known):
        known = _MEMO[key] = _walk(root)
    return known


def manifest(
    root: str | os.PathLike, keep: Callable[[str], bool] = lambda name: True
) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of every file under ``root`` whose name ``keep``
    accepts (sizes and times read now), and of every folder (size -1, mtime 0), sorted."""
    root = Path(root).expanduser()
    known = listing(root)
    base = os.fspath(root)
    out = [(rel, -1, 0) for rel in known.folders if rel]
    for rel in known.files:
        if keep(rel.rsplit("/", 1)[-1]):
            path = os.path.join(base, rel)
            try:
                st = os.stat(path)
            except OSError as err:
                raise DatasetError(f"file {path!r} cannot be read: {err}") from err
            out.append((rel, st.st_size, st.st_mtime_ns))
    return sorted(out)
