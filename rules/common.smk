import os

from snakemake.utils import min_version

from memorization.workflow.config import WorkflowConfig, coerce_overrides
from memorization.workflow.command_line import executing, reporting
from memorization.workflow.figures import FIGURES
from memorization.workflow.check_cache import CACHE_FILE
from memorization.workflow.gate import check_before_jobs
from memorization.workflow.ownership import claim_results
from memorization.workflow.watch import watch_data
from memorization.workflow.snakemake import Rules
from memorization.workflow.stages.estimates import oob_options

min_version("9.0")

# Every problem of the config is listed at once, each by its key, before any job runs
# (a config file given twice a key, wrong types, sizes, models, figures, the results
# folder; where the jobs run here, the device, memory and disk). The message is
# printed without a traceback and Snakemake stops. A check that passed is kept under
# .snakemake/ and not redone while the config, its files, the datasets' files and the
# library's source are unchanged.
# --config leaves nested numbers as strings, and YAML 1.1 reads 1e-3 as a string:
# both are turned into numbers first.
coerce_overrides(config)
INFOS = check_before_jobs(
    config,
    configfiles=[str(f) for f in workflow.configfiles],
    overrides=workflow.config_settings.config,
    local=workflow.local_exec and workflow.is_main_process,
    cache=CACHE_FILE,
    # a run that executes jobs needs the data files; a dry run (-n) plans without them
    data_files=executing(workflow),
)
# `snakemake --report` documents what has been built; it fails on a missing file
REPORTING = reporting(workflow)
# the user's data is an input: each dataset's fingerprint is in every artifact's slice
W = watch_data(WorkflowConfig.from_config(config, INFOS))
# the results folder belongs to one config; a real run (not -n, --lint, --report) records it
claim_results(
    W,
    [str(f) for f in workflow.configfiles],
    replace_results=bool(config.get("replace_results", False)),
    write=executing(workflow),
)
R = Rules(W)
RESULTS = W.results
ENV = "../envs/memorization.yaml"
STAGE = "../scripts/stage.py"


wildcard_constraints:
    exp="|".join(map(str, W.experiments)) or "NONE",
    fig="|".join(W.figures) or "NONE",
    dataset="[A-Za-z][A-Za-z0-9_-]*",
    level=r"\d+",
    rep=r"\d+",
    shard=r"\d+",


def path(name, exp=None, **wildcards):
    """The path of a stage's artifact: a wildcard pattern, or one experiment's."""
    return R.out(name) if exp is None else R.paths.of(name, exp, **wildcards)


def dataset_of(wildcards):
    return R.paths.of("dataset", wildcards.exp)


def subsets_estimates(wildcards):
    """The estimates the subsets are drawn from, where the experiment names one
    (subsets_from); else none: the turn-over scores draw them."""
    exp = W.experiments[wildcards.exp]
    return path("estimates", wildcards.exp) if exp.subsets_from else []


def estimates_oob(wildcards):
    """The out-of-bag artifact, where the experiment asks for the out-of-bag estimator."""
    wanted = oob_options(W.experiments[wildcards.exp]) is not None
    return path("oob", wildcards.exp) if wanted else []


def all_of(name):
    """Every artifact of a stage of the rule's experiment (replicates, shards, levels)."""

    def paths(wildcards):
        found = R.paths.of(name, wildcards.exp)
        return [found] if isinstance(found, str) else found

    return paths


def replicates_of(wildcards):
    """The R replicate trainings the scores merge (none for R = 1: the score job trains)."""
    return all_of("scores_replicate")(wildcards)


def figure_inputs(wildcards):
    return FIGURES[wildcards.fig].inputs(W.figures[wildcards.fig], R.paths)


def validation_inputs(wildcards=None):
    """The artifacts the validation table is made from (the validation figure's options):
    lists named <option>_<artifact> (clean_scores, clean_truth, ...; one entry per
    experiment of the option), variants and noisy_variants. The influence pairs only of
    the first clean experiment: other models pay a forward pass per pair."""
    options = W.figures.get("validation")
    if options is None:
        return {}
    inputs = {}
    first = {}
    for option, name, artifact in FIGURES["validation"].needs(options):
        first.setdefault(option, name)
        if artifact == "influence" and name != first[option]:
            continue
        listed = option in ("variants", "noisy_variants")
        key = option if listed else f"{option}_{artifact}"
        inputs.setdefault(key, []).append(R.paths.of(artifact, name))
    return inputs


def all_figures():
    """Every figure of the config; without figures, every experiment's overview page."""
    if W.figures:
        figures = [R.paths.of("figure", fig=fig) for fig in W.figures]
    else:
        figures = [R.paths.of("overview", exp) for exp in W.experiments]
    if REPORTING:
        return [f for f in figures if os.path.exists(f)]
    return figures


def all_claims():
    claims = R.paths.of("claims")
    if REPORTING and not os.path.exists(claims):
        return []
    return [claims]


def claims_inputs(wildcards=None):
    """Each figure's claims, and the artifacts of the sub-network check: the scores of
    every experiment a figure scores, and its plain model's test accuracy (dynamics);
    the subsets of those a figure reads that draw them from an estimate (subsets_from),
    which the table names."""
    scored = [] if W.figures else list(W.experiments)
    dynamics = []
    for fig, options in W.figures.items():
        for _, name, artifact in FIGURES[fig].needs(options):
            if artifact != "sweep" and name not in scored:
                scored.append(name)
            if artifact == "dynamics" and name not in dynamics:
                dynamics.append(name)
    return {
        "figures": [R.out("figure", "claims").format(fig=f) for f in W.figures],
        "scores": [R.paths.of("scores", n) for n in scored],
        "dynamics": [R.paths.of("dynamics", n) for n in dynamics],
        "subsets": [
            R.paths.of("subsets", n)
            for n in scored
            if W.figures and W.experiments[n].subsets_from
        ],
    }
