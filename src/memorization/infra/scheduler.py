"""The scheduler job a process runs in (SLURM, PBS, LSF), and whether it was given its own
cards: then a card lock held by another job is foreign (stale naming, another cgroup)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ASSIGNMENT_VARS", "JOB_ID_VARS", "SchedulerJob", "scheduler_job"]

JOB_ID_VARS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")
"""Environment variables naming the scheduler job a process belongs to (first set wins)."""

ASSIGNMENT_VARS = (
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
    "GPU_DEVICE_ORDINAL",
    "CUDA_VISIBLE_DEVICES",
)
"""Variables a scheduler sets when it gave the job its own cards."""


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
