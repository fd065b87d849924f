"""The strict config: every problem listed at once, by key, before any job runs."""

import copy

import pytest
import yaml

from memorization.config import (
    ConfigError,
    WorkflowConfig,
    check_config,
    coerce_overrides,
    validate_config,
)
from memorization.experiment import Experiment, slice_hash

with open("config/config.yaml") as fh:
    DEFAULT = yaml.safe_load(fh)
with open("config/paper.yaml") as fh:
    PAPER = yaml.safe_load(fh)


def _with(path, value, base=DEFAULT):
    cfg = copy.deepcopy(base)
    node = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return cfg


_DELETE = object()


def test_default_and_paper_configs_are_valid():
    assert check_config(DEFAULT) == []
    assert check_config(PAPER) == []


def test_each_config_has_its_own_results_folder():
    assert WorkflowConfig.from_config(DEFAULT).results == "results"
    assert WorkflowConfig.from_config(PAPER).results == "results/paper"


# (path, value, message): every entry must be refused, the message naming the key
BAD = [
    ("experiments.mnist_mlp.dataset", "svhn", "experiments.mnist_mlp.dataset: 'svhn' is not one"),
    ("experiments.mnist_mlp.model", "resnet", "experiments.mnist_mlp.model: 'resnet' is not one"),
    ("experiments.mnist_mlp.corrupt", 4001, "experiments.mnist_mlp.corrupt: 4001 exceeds"),
    ("experiments.mnist_mlp.corrupt", -1, "experiments.mnist_mlp.corrupt: -1 is less than"),
    ("experiments.mnist_mlp.corruption", "shuffle", "experiments.mnist_mlp.corruption: 'shuf"),
    ("experiments.mnist_mlp.subset_size", 2001, "experiments.mnist_mlp.subset_size: 2001 is"),
    ("experiments.mnist_mlp.lr", 0, "experiments.mnist_mlp.lr: 0 is less than or equal"),
    ("experiments.mnist_mlp.lr", -0.1, "experiments.mnist_mlp.lr: -0.1 is less than"),
    ("experiments.mnist_mlp.lr", "fast", "experiments.mnist_mlp.lr: 'fast' is a string"),
    ("experiments.mnist_mlp.epochs", 0, "experiments.mnist_mlp.epochs: 0 is less than"),
    ("experiments.mnist_mlp.epochs", 2.5, "experiments.mnist_mlp.epochs: 2.5 is not of type"),
    ("experiments.mnist_mlp.batch_size", 0, "experiments.mnist_mlp.batch_size: 0 is less"),
    ("experiments.mnist_mlp.batch_size", 5000, "experiments.mnist_mlp.batch_size: 5000 is larger"),
    ("experiments.mnist_mlp.milestones", [5, 3], "experiments.mnist_mlp.milestones"),
    ("experiments.mnist_mlp.momentum", 1.5, "experiments.mnist_mlp.momentum: 1.5 is greater"),
    ("experiments.mnist_mlp.seed", 10**20, "experiments.mnist_mlp.seed: 100000000000000000000"),
    ("experiments.mnist_mlp.seed", -1, "experiments.mnist_mlp.seed: -1 is less than"),
    ("experiments.mnist_mlp.epoch", 3, "experiments.mnist_mlp.epoch: unknown key (did you mean"),
    ("experiments.mnist_mlp.hiden", 64, "experiments.mnist_mlp.hiden: unknown key (did you mean"),
    ("experiments.mnist_mlp.hidden", 1, "experiments.mnist_mlp.hidden: 1 is less than"),
    ("experiments.mnist_mlp.hidden", 8, "mnist_mlp: the masked layers (units [8], keep"),
    ("experiments.mnist_mlp.width", 0.5, "experiments.mnist_mlp.width: is an option of model"),
    ("experiments.mnist_mlp.seed", _DELETE, "experiments.mnist_mlp: 'seed' is a required"),
    ("experiments.mnist_mlp.control", "maybe", "experiments.mnist_mlp.control: 'maybe' is a str"),
    ("experiments.mnist_vgg.masked_layers", 9, "experiments.mnist_vgg: the vgg11 options"),
    ("experiments.mnist_cct.heads", 3, "experiments.mnist_cct: the cct options"),
    ("experiments.mnist_mlp.corruption_levels", [], "experiments.mnist_mlp.corruption_levels: []"),
    ("experiments.mnist_mlp.corruption_levels", [0, 5000], "corruption_levels: 5000 exceeds"),
    ("experiments.mnist_mlp.corruption_levels", [0, 0], "levels must be distinct"),
    ("experiments.mnist_mlp.test_subset_size", 501, "test_subset_size: 501 is more than half"),
    ("experiments.mnist_mlp_noisy.probe_size", 1000, "probe_size: 1000 is larger than the subsets"),
    ("experiments.mnist_mlp_noisy.cosine_pairs", "all", "cosine_pairs: 'all' is not one of"),
    ("devcie", "cpu", "devcie: unknown key (did you mean 'device'?)"),
    ("thread", 2, "thread: unknown key (did you mean 'threads'?)"),
    ("device", "tpu", "device: 'tpu' is not one of"),
    ("threads", 0, "threads: 0 is less than the minimum"),
    ("results", "", "results: '' should be non-empty"),
    ("figures.fig3.windw", 5, "figures.fig3.windw: unknown key (did you mean 'window'?)"),
    ("figures.fig2.bins", "abc", "figures.fig2.bins: 'abc' is a string"),
    ("figures.fig2.corupted", "mnist_mlp", "figures.fig2.corupted: unknown key (did you mean"),
    ("figures.fig2.corrupted", None, "figures.fig2.corrupted: None is not of type 'string'"),
    ("figures.fig2.corrupted", _DELETE, "figures.fig2: 'corrupted' is a required property"),
    ("figures.fig7.per_class", 0, "figures.fig7.per_class: 0 is less than the minimum"),
    ("figures.fig7.experiment", "nope", "figures.fig7.experiment: experiment 'nope' is not def"),
    ("figures.fig7.experiment", "mnist_mpl", "experiment 'mnist_mpl' is not defined under"),
    ("figures.fig11", {"experiment": "mnist_mlp"}, "figures.fig11: unknown key"),
    ("figures.fig4.experiment", "mnist_mlp", "figures.fig4.experiment: experiment 'mnist_mlp' has"),
    ("figures.fig10.experiment", "mnist_vgg", "'mnist_vgg' has no corruption_levels"),
    ("figures.fig5.experiments", [], "figures.fig5.experiments: [] should be non-empty"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_bad_input_names_the_key(path, value, message):
    errors = check_config(_with(path, value))
    assert any(message in e for e in errors), errors
    with pytest.raises(ConfigError, match="invalid config"):
        validate_config(_with(path, value))


def test_did_you_mean_for_a_misspelled_experiment_name():
    errors = check_config(_with("figures.fig7.experiment", "mnist_mpl"))
    assert any("did you mean 'mnist_mlp'" in e for e in errors), errors


def test_all_problems_reported_at_once():
    cfg = _with("experiments.mnist_mlp.lr", 0)
    cfg["experiments"]["mnist_vgg"]["dataset"] = "svhn"
    cfg["figures"]["fig3"]["windw"] = 2
    cfg["devcie"] = "cpu"
    errors = check_config(cfg)
    for key in ("mnist_mlp.lr", "mnist_vgg.dataset", "fig3.windw", "devcie"):
        assert any(key in e for e in errors), (key, errors)
    with pytest.raises(ConfigError, match=r"4 problem\(s\)"):
        validate_config(cfg)


def test_device_cuda_without_gpu_is_refused_only_where_jobs_run_locally(monkeypatch):
    import memorization.device as device

    monkeypatch.setattr(device, "_cuda_device_count", lambda: 0)
    cfg = _with("device", "cuda")
    assert check_config(cfg) == []  # a cluster's nodes may have GPUs the submit host lacks
    errors = check_config(cfg, local=True)
    assert len(errors) == 1 and errors[0].startswith("device: 'cuda' asks for a GPU")
    monkeypatch.setattr(device, "_cuda_device_count", lambda: 1)
    assert check_config(cfg, local=True) == []


def test_coerce_overrides_turns_strings_into_numbers():
    cfg = {"experiments": {"a": {"epochs": "5", "lr": "0.1", "model": "mlp", "ms": "[1, 2]"}}}
    coerce_overrides(cfg)
    assert cfg["experiments"]["a"] == {"epochs": 5, "lr": 0.1, "model": "mlp", "ms": [1, 2]}


@pytest.mark.parametrize("text,value", [("1e-3", 0.001), ("5E-2", 0.05), ("3e-2", 0.03)])
def test_numbers_in_any_yaml_spelling(text, value):
    cfg = yaml.safe_load(f"experiments: {{mnist_mlp: {{lr: {text}}}}}")
    assert isinstance(cfg["experiments"]["mnist_mlp"]["lr"], str)  # YAML 1.1 reads a string
    coerce_overrides(cfg)
    assert cfg["experiments"]["mnist_mlp"]["lr"] == value
    full = _with("experiments.mnist_mlp.lr", text)
    coerce_overrides(full)
    assert check_config(full) == []


def test_experiment_resolves_study_overrides_in_one_place():
    raw = {**DEFAULT["experiments"]["mnist_mlp_noisy"], "dynamics_lr": 0.01, "crosstrain_lr": 0.2}
    exp = Experiment.from_config("noisy", raw)
    assert exp.study_optim("dynamics").lr == raw["dynamics_lr"]
    assert exp.study_optim("dynamics").epochs == raw.get("dynamics_epochs", raw["epochs"])
    # figure 4 trains at the experiment's own lr unless gradstats_lr says otherwise
    assert exp.study_optim("gradstats").lr == raw.get("gradstats_lr", raw["lr"])
    assert exp.study_optim("crosstrain").lr == raw.get("crosstrain_lr", raw["lr"])
    assert exp.slice("dynamics")["study"]["lr"] == raw["dynamics_lr"]
    assert exp.slice("gradstats")["study"]["name"] == "gradstats"
    # model defaults are resolved into the slice, so provenance holds the values used
    assert exp.slice("score")["hidden"] == raw["hidden"]


def test_slices_decide_exactly_their_stages():
    base = DEFAULT["experiments"]["mnist_mlp"]
    a = Experiment.from_config("a", base)
    figure_only = Experiment.from_config("a", {**base, "crosstrain_epochs": 7})
    for stage in ("labels", "score", "subsets", "dynamics", "gradstats"):
        assert slice_hash(a.slice(stage)) == slice_hash(figure_only.slice(stage)), stage
    assert slice_hash(a.slice("crosstrain")) != slice_hash(figure_only.slice("crosstrain"))
    reseeded = Experiment.from_config("a", {**base, "seed": 1})
    for stage in ("labels", "score", "subsets", "dynamics", "crosstrain"):
        assert slice_hash(a.slice(stage)) != slice_hash(reseeded.slice(stage)), stage
    # the name decides nothing: two experiments with the same settings share artifacts
    assert a.slice("score") == Experiment.from_config("b", base).slice("score")
    assert a.slice("sweep", level=1000)["corrupt"] == 1000
