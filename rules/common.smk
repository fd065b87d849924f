import os

from snakemake.utils import min_version, validate

from memorization.config import coerce_overrides, figure_experiments, validate_config
from memorization.stages import OPTIM_KEYS, model_options

min_version("9.0")

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

coerce_overrides(config)  # --config leaves nested numbers as strings
validate(config, schema="../config/schema/config.schema.yaml")
validate_config(config)  # semantic checks: every problem named, before any job runs

EXPERIMENTS = config["experiments"]
FIGURES = config.get("figures") or {}
RESULTS = "results"


wildcard_constraints:
    exp="|".join(map(str, EXPERIMENTS)) or "NONE",
    split="train|test",
    fig="|".join(FIGURES) or "NONE",


def experiment(name):
    return EXPERIMENTS[name]


def dataset_of(name):
    return f"{RESULTS}/data/{experiment(name)['dataset']}.nc"


def label_params(name):
    """The slice of an experiment that decides its labels."""
    exp = experiment(name)
    return {k: exp.get(k, 0) for k in ("dataset", "corrupt", "seed")}


def score_params(name):
    """The slice of an experiment that decides its turn-over training and scores."""
    exp = experiment(name)
    out = label_params(name)
    out["model"] = exp["model"]
    out.update(model_options(exp))
    out.update({k: exp[k] for k in OPTIM_KEYS if k in exp})
    return out


def gpu_count():
    """Training jobs hold one GPU unless the config pins the CPU."""
    return 0 if config.get("device", "auto") == "cpu" else 1


def all_figures():
    return [f"{RESULTS}/{fig}.pdf" for fig in FIGURES]


def scores_of(name):
    return f"{RESULTS}/{name}/scores.nc"


def figure_inputs(wildcards):
    """The artifacts a figure draws, by the names its plotting function expects."""
    fig = wildcards.fig
    cfg = FIGURES[fig]
    if fig == "fig2":
        return {
            "clean": scores_of(cfg["clean"]),
            "corrupted": scores_of(cfg["corrupted"]),
        }
    if fig in ("fig7", "fig8"):
        return {
            "scores": scores_of(cfg["experiment"]),
            "data": dataset_of(cfg["experiment"]),
        }
    if fig == "fig9":
        return {"scores": [scores_of(name) for name in figure_experiments(cfg)]}
    raise ValueError(f"figures.{fig}: no rule draws this figure yet")
