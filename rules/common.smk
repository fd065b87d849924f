import os

from snakemake.utils import min_version, validate

from memorization.config import coerce_overrides, figure_experiments, validate_config
from memorization.data import DATASETS
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
    level=r"\d+",


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
    if fig in ("fig3", "fig5"):
        return {
            "dynamics": [f"{RESULTS}/{n}/dynamics.nc" for n in figure_experiments(cfg)]
        }
    if fig == "fig4":
        return {"gradstats": f"{RESULTS}/{cfg['experiment']}/gradstats.nc"}
    if fig == "fig6":
        return {"crosstrain": f"{RESULTS}/{cfg['experiment']}/crosstrain.nc"}
    if fig == "fig10":
        return {"levels": sweep_inputs(cfg["experiment"])}
    raise ValueError(f"figures.{fig}: no rule draws this figure yet")


def test_subset_size(name):
    """Test subsets are as large a share of the test split as the training subsets are
    of the training split, unless test_subset_size says otherwise."""
    exp = experiment(name)
    if exp.get("test_subset_size"):
        return exp["test_subset_size"]
    info = DATASETS[exp["dataset"]]
    return max(1, round(exp["subset_size"] * info.n_test / info.n_train))


def study_params(name, *extra):
    """Scores' slice plus what the plain-training studies read."""
    exp = experiment(name)
    out = score_params(name)
    keys = ("subset_size", "dynamics_lr", "dynamics_epochs", *extra)
    out.update({k: exp[k] for k in keys if exp.get(k) is not None})
    return out


def sweep_inputs(name):
    levels = experiment(name)["corruption_levels"]
    return [f"{RESULTS}/{name}/sweep/corrupt{level}.nc" for level in levels]
