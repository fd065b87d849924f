"""The execution profiles: keys Snakemake knows, and the values the workflow relies on."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"

# resources the SLURM executor plugin maps to sbatch options (a typo would be
# silently ignored by Snakemake and by the plugin)
SLURM_RESOURCES = {
    "slurm_account",
    "slurm_partition",
    "slurm_extra",
    "runtime",
    "mem_mb",
    "mem",
    "mem_mb_per_cpu",
    "cpus_per_task",
    "cpus_per_gpu",
    "constraint",
    "qos",
    "nodes",
    "tasks",
    "gpu",
    "gpu_model",
    "tmpdir",
    "disk_mb",
}

# a throwaway workflow shaped like ours: a training rule asking for one GPU
SNAKEFILE = textwrap.dedent(
    """
    rule all:
        input: "trained.txt", "plot.txt"

    rule train:
        output: "trained.txt"
        threads: 2
        resources: gpu=1
        shell: "echo {threads} {resources.gpu} > {output}"

    rule plot:
        output: "plot.txt"
        shell: "touch {output}"
    """
)


@cache
def snakemake_options() -> frozenset[str]:
    """Every long option ``snakemake --help`` lists, without the dashes."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return frozenset(re.findall(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)", out))


def load(name: str) -> dict:
    with open(PROFILES / name / "config.yaml") as f:
        return yaml.safe_load(f)


def dry_run(profile: str, workdir: Path, *extra: str) -> str:
    (workdir / "Snakefile").write_text(SNAKEFILE)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", str(PROFILES / profile), *extra],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_help_parsing_finds_known_options():
    options = snakemake_options()
    assert {"executor", "cores", "jobs", "default-resources", "set-resources"} <= options
    assert "no-such-option" not in options


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_every_key_is_a_snakemake_option(name):
    unknown = set(load(name)) - snakemake_options()
    assert not unknown, f"profiles/{name}/config.yaml: unknown option(s) {sorted(unknown)}"


def test_no_default_profile():
    # profiles/default would be loaded for every run of the workflow
    assert not (PROFILES / "default").exists()


def test_local_profile():
    profile = load("local")
    assert profile["executor"] == "local"
    assert profile["cores"] == "all"
    assert profile["rerun-incomplete"] is True
    assert profile["printshellcmds"] is True
    assert profile["keep-going"] is False
    # the number of GPUs is the user's: a fixed count here would be wrong elsewhere
    assert "gpu" not in (profile.get("resources") or {})
    assert "--resources gpu=" in (PROFILES / "local" / "config.yaml").read_text()


def test_slurm_profile():
    profile = load("slurm")
    assert profile["executor"] == "slurm"
    assert isinstance(profile["jobs"], int) and profile["jobs"] >= 1
    assert profile["latency-wait"] >= 30
    defaults = profile["default-resources"]
    assert {"runtime", "mem_mb", "cpus_per_task"} <= set(defaults)
    assert defaults["cpus_per_task"] == "threads"
    per_rule = profile.get("set-resources") or {}
    for resources in [defaults, *per_rule.values()]:
        assert set(resources) <= SLURM_RESOURCES, set(resources) - SLURM_RESOURCES
        assert "gres" not in resources  # the rules use `gpu`; the plugin refuses both
    # gpu_model without gpu is an error for the plugin: never on every job
    assert "gpu_model" not in defaults and "gpu" not in defaults
    readme = (PROFILES / "slurm" / "README.md").read_text()
    assert "snakemake-executor-plugin-slurm" in readme
    assert "--profile profiles/slurm" in readme


def test_local_profile_dry_run(tmp_path):
    out = dry_run("local", tmp_path, "--resources", "gpu=1")
    assert "rule train" in out and "gpu=1" in out


@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm not installed",
)
def test_slurm_profile_dry_run(tmp_path):
    out = dry_run("slurm", tmp_path, "--cores", "8")
    train = out[out.index("rule train") :]
    train = train[: train.index("Shell command")]
    assert "cpus_per_task=2" in train and "gpu=1" in train and "runtime=240" in train
