"""How long the workflow takes to start: a dry run against ``snakemake --version``.

A rerun where nothing is to be done costs Snakemake's own start (``snakemake --version``)
plus what the Snakefile does before planning: importing the library, checking the config
(kept when unchanged, :mod:`memorization.workflow.check_cache`) and planning the jobs.
This benchmark runs ``snakemake -n --cores 2`` and ``snakemake --version`` in turn, pair by
pair (a ratio per pair keeps it meaningful while the machine's load drifts), and prints
the medians and the median ratio; also the time to import what the Snakefile and its rules
import (their ``import memorization...`` lines), against a bare ``python -c pass``, and which
heavy libraries (torch, xarray, pandas) those imports load: none, so that a rerun with
nothing to do costs little more than Snakemake's own start.

    .venv/bin/python benchmarks/bench_noop.py [--runs 5] [--directory DIR] [--configfile F]

In a folder where the run is finished, the dry run is the no-op rerun; in a fresh one
it also plans every job (a little more).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
HEAVY = ("torch", "xarray", "pandas")


def parse_imports() -> str:
    """Python that imports what the Snakefile and ``rules/*.smk`` import from the library."""
    lines = ["import sys", "sys.path.insert(0, 'src')", "import snakemake.utils"]
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        for line in path.read_text().splitlines():
            if re.match(r"^(from|import)\s+memorization", line) and line not in lines:
                lines.append(line)
    return "\n".join(lines)


def heavy_loaded(code: str) -> list[str]:
    """The heavy libraries that ``code`` leaves loaded."""
    check = code + f"\nprint(' '.join(sorted(set({HEAVY!r}) & set(sys.modules))))"
    res = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"the Snakefile's imports failed:\n{res.stderr[-2000:]}")
    return res.stdout.split()


def _seconds(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return took


def _pairs(a: list[str], b: list[str], cwd: Path, runs: int) -> tuple[list, list]:
    _seconds(a, cwd), _seconds(b, cwd)  # warm-up: file caches, the kept check
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(_seconds(a, cwd))
        times_b.append(_seconds(b, cwd))
    return times_a, times_b


def _report(what: str, a: list[float], b: list[float], against: str) -> None:
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    print(
        f"{what}: median {statistics.median(a):.2f} s; {against}: {statistics.median(b):.2f} s; "
        f"ratio median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, "
        f"max {max(ratios):.2f}, {len(ratios)} pairs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--directory", type=Path, default=ROOT, help="the working directory")
    parser.add_argument("--configfile", default=None)
    args = parser.parse_args()
    dry = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "-n", "--cores", "2"]
    if args.configfile:
        dry.append(f"--configfile={args.configfile}")
    a, b = _pairs(dry, [*SNAKEMAKE, "--version"], args.directory, args.runs)
    _report("snakemake -n --cores 2", a, b, "snakemake --version")
    imports = parse_imports()
    a, b = _pairs([sys.executable, "-c", imports], [sys.executable, "-c", "pass"], ROOT, args.runs)
    _report("the Snakefile's imports", a, b, "python -c pass")
    print(f"heavy libraries the Snakefile's imports load: {heavy_loaded(imports) or 'none'}")


if __name__ == "__main__":
    main()
