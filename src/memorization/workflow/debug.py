"""One stage run outside Snakemake, as its job would run, for a debugger.

:func:`stage_job` loads the workflow (the Snakefile, its config files, ``--config``
overrides) the way Snakemake does, and takes from the stage's rule what its job would
get: the inputs, the output, the params (the slice and the slices its inputs must have
been made from) and the log, for the wildcards given. :func:`run_stage` then builds the
same :class:`~.context.StageContext` that ``scripts/stage.py`` builds and calls the stage
function in this process, so that a breakpoint, ``pdb`` or a profiler sees it. The
inputs must exist (Snakemake makes them; this runs one stage, never its dependencies).

This is the habit of PyPSA-Eur's ``mock_snakemake``: the same job, without the scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from snakemake.api import SnakemakeApi
from snakemake.io import apply_wildcards
from snakemake.iocontainers import Wildcards
from snakemake.settings.types import (
    ConfigSettings,
    DeploymentSettings,
    OutputSettings,
    ResourceSettings,
    StorageSettings,
    WorkflowSettings,
)

from .registry import STAGES, stage
from .snakemake import context

__all__ = ["SNAKEFILE", "StageJob", "check_inputs", "run_stage", "stage_job"]

#: the workflow's Snakefile (the repository's root)
SNAKEFILE = Path(__file__).resolve().parents[3] / "Snakefile"

log = logging.getLogger(__name__)


@dataclass
class StageJob:
    """What Snakemake gives a stage's ``script:`` job, with the same attribute names."""

    rule: str
    input: Mapping[str, str | list[str]]
    output: Mapping[str, str]
    params: Mapping[str, object]
    log: list[str]
    config: Mapping
    threads: int
    wildcards: Mapping[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _loaded(snakefile: Path, workdir: Path, configfiles: Sequence[str], overrides: Mapping):
    """The workflow as Snakemake parses it (the Snakefile runs: the config is checked)."""
    settings = ConfigSettings(
        configfiles=[Path(f).resolve() for f in configfiles], config=dict(overrides)
    )
    with SnakemakeApi(OutputSettings(quiet=True)) as api:
        yield api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=settings,
            storage_settings=StorageSettings(),
            workflow_settings=WorkflowSettings(),
            deployment_settings=DeploymentSettings(),
            snakefile=snakefile,
            workdir=workdir,
        )._workflow


def _wildcards(workflow, rule, exp: str, given: Mapping[str, str]) -> dict[str, str]:
    """The rule's wildcards: ``exp``, the experiment's dataset for a dataset's rule, and
    the integer ones given (replicate, shard, level)."""
    names = set(rule.wildcard_names)
    out = {k: str(v) for k, v in given.items()}
    if "exp" in names:
        out.setdefault("exp", exp)
    if "dataset" in names and "dataset" not in out:
        experiments = workflow.globals["W"].experiments
        if exp not in experiments:
            raise ValueError(f"unknown experiment {exp!r}; known: {sorted(experiments)}")
        out["dataset"] = experiments[exp].dataset.name
    missing = sorted(names - set(out))
    if missing:
        raise ValueError(
            f"stage {rule.name!r} needs the wildcard(s) {', '.join(missing)}: "
            + " ".join(f"--wildcard {m}=N" for m in missing)
        )
    return out


def stage_job(
    name: str,
    exp: str,
    *,
    configfiles: Sequence[str] = (),
    overrides: Mapping | None = None,
    wildcards: Mapping[str, str] | None = None,
    snakefile: str | os.PathLike = SNAKEFILE,
    workdir: str | os.PathLike = ".",
) -> StageJob:
    """The job Snakemake would run for stage ``name`` of experiment ``exp``."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    with _loaded(Path(snakefile), Path(workdir).resolve(), configfiles, overrides or {}) as wf:
        return _job(wf, name, exp, wildcards or {})


def _job(workflow, name: str, exp: str, wildcards: Mapping[str, str]) -> StageJob:
    rule = workflow.get_rule(name)
    experiments = workflow.globals["W"].experiments
    if "exp" in rule.wildcard_names and exp not in experiments:
        raise ValueError(f"unknown experiment {exp!r}; known: {sorted(experiments)}")
    wc = Wildcards(fromdict=_wildcards(workflow, rule, exp, wildcards))

    def value(item):
        found = item(wc) if callable(item) else apply_wildcards(str(item), wc)
        return found if isinstance(found, (str, dict)) else list(found)

    return StageJob(
        rule=name,
        input={k: value(v) for k, v in rule.input.items()},
        output={k: value(v) for k, v in rule.output.items()},
        params={k: value(v) for k, v in rule.params.items()},
        log=[value(v) for v in rule.log],
        config=workflow.config,
        threads=int(workflow.config.get("threads", 1)),
        wildcards=dict(wc.items()),
    )


def check_inputs(job: StageJob) -> None:
    """Refuse a job whose inputs are not made yet, naming them."""
    missing = [
        p for v in job.input.values() for p in ([v] if isinstance(v, str) else v)
        if not os.path.exists(p)
    ]  # fmt: skip
    if missing:
        raise FileNotFoundError(
            f"stage {job.rule!r} reads {', '.join(missing)}, not made yet: run Snakemake up "
            f"to them first (snakemake {' '.join(missing)} --cores N)"
        )


def run_stage(job: StageJob) -> str:
    """Run the stage of ``job`` in this process (its exceptions are not caught: a debugger
    stops where they are raised); return the artifact's path."""
    check_inputs(job)
    ctx = context(SimpleNamespace(**vars(job)))
    log.info("stage %s: %s from %s", job.rule, ctx.output, dict(job.input))
    stage(job.rule).run(ctx)
    return ctx.output
