"""The workflow through ``--profile profiles/slurm`` against a fake SLURM (tests/fake_slurm).

The executor plugin is the real one (the ``slurm`` extra, part of the ``test`` extra);
``sbatch``, ``srun``, ``squeue``, ``sacct``, ``scontrol`` and ``sinfo`` are small
scripts that run each job on this machine and log how they were called, so the test
sees exactly what a cluster would be asked for.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from helpers import snakemake_command

from memorization.workflow.registry import STAGES
from memorization.workflow.resources import mem_mb, runtime_minutes
from memorization.workflow.specs import Experiment

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif(
        importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
        reason="snakemake-executor-plugin-slurm not installed (pip install -e '.[test]')",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "slurm"
FAKE = Path(__file__).resolve().parents[1] / "fake_slurm"

CONFIG = {
    "device": "auto",  # the rules ask for a GPU; without one the jobs train on the CPU
    "threads": 2,
    "experiments": {
        "clean": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "corrupt": 0,
            "seed": 0,
            "epochs": 2,
            "lr": 0.1,
            "batch_size": 64,
            "subset_size": 100,
        }
    },
    "figures": {"fig7": {"experiment": "clean", "per_class": 2}},
}
TARGETS = ["results/clean/scores.nc", "results/clean/scores_test.nc", "results/fig7.pdf"]
TRAINING = {"scores", "scores_test"}
LIGHT = {"dataset", "labels", "figure"}


def sbatch_rule(argv: list[str]) -> str:
    """The rule of a job, from the ``--comment`` the plugin gives it."""
    comment = argv[argv.index("--comment") + 1]
    return re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment).group(1)


def option(argv: list[str], name: str) -> str | None:
    """The value of ``name value`` or ``name=value`` in an argument list."""
    for i, arg in enumerate(argv):
        if arg == name:
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def quoted(argv: list[str]) -> str:
    """An sbatch call as the profile README quotes it (run-specific values elided)."""
    elide = {"--job-name": "<run id>", "--output": "<log>", "-D": "<workdir>"}
    out, skip = ["sbatch"], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in elide:
            out += [arg, elide[arg]]
            skip = True
        elif arg.startswith("--wrap="):
            out.append("--wrap='<snakemake job>'")
        else:
            out.append(shlex.quote(arg))
    return " ".join(out)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Run the targets through the SLURM profile; the logged calls and the workdir."""
    tmp = tmp_path_factory.mktemp("slurm")
    bin_dir, state, workdir = tmp / "bin", tmp / "state", tmp / "work"
    shutil.copytree(FAKE, bin_dir)
    for path in bin_dir.iterdir():
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IRUSR)
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT / "src"),
        "FAKE_SLURM_PYTHON": sys.executable,
        "FAKE_SLURM_STATE": str(state),
    }
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
        del env[var]
    cmd = snakemake_command(
        "--profile",
        str(PROFILE),
        "--configfile",
        "config.yaml",
        "--slurm-init-seconds-before-status-checks",
        "1",
        *TARGETS,
    )
    res = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=420)
    log = res.stdout + res.stderr
    calls = []
    if (state / "calls.jsonl").exists():
        calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    if res.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-3000:]}"
            for p in workdir.glob(".snakemake/slurm_logs/**/*.log")
        )
        raise AssertionError(f"snakemake failed:\n{log[-5000:]}\n{logs}")
    return {"calls": calls, "workdir": workdir, "log": log}


def sbatch_calls(cluster) -> dict[str, list[str]]:
    calls = [c["argv"] for c in cluster["calls"] if c["command"] == "sbatch"]
    by_rule = {sbatch_rule(argv): argv for argv in calls}
    assert len(by_rule) == len(calls), "one job per rule expected"
    return by_rule


def test_every_job_went_through_sbatch(cluster):
    assert set(sbatch_calls(cluster)) == TRAINING | LIGHT
    commands = {c["command"] for c in cluster["calls"]}
    assert {"sbatch", "srun", "sinfo"} <= commands and commands & {"sacct", "squeue"}


def test_training_jobs_ask_for_a_gpu_partition_time_and_memory(cluster):
    with open(PROFILE / "config.yaml") as fh:
        per_rule = yaml.safe_load(fh)["set-resources"]
    exp = Experiment.from_config("clean", CONFIG["experiments"]["clean"])
    threads = CONFIG["threads"]
    for rule, argv in sbatch_calls(cluster).items():
        if rule not in TRAINING:
            continue
        assert option(argv, "--gpus") == "1", argv
        assert option(argv, "-p") == per_rule[rule]["slurm_partition"], argv
        assert option(argv, "--cpus-per-task") == str(threads), argv
        passes = STAGES[rule].passes(exp)  # the rule's name is its stage's
        expected_time = runtime_minutes(passes, exp, device="auto", threads=threads)
        assert option(argv, "-t") == str(expected_time), argv
        assert option(argv, "--mem") == str(mem_mb(passes, exp, device="auto")), argv
        # what the plugin (2.8) does not add, and what the profile keeps commented out
        assert not any(a.startswith(("--ntasks-per-gpu", "--gres")) for a in argv), argv
    # inside the job, the step asks for the same card
    sruns = [c["argv"] for c in cluster["calls"] if c["command"] == "srun"]
    assert sum("--gpus=1" in argv for argv in sruns) == len(TRAINING)


def test_light_jobs_take_the_profile_defaults(cluster):
    with open(PROFILE / "config.yaml") as fh:
        defaults = yaml.safe_load(fh)["default-resources"]
    runtime = eval(defaults["runtime"], {"attempt": 1})
    memory = eval(defaults["mem_mb"], {"attempt": 1})
    for rule, argv in sbatch_calls(cluster).items():
        if rule not in LIGHT:
            continue
        assert option(argv, "--gpus") is None, argv
        assert option(argv, "-p") == "cpu", argv  # the fake sinfo's default partition
        assert option(argv, "-t") == str(runtime), argv
        assert option(argv, "--mem") == str(memory), argv
        assert option(argv, "--cpus-per-task") == "1" and option(argv, "--ntasks") == "1", argv


def test_artifacts_are_valid(cluster):
    results = cluster["workdir"] / "results"
    with xr.open_dataset(results / "clean/scores.nc", engine="netcdf4") as ds:
        assert ds.sizes["example"] == 1437 and ds.sizes["epoch"] == 2
        assert np.isfinite(ds["memorization"].values).all()
        assert ds["subnet_accuracy"].sel(subnet="unmuted").values[-1] > 0.5
        assert ds.attrs["device"] == "cpu"
    with xr.open_dataset(results / "clean/scores_test.nc", engine="netcdf4") as ds:
        assert ds.sizes["example"] == 360 and ds.attrs["split"] == "test"
    pdf = (results / "fig7.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 5000


def test_readme_quotes_the_recorded_sbatch_lines(cluster):
    readme = (PROFILE / "README.md").read_text()
    calls = sbatch_calls(cluster)
    for rule in ("scores", "figure"):
        line = quoted(calls[rule])
        assert line in readme, f"profiles/slurm/README.md should quote:\n{line}"
