import os
import sys

from snakemake.utils import min_version

from memorization.config import WorkflowConfig, coerce_config, validate_config
from memorization.figures import FIGURES
from memorization.paths import Paths

min_version("9.0")

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

# Every problem of the config is listed at once, each by its key, before any job runs.
# `device: cuda` is checked against this machine only when the jobs run here.
coerce_config(
    config
)  # --config leaves nested numbers as strings; YAML 1.1 reads 1e-3 so
validate_config(
    config,
    local=workflow.local_exec and workflow.is_main_process,
    source=", ".join(map(str, workflow.configfiles)) or None,
)
W = WorkflowConfig.from_config(config)
EXPERIMENTS = W.experiments
FIGURE_OPTIONS = W.figures
RESULTS = W.results
PATHS = Paths(
    RESULTS,
    datasets=tuple((name, e.dataset) for name, e in EXPERIMENTS.items()),
    levels=tuple((name, e.corruption_levels) for name, e in EXPERIMENTS.items()),
)
# `snakemake --report` documents what has been built; it fails on a missing file
REPORTING = any(a == "--report" or a.startswith("--report=") for a in sys.argv)


wildcard_constraints:
    exp="|".join(map(str, EXPERIMENTS)) or "NONE",
    fig="|".join(FIGURE_OPTIONS) or "NONE",
    dataset="[a-z0-9_]+",
    level=r"\d+",
    rep=r"\d+",
    shard=r"\d+",


def out(artifact):
    """The output pattern of an artifact (memorization.paths.PATTERNS)."""
    return PATHS.pattern(artifact)


def log_of(name):
    return f"{RESULTS}/logs/{name}.log"


def experiment(name):
    """An experiment's mapping as written in the config."""
    return config["experiments"][name]


def dataset_of(wildcards):
    return PATHS.of("dataset", wildcards.exp)


def config_slice(stage):
    """params: the resolved settings that decide the artifact of `stage` (provenance)."""
    return lambda wc: EXPERIMENTS[wc.exp].slice(stage, **_level(wc))


def expected(**inputs):
    """params: the slices the input artifacts must have been made from (origin check).

    `inputs` maps an input name to the stage that made it.
    """
    return lambda wc: {
        name: EXPERIMENTS[wc.exp].slice(stage, **_level(wc))
        for name, stage in inputs.items()
    }


def _level(wc):
    """The wildcards that pick one artifact of a stage: sweep level, replicate, shard."""
    keys = wc.keys()
    out = {"level": int(wc.level)} if "level" in keys else {}
    if "rep" in keys:
        out["replicate"] = int(wc.rep)
    if "shard" in keys:
        out["shard"] = int(wc.shard)
    return out


def replicate_inputs(wc):
    """The R replicate trainings the scores merge (none for R = 1: the score job trains)."""
    r = EXPERIMENTS[wc.exp].replicates
    return (
        [PATHS.of("score_replicate", wc.exp, rep=k) for k in range(r)] if r > 1 else []
    )


def replicate_slices(wc):
    exp = EXPERIMENTS[wc.exp]
    if exp.replicates == 1:
        return []
    return [exp.slice("score_replicate", replicate=k) for k in range(exp.replicates)]


def truth_shards(wc):
    truth = EXPERIMENTS[wc.exp].truth
    return [PATHS.of("truth_shard", wc.exp, shard=k) for k in range(truth.shards)]


def truth_shard_slices(wc):
    exp = EXPERIMENTS[wc.exp]
    return [exp.slice("truth_shard", shard=k) for k in range(exp.truth.shards)]


def validation_inputs(wildcards=None):
    """The artifacts the validation table is made from (the validation figure's options)."""
    options = FIGURE_OPTIONS.get("validation")
    if options is None:
        return {}
    inputs = {}
    for option, name, artifact in FIGURES["validation"].needs(options):
        if option in ("variants", "noisy_variants"):
            inputs.setdefault(option, []).append(PATHS.of(artifact, name))
        else:
            inputs[f"{option}_{artifact}"] = PATHS.of(artifact, name)
    return inputs


def gpu_count():
    """Training jobs hold one GPU unless the config pins the CPU."""
    return 0 if W.device == "cpu" else 1


def figure_inputs(wildcards):
    return FIGURES[wildcards.fig].inputs(FIGURE_OPTIONS[wildcards.fig], PATHS)


def all_figures():
    figures = [PATHS.of("figure", fig=fig) for fig in FIGURE_OPTIONS]
    if REPORTING:
        return [f for f in figures if os.path.exists(f)]
    return figures


def all_claims():
    claims = PATHS.of("claims") if FIGURE_OPTIONS else None
    if claims is None or (REPORTING and not os.path.exists(claims)):
        return []
    return [claims]


def claims_inputs(wildcards=None):
    """Each figure's claims, and the artifacts of the sub-network check: the scores of
    every experiment a figure scores, and its plain model's test accuracy (dynamics)."""
    figures = {f: PATHS.of("figure_claims", fig=f) for f in FIGURE_OPTIONS}
    scored, dynamics = [], []
    for fig, options in FIGURE_OPTIONS.items():
        for _, name, artifact in FIGURES[fig].needs(options):
            if artifact != "sweep" and name not in scored:
                scored.append(name)
            if artifact == "dynamics" and name not in dynamics:
                dynamics.append(name)
    return {
        "figures": list(figures.values()),
        "scores": [PATHS.of("scores", n) for n in scored],
        "dynamics": [PATHS.of("dynamics", n) for n in dynamics],
    }


# --- cluster resources of the training rules (issue 11) ------------------------------
# Wall time (`runtime`, minutes) and host memory (`mem_mb`) of a training job, estimated
# from its experiment's size by memorization.resources (formula in its docstring); both
# grow with each retry. profiles/slurm/config.yaml's set-resources overrides them per rule.


def train_runtime(stage):
    """The `runtime` resource of a training rule running `stage`."""

    def runtime(wildcards, threads, attempt):
        from memorization.resources import runtime_minutes

        return runtime_minutes(
            stage,
            EXPERIMENTS[wildcards.exp],
            device=W.device,
            threads=threads,
            attempt=attempt,
        )

    return runtime


def train_mem_mb(stage):
    """The `mem_mb` resource of a training rule running `stage`."""

    def mem(wildcards, attempt):
        from memorization.resources import mem_mb

        return mem_mb(
            stage, EXPERIMENTS[wildcards.exp], device=W.device, attempt=attempt
        )

    return mem
