"""Helpers several test modules share: the snakemake command line and interrupted training."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from memorization.method import training

ROOT = Path(__file__).resolve().parents[1]

SIGNALS = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT}


def snakemake_command(*args: str) -> list[str]:
    """``python -m snakemake --snakefile <this workflow> ARGS``."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), *args]


class Killed(Exception):
    """Stands for SIGKILL: nothing is saved, the last periodic checkpoint is used."""


def interrupt(monkeypatch, at: int, how: str) -> None:
    """Interrupt training before its ``at``-th batch (1-based, counted over all epochs):
    ``kill`` raises :class:`Killed`, ``sigterm``/``sigint`` raise the signal."""
    batches = training._batches
    seen = {"n": 0}

    def wrapped(*args):
        for batch in batches(*args):
            seen["n"] += 1
            if seen["n"] == at:
                if how == "kill":
                    raise Killed
                signal.raise_signal(SIGNALS[how])
            yield batch

    monkeypatch.setattr(training, "_batches", wrapped)


def changed_files(copy: Path, root: Path, parts) -> set[str]:
    """The files under ``parts`` of a copy of the repository that differ from (or are not
    in) the repository at ``root``, as paths relative to the copy."""
    import filecmp

    out = set()
    for part in parts:
        for path in (copy / part).rglob("*"):
            rel = path.relative_to(copy)
            if path.is_file() and "__pycache__" not in rel.parts:
                original = root / rel
                if not original.exists() or not filecmp.cmp(path, original, shallow=False):
                    out.add(str(rel))
    return out
