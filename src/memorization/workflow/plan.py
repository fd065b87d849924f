"""The cost of a plan: the training jobs Snakemake would run, and their estimated time.

:func:`planned_jobs` asks Snakemake for its dry run (``snakemake -n``) and reads each
job's rule and wildcards; :func:`plan_seconds` sums, for the training stages among
them, the compute time :mod:`.resources` estimates from each stage's passes over
examples, on a GPU (its assumed throughput) and on this machine's CPU (the config's
threads). The estimates are the cluster profile's, without its safety margin.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .config import WorkflowConfig
from .registry import STAGES
from .resources import compute_seconds

__all__ = ["JOB_START_SECONDS", "Job", "plan_seconds", "planned_jobs"]

#: start-up of one job (imports, loading the data, a CUDA context, the turn-over proof,
#: writing the artifact), added to its compute: 3-6 s measured on a CPU
JOB_START_SECONDS = 10.0


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: dict


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of a ``snakemake -n`` output."""
    jobs: list[Job] = []
    rule = None
    for line in text.splitlines():
        found = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if found:
            if rule is not None:
                jobs.append(Job(rule, {}))
            rule = found.group(1)
            continue
        found = re.match(r"^wildcards: (.*)$", line.strip())
        if found and rule is not None:
            pairs = [p.split("=", 1) for p in found.group(1).split(", ") if "=" in p]
            jobs.append(Job(rule, {k: v for k, v in pairs}))
            rule = None
    if rule is not None:
        jobs.append(Job(rule, {}))
    return jobs


def planned_jobs(snakemake_args: Sequence[str]) -> list[Job]:
    """The jobs ``snakemake -n ARGS`` plans (run in this checkout)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", *snakemake_args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError((res.stderr or res.stdout).strip())
    return parse_dry_run(res.stdout + res.stderr)


def plan_seconds(jobs: Sequence[Job], config: WorkflowConfig) -> dict:
    """Estimated seconds of the training jobs: ``gpu`` (one card, jobs one after
    another), ``cpu`` (this config's threads), the number of training ``jobs``, and
    ``by_stage`` (stage -> [jobs, gpu seconds, cpu seconds])."""
    out = {"gpu": 0.0, "cpu": 0.0, "jobs": 0, "by_stage": {}}
    for job in jobs:
        record = STAGES.get(job.rule)
        if record is None or not record.trains or "exp" not in job.wildcards:
            continue
        exp = config.experiments[job.wildcards["exp"]]
        passes = record.passes(exp)
        if not passes:
            continue
        gpu = compute_seconds(passes, exp, device="cuda") + JOB_START_SECONDS
        cpu = compute_seconds(passes, exp, device="cpu", threads=config.threads)
        cpu += JOB_START_SECONDS
        entry = out["by_stage"].setdefault(job.rule, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += gpu
        entry[2] += cpu
        out["gpu"] += gpu
        out["cpu"] += cpu
        out["jobs"] += 1
    return out
