"""Every input of a stage's job is origin-checked: the rule's ``params`` name it.

A rule restates its inputs' names in ``params`` (``R.params(stage, "dataset", ...)``):
the job's ``expect`` holds, for each name, the config slice that input must have been
made from, and the stage refuses an input made from another. An input left out of
``params`` is read unchecked, silently. Snakemake itself plans every job of an
experiment that uses every optional input (replicates, subsets drawn from an estimate,
out-of-bag, ground truth, sweep), and each job's inputs are compared with its ``expect``.
The run-wide jobs (figures, claims, validation) read the artifacts of several
experiments and check none.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.enums import Quietness
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

from memorization.workflow.registry import STAGES

ROOT = Path(__file__).resolve().parents[2]

EVERY_INPUT = {
    "device": "cpu",
    "experiments": {
        "a": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "seed": 0,
            "epochs": 1,
            "lr": 0.1,
            "batch_size": 64,
            "subset_size": 100,
            "replicates": 2,
            "subsets_from": "cumulative_loss",
            "oob_networks": 4,
            "corruption_levels": [0, 100],
            "truth": {"models": 4, "shards": 2},
        },
        # the subsets of the turn-over score, named by the fig2 (which draws no subsets)
        "b": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "seed": 0,
            "epochs": 1,
            "lr": 0.1,
            "batch_size": 64,
            "subset_size": 100,
        },
    },
    "figures": {"fig3": {"experiment": "a"}, "fig2": {"clean": "a", "corrupted": "b"}},
}


def unchecked(jobs) -> list[str]:
    """``rule: input 'name' (path)`` for every stage artifact a job of an experiment's
    (or a dataset's) stage reads without its origin in the job's ``expect``."""
    out = []
    for job in jobs:
        record = STAGES.get(job.rule.name)
        if record is None or record.scope == "run":
            continue
        expect = job.params.get("expect", {}) if "expect" in job.params.keys() else {}
        for name, value in job.input.items():
            given = [value] if isinstance(value, str) else list(value)
            made_by = STAGES.get(name)
            if given and made_by is not None and made_by.scope != "run" and name not in expect:
                out.append(f"rule {job.rule.name}: input {name!r} ({', '.join(given)})")
    return sorted(set(out))


def _jobs(workdir: Path, config: dict, wanted: list[tuple[str, str]]) -> list:
    """Every job Snakemake plans for the claims and the artifacts ``wanted`` (stage,
    experiment) of ``config``."""
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    here = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(
                ResourceSettings(cores=1),
                ConfigSettings(configfiles=[configfile]),
                snakefile=ROOT / "Snakefile",
                workdir=workdir,
            )
            workflow = workflow_api._workflow
            paths = workflow.globals["R"].paths
            targets = [paths.of("claims")]
            for name, exp in wanted:
                found = paths.of(name, exp)
                targets += [found] if isinstance(found, str) else list(found)
            workflow_api.dag(DAGSettings(targets=set(targets), forceall=True))
            workflow._prepare_dag(
                forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True
            )
            workflow._build_dag()
            return list(workflow.dag.jobs)
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    # every stage of a (every optional input), and the subsets of b
    wanted = [(name, "a") for name, record in STAGES.items() if record.scope != "run"]
    return _jobs(tmp_path_factory.mktemp("rule_params"), EVERY_INPUT, [*wanted, ("subsets", "b")])


def test_every_stage_artifact_a_job_reads_is_origin_checked(jobs):
    planned = {job.rule.name for job in jobs}
    # the plan covers every stage: an optional input left out of it would go untested
    assert set(STAGES) - {"validation"} <= planned, set(STAGES) - planned
    missing = unchecked(jobs)
    assert not missing, (
        "these inputs are read without checking that they were made from this config; "
        "name each in its rule's params (R.params(stage, ...)):\n  " + "\n  ".join(missing)
    )


def test_subsets_check_the_estimates_only_where_they_are_drawn_from_them(jobs):
    subsets = {job.wildcards["exp"]: job for job in jobs if job.rule.name == "subsets"}
    assert set(subsets["a"].params["expect"]) == {"scores", "estimates"}
    # the estimates' slice, which the subsets' own slice holds (it decides them)
    a = subsets["a"].params
    assert a["expect"]["estimates"] == a["slice"]["estimates"]
    # without subsets_from, a change of the peers' options must not redo the subsets
    assert set(subsets["b"].params["expect"]) == {"scores"}
    assert list(subsets["b"].input["estimates"]) == []


def test_the_claims_read_the_subsets_drawn_from_an_estimate_as_an_input(jobs):
    (claims,) = [job for job in jobs if job.rule.name == "claims"]
    # a's subsets, drawn from an estimate; not b's (the turn-over score's)
    assert [Path(p).parent.name for p in claims.input["subsets"]] == ["a"]
    assert [Path(p).name for p in claims.input["subsets"]] == ["subsets.nc"]


def test_the_check_names_the_rule_and_the_input_it_misses():
    def job(rule, inputs, expect):
        params = {"expect": expect} if expect is not None else {}
        return SimpleNamespace(rule=SimpleNamespace(name=rule), input=inputs, params=params)

    jobs = [
        job("subsets", {"scores": "r/a/scores.nc", "estimates": "r/a/estimates.nc"}, {"scores": 1}),
        job("subsets", {"scores": "r/b/scores.nc", "estimates": []}, {"scores": 1}),  # not used
        job("truth", {"truth_shard": ["r/a/truth/shard0.nc"]}, None),  # no params at all
        job("figure", {"scores": "r/a/scores.nc"}, None),  # run-wide: checks none
    ]
    assert unchecked(jobs) == [
        "rule subsets: input 'estimates' (r/a/estimates.nc)",
        "rule truth: input 'truth_shard' (r/a/truth/shard0.nc)",
    ]
