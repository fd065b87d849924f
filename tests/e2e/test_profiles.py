"""Execution: the profiles, the training rules' resources, and the conda environment."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

from memorization.workflow import resources
from memorization.workflow.registry import STAGES, stage
from memorization.workflow.specs import Experiment

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
SLURM_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None

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
    "gres",
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


def rule_blocks() -> dict[str, str]:
    """Each rule of rules/*.smk (``use rule ... as NAME`` included) and its text."""
    blocks = {}
    header = re.compile(r"^(?:rule (\w+)|use rule \w+ as (\w+) with):", re.M)
    for path in sorted((ROOT / "rules").glob("*.smk")):
        text = path.read_text()
        starts = list(header.finditer(text))
        for k, match in enumerate(starts):
            end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
            body = text[match.end() : end]
            body = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]  # up to the next top level
            blocks[match.group(1) or match.group(2)] = body
    return blocks


def training_rules() -> set[str]:
    """The rules that train: those whose resources (a GPU, time, memory) come from their
    stage's estimates (``**R.resources("<stage>")``)."""
    return {name for name, body in rule_blocks().items() if "**R.resources(" in body}


def training_stages() -> set[str]:
    """The stages the registry says train."""
    return {name for name, record in STAGES.items() if record.trains}


# --- profiles ---------------------------------------------------------------------------


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
    text = (PROFILES / "local" / "config.yaml").read_text()
    assert "--resources=gpu=2" in text
    assert not re.search(r"snakemake .*--resources gpu=", text)  # the form that eats targets


def test_the_workflow_knows_its_training_rules():
    # the parser finds what the profiles and the resource estimates are written for
    expected = {"scores", "scores_test", "dynamics", "gradstats", "crosstrain", "sweep"}
    assert expected <= training_rules()
    assert not training_rules() & {"dataset", "labels", "subsets", "figure"}
    # the rules that ask for resources are exactly the stages the registry says train
    assert training_rules() == training_stages()


def test_slurm_profile():
    profile = load("slurm")
    assert profile["executor"] == "slurm"
    assert isinstance(profile["jobs"], int) and profile["jobs"] >= 1
    assert profile["latency-wait"] >= 30
    defaults = profile["default-resources"]
    assert {"runtime", "mem_mb", "cpus_per_task"} <= set(defaults)
    assert defaults["cpus_per_task"] == "threads"
    # gpu_model without gpu asks every job for a card; a partition of GPUs for all is waste
    assert not {"gpu", "gpu_model", "gres"} & set(defaults)
    per_rule = profile["set-resources"]
    for resources_ in [defaults, *per_rule.values()]:
        assert set(resources_) <= SLURM_RESOURCES, set(resources_) - SLURM_RESOURCES
        # the plugin would submit --gpus and --gres together
        assert not {"gpu", "gres"} <= set(resources_)
    # every rule that trains goes to the GPU partition with one card, nothing else does
    assert set(per_rule) == training_rules()
    for rule, res in per_rule.items():
        assert res["gpu"] == 1 and res["slurm_partition"], rule
        assert "runtime" not in res and "mem_mb" not in res  # the rules' own estimates


def test_slurm_readme():
    readme = (PROFILES / "slurm" / "README.md").read_text()
    assert "pip install -e '.[slurm]'" in readme
    assert "snakemake --profile profiles/slurm -n" in readme  # the dry run
    for rule in training_rules():
        assert f"`{rule}`" in readme, rule
    for key in ("slurm_account", "slurm_partition", "gpu_model", "gres", "set-resources"):
        assert key in readme, key
    # the command line that replaced the profile's whole resource block is gone
    commands = [line for line in readme.splitlines() if line.strip().startswith("snakemake")]
    assert not any("--default-resources" in line for line in commands)


def test_local_profile_dry_run(tmp_path):
    # `--resources=gpu=1` before a target: the target is still a target
    out = dry_run("local", tmp_path, "--resources=gpu=1", "trained.txt")
    assert "rule train" in out and "gpu=1" in out and "rule plot" not in out


@pytest.mark.skipif(not SLURM_PLUGIN, reason="snakemake-executor-plugin-slurm not installed")
def test_slurm_profile_dry_run(tmp_path):
    out = dry_run("slurm", tmp_path, "--cores", "8")
    train = out[out.index("rule train") :]
    train = train[: train.index("Shell command")]
    assert "cpus_per_task=2" in train and "gpu=1" in train
    assert "runtime=30" in train and "mem_mb=4000" in train  # the light rules' defaults


@pytest.mark.skipif(not SLURM_PLUGIN, reason="snakemake-executor-plugin-slurm not installed")
def test_slurm_dry_run_of_the_paper_config_takes_per_rule_estimates():
    with open(ROOT / "config/paper.yaml") as fh:
        paper = yaml.safe_load(fh)
    target = f"{paper.get('results', 'results')}/cifar10_vgg/scores.nc"
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/slurm"]
        + [target, "--configfile", "config/paper.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    score = out[out.index("rule scores:") :]
    score = score[: score.index("Shell command")]
    exp = Experiment.from_config("cifar10_vgg", paper["experiments"]["cifar10_vgg"])
    passes = STAGES["scores"].passes(exp)
    device = paper.get("device", "auto")
    minutes = resources.runtime_minutes(passes, exp, device=device, threads=paper["threads"])
    assert f"runtime={minutes}," in score and minutes > 240  # above the old blanket 4 h
    assert f"mem_mb={resources.mem_mb(passes, exp, device=device)}," in score
    assert "gpu=1" in score and "slurm_partition=" in score


# --- the training rules' time and memory ------------------------------------------------


def test_every_training_rule_declares_its_estimates():
    from memorization.workflow.config import WorkflowConfig
    from memorization.workflow.snakemake import Rules

    with open(ROOT / "config/config.yaml") as fh:
        rules = Rules(WorkflowConfig.from_config(yaml.safe_load(fh)))
    blocks = rule_blocks()
    for rule in training_rules():
        body = blocks[rule]
        assert f'**R.resources("{rule}")' in body, rule
        assert STAGES[rule].passes is not None, rule
        declared = set(rules.resources(rule))
        assert {"gpu", "runtime", "mem_mb"} <= declared, rule
        assert declared <= SLURM_RESOURCES, rule  # a typo would be silently ignored


MLP = {
    "dataset": "mnist",
    "model": "mlp",
    "hidden": 4096,
    "seed": 0,
    "epochs": 200,
    "lr": 0.06,
    "batch_size": 256,
    "subset_size": 10000,
    "probe_size": 1000,
    "truth": {"models": 16, "shards": 2},
}


def exp_of(**changes) -> Experiment:
    """The experiment MLP with ``changes`` (a key set to None is left out)."""
    raw = {k: v for k, v in {**MLP, **changes}.items() if v is not None}
    return Experiment.from_config("e", raw)


def passes_of(stage_name: str, exp: Experiment):
    return STAGES[stage_name].passes(exp)


def seconds(stage_name: str, exp: Experiment, **kw) -> float:
    return resources.compute_seconds(passes_of(stage_name, exp), exp, **kw)


#: the stages with an estimate (those that train)
ESTIMATED = sorted(name for name, record in STAGES.items() if record.passes is not None)


def test_model_cost_counts_the_mlp_exactly():
    cost = resources.model_cost(exp_of())
    # two matrix products, 2 FLOPs per multiply-add; biases are not counted
    assert cost.flops == 2 * 784 * 4096 + 2 * 4096 * 10
    assert cost.params == 784 * 4096 + 4096 + 4096 * 10  # the output layer has no bias


@pytest.mark.parametrize("stage", ESTIMATED)
def test_estimates_grow_with_the_work(stage):
    exp = exp_of()
    base = seconds(stage, exp)
    assert seconds(stage, exp_of(epochs=400)) > 1.9 * base
    # twice the FLOPs (on a GPU the per-batch overhead stays: compare on the CPU)
    cpu = seconds(stage, exp, device="cpu")
    assert seconds(stage, exp_of(hidden=8192), device="cpu") > 1.9 * cpu
    passes = passes_of(stage, exp)
    first = resources.runtime_minutes(passes, exp)
    assert first % 5 == 0 and first >= resources.SETUP_MINUTES
    assert resources.runtime_minutes(passes, exp, attempt=2) == 2 * first
    assert resources.mem_mb(passes, exp, attempt=2) == 2 * resources.mem_mb(passes, exp)


def test_estimates_follow_device_threads_and_data():
    mlp = exp_of()
    gpu = seconds("scores", mlp)
    one, four = (seconds("scores", mlp, device="cpu", threads=t) for t in (1, 4))
    assert one > four > gpu
    small = seconds("scores", exp_of(dataset="mnist5k"))
    assert small < gpu / 10  # 4,000 examples instead of 60,000

    def mem(exp, **kw):
        return resources.mem_mb(passes_of("scores", exp), exp, **kw)

    # a CPU job holds its activations in host memory; a GPU job holds them on the card
    cct = exp_of(dataset="fashion_mnist", model="cct", hidden=None, depth=7, embed_dim=256)
    assert mem(cct, device="cpu") > mem(cct)
    vgg = exp_of(dataset="cifar10", model="vgg11", hidden=None, width=1.0)
    assert mem(vgg) > mem(mlp)  # 4x the pixels


def test_only_training_stages_have_estimates():
    # a stage that does not train has no estimate (its rule takes the profile's
    # defaults); every stage that trains has one; an unknown stage is refused
    for name, record in STAGES.items():
        assert (record.passes is not None) == record.trains, name
    assert STAGES["truth"].passes is None
    with pytest.raises(ValueError, match="unknown stage 'score'; known: dataset, labels"):
        stage("score")


# --- conda ------------------------------------------------------------------------------


def conda_env() -> dict:
    with open(ROOT / "envs" / "memorization.yaml") as fh:
        return yaml.safe_load(fh)


def pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1
    return sections[0]


def test_conda_env_pins_the_dependencies_of_pyproject():
    env = conda_env()
    with open(ROOT / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert set(pip_section(env)) == set(project["dependencies"])
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert python == ["python=" + project["requires-python"].removeprefix(">=")]


def test_conda_env_installs_nothing_by_a_relative_path():
    # Snakemake copies the file to .snakemake/conda/<hash>.yaml before pip runs there
    for entry in pip_section(conda_env()):
        assert not entry.startswith(("-e", "--editable", ".", "/", "file:")), entry
        assert "../" not in entry and "./" not in entry, entry
    # it is the env the rules name
    texts = [path.read_text() for path in (ROOT / "rules").glob("*.smk")]
    named = set()
    for text in texts:
        named |= set(re.findall(r"^\s+conda:\s*\n\s+(\S+)", text, re.M))
    # a name (ENV) stands for the path it is set to in rules/common.smk
    values = {}
    for text in texts:
        values.update(re.findall(r"^(\w+) = (\"[^\"]*\")\s*$", text, re.M))
    envs = {values.get(name, name) for name in named}
    assert envs == {'"../envs/memorization.yaml"'}, named


@pytest.mark.workflow
def test_a_job_imports_the_library_without_an_install(tmp_path):
    """What a conda job does: run the workflow with a Python whose environment has the
    dependencies but not the library (nor PYTHONPATH, which Snakemake removes in conda
    jobs); the Snakefile's search path must carry it into the job."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import snakemake
    import torch

    # the dependencies, by the folders that hold them: no .pth of theirs is processed,
    # so an editable install of the library there is not seen
    deps = {str(Path(m.__file__).parents[1]) for m in (snakemake, torch)}
    (Path(site) / "dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HDF5_USE_FILE_LOCKING": "FALSE"}
    probe = subprocess.run([str(python), "-c", "import memorization"], env=env, cwd=tmp_path)
    assert probe.returncode != 0, "this Python must not find the library by itself"

    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "device": "cpu",
                "experiments": {
                    "clean": {"dataset": "digits", "model": "mlp", "hidden": 64, "seed": 0}
                    | {"corrupt": 0, "epochs": 1, "lr": 0.1, "batch_size": 64}
                },
                "figures": {},
            }
        )
    )
    res = subprocess.run(
        [str(python), "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
        + ["--configfile", "config.yaml", "--cores", "1", "results/data/digits.nc"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (tmp_path / "results/data/digits.nc").stat().st_size > 10_000


def test_host_memory_counts_the_optimizer_state():
    # AdamW keeps two moments per parameter where SGD with momentum keeps one: the
    # estimate grows by 8 bytes per parameter (in memory and in the checkpoint)
    sgd = exp_of(momentum=0.9)
    adamw = exp_of(optimizer="adamw")
    passes = passes_of("scores", sgd)
    extra = resources.host_bytes(passes, adamw) - resources.host_bytes(passes, sgd)
    assert extra == 8 * resources.model_cost(sgd).params
    assert resources.host_bytes(passes, exp_of(momentum=0.0)) == resources.host_bytes(passes, sgd)
