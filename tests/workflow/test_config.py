"""The strict config: every problem listed at once, by key, before any job runs."""

import copy
from pathlib import Path

import pytest
import yaml

import memorization.workflow.check.host as host_check
from memorization.workflow.check import ConfigError, check_config, validate_config
from memorization.workflow.config import WorkflowConfig, coerce_overrides, load_yaml
from memorization.workflow.provenance import slice_hash
from memorization.workflow.registry import STAGES
from memorization.workflow.specs import Experiment

ROOT = Path(__file__).resolve().parents[2]

with open(ROOT / "config/config.yaml") as fh:
    DEFAULT = yaml.safe_load(fh)
with open(ROOT / "config/paper.yaml") as fh:
    PAPER = yaml.safe_load(fh)

#: a file: a results folder inside it cannot be made (an absolute path, so that the
#: case holds wherever the check runs: here and in test_workflow's Snakemake runs)
A_FILE = str(ROOT / "pyproject.toml")


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


_NOT_A_STRING = "is a string, expected integer"
#: an experiment with a model of one's own (a torchvision ResNet-18)
_OWN = {"dataset": "mnist5k", "model": "torchvision:resnet18", "seed": 0, "epochs": 1,
        "lr": 0.1, "batch_size": 64}  # fmt: skip

# (path, value, message): every entry must be refused, the message naming the key
BAD = [
    ("experiments.mnist_mlp.dataset", "svhn",
     "experiments.mnist_mlp.dataset: 'svhn' is neither a built-in dataset nor one defined"),
    ("experiments.mnist_mlp.model", "resnet",
     "experiments.mnist_mlp.model: 'resnet' is not a built-in model"),
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
    ("experiments.mnist_mlp.hidden", 8,
     "experiments.mnist_mlp.hidden: the masked layers (units [8], keep"),
    ("experiments.mnist_mlp.width", 0.5,
     "experiments.mnist_mlp.width: is an option of vgg11, not of mlp"),
    ("experiments.mnist_mlp.seed", _DELETE, "experiments.mnist_mlp: 'seed' is a required"),
    ("experiments.mnist_mlp.control", "maybe", "experiments.mnist_mlp.control: 'maybe' is a str"),
    ("experiments.mnist_vgg.masked_layers", 9,
     "experiments.mnist_vgg: the vgg11 model with these options (mask_groups, masked_layers, "
     "width) cannot be built: masked_layers"),
    ("experiments.mnist_cct.heads", 3,
     "experiments.mnist_cct: the cct model with these options (activation, depth, embed_dim, "
     "heads, tokenizer_channels) cannot be built: embed_dim 32 is not divisible by heads 3"),
    ("experiments.mnist_mlp.corruption_levels", [], "experiments.mnist_mlp.corruption_levels: []"),
    ("experiments.mnist_mlp.corruption_levels", [0, 5000], "corruption_levels: 5000 exceeds"),
    ("experiments.mnist_mlp.corruption_levels", [0, 0], "levels must be distinct"),
    ("experiments.mnist_mlp.test_subset_size", 501, "test_subset_size: 501 is more than half"),
    ("experiments.mnist_mlp_noisy.probe_size", 1000, "probe_size: 1000 is larger than the subsets"),
    ("experiments.mnist_mlp_noisy.cosine_pairs", "all", "cosine_pairs: 'all' is not one of"),
    # the optimizer's recipe: unknown values, and options that contradict each other
    ("experiments.mnist_mlp.optimizer", "adam", "experiments.mnist_mlp.optimizer: 'adam' is not"),
    ("experiments.mnist_mlp.schedule", "linear", "experiments.mnist_mlp.schedule: 'linear' is no"),
    ("experiments.mnist_mlp.precision", "fp8", "experiments.mnist_mlp.precision: 'fp8' is not"),
    ("experiments.mnist_mlp.betas", [0.9], "experiments.mnist_mlp.betas: [0.9] is too short"),
    ("experiments.mnist_mlp.warmup_epochs", 20,
     "experiments.mnist_mlp.warmup_epochs: 20 warm-up epochs are not shorter than the training"),
    ("experiments.mnist_mlp.clip_norm", 1.0,
     "experiments.mnist_mlp.clip_norm: clipping by the global norm of the batch gradient"),
    ("experiments.mnist_mlp.betas", [0.9, 0.99],
     "experiments.mnist_mlp.betas: is an option of optimizer: adamw"),
    ("experiments.mnist_mlp.eps", 1e-6, "experiments.mnist_mlp.eps: is an option of optimizer"),
    ("experiments.mnist_vgg.schedule", "cosine",
     "experiments.mnist_vgg.milestones: [10] apply to the step schedule only"),
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
    # wrong types the checker used to crash on: refused by the schema, naming the key
    ("experiments.mnist_mlp.seed", "abc", f"experiments.mnist_mlp.seed: 'abc' {_NOT_A_STRING}"),
    ("experiments.mnist_mlp.seed", [1], "experiments.mnist_mlp.seed: [1] is not of type 'int"),
    ("experiments.mnist_mlp.milestones", 5,
     "experiments.mnist_mlp.milestones: 5 is not of type 'array'"),
    ("experiments.mnist_mlp.milestones", [1, "a"],
     f"experiments.mnist_mlp.milestones.1: 'a' {_NOT_A_STRING}"),
    ("experiments.mnist_mlp.corruption_levels", 1000,
     "experiments.mnist_mlp.corruption_levels: 1000 is not of type 'array'"),
    ("experiments.mnist_mlp.truth", {"models": "a"},
     f"experiments.mnist_mlp.truth.models: 'a' {_NOT_A_STRING}"),
    ("experiments", 3, "experiments: 3 is not of type 'object'"),
    ("datasets", [1], "datasets: [1] is not of type 'object'"),
    ("figures", 3, "figures: 3 is not of type 'object'"),
    # where the results go
    ("results", "/", "results: '/' is the filesystem root"),
    ("results", f"{A_FILE}/out",
     f"results: '{A_FILE}/out' lies inside '{A_FILE}', which is a file"),
    # unknown names, with the close match
    ("experiments.mnist_mlp.dataset", "mnist5",
     "experiments.mnist_mlp.dataset: 'mnist5' is neither a built-in dataset nor one defined "
     "under datasets: (did you mean 'mnist5k'?)"),
    ("experiments.mnist_mlp.dataset", "fashion-mnist", "(did you mean 'fashion_mnist'?)"),
    ("experiments.mnist_mlp.model", "mpl",
     "experiments.mnist_mlp.model: 'mpl' is not a built-in model (mlp, vgg11, cct); other models "
     "are named torchvision:NAME, timm:NAME or package.module:function (did you mean 'mlp'?)"),
    # hostile input: a folder nothing can be written in, sites that break turn-over
    ("results", "/proc/x", "results: '/proc/x' cannot be created or written"),
    ("experiments.mnist_mlp", _OWN | {"turnover": ["layer1", "layer1"]},
     "experiments.mnist_mlp: the torchvision:resnet18 model with these options (turnover) "
     "cannot be built: turnover sites: 'layer1' named more than once"),
    ("experiments.mnist_mlp", _OWN | {"turnover": ["conv1"]},  # a batch-norm follows conv1
     "experiments.mnist_mlp: the torchvision:resnet18 model: the zero-gradient proof on 2 "
     "examples refuses it: site 'conv1' breaks turn-over"),
]  # fmt: skip


def _id(path, value):
    shown = "<deleted>" if value is _DELETE else repr(value)  # stable across processes
    return f"{path}={shown}"[:60]


@pytest.mark.parametrize("path,value,message", BAD, ids=[_id(p, v) for p, v, _ in BAD])
def test_bad_input_names_the_key(path, value, message):
    errors = check_config(_with(path, value))  # never an exception: a list of messages
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
    monkeypatch.setattr(host_check, "cuda_device_count", lambda: 0)
    cfg = _with("device", "cuda")
    assert check_config(cfg) == []  # a cluster's nodes may have GPUs the submit host lacks
    errors = check_config(cfg, local=True)
    assert len(errors) == 1 and errors[0].startswith("device: 'cuda' asks for a GPU")
    monkeypatch.setattr(host_check, "cuda_device_count", lambda: 1)
    assert check_config(cfg, local=True) == []


# --- reading config files -------------------------------------------------------------


def test_a_key_given_twice_in_a_config_file_is_refused_with_file_and_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(
        "device: cpu\n"
        "experiments:\n"
        "  a: {dataset: digits, model: mlp, seed: 0, epochs: 1}\n"
        "  b: {dataset: digits, model: mlp, seed: 0, epochs: 1}\n"
        "  a: {dataset: digits, model: mlp, seed: 1, epochs: 2}\n"
    )
    assert yaml.safe_load(path.read_text())["experiments"]["a"]["seed"] == 1  # silently
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    message = str(err.value)
    assert message.startswith(f"{path}:5:3: ") and "key 'a' is given twice" in message
    assert "first on line 3" in message
    # nested mappings too
    path.write_text("experiments:\n  a:\n    lr: 0.1\n    seed: 0\n    lr: 0.2\n")
    with pytest.raises(ConfigError, match=rf"^{path}:5:5: key 'lr' is given twice"):
        load_yaml(path)


def test_config_file_syntax_errors_name_file_and_line(tmp_path):
    path = tmp_path / "syntax.yaml"
    path.write_text("experiments:\n  a: {dataset: mnist5k\n  b: 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+:\d+: "):
        load_yaml(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="a config is a mapping of keys, not a list"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_yaml(tmp_path / "missing.yaml")
    assert load_yaml(ROOT / "config/config.yaml") == DEFAULT


# --- coercion ----------------------------------------------------------------------------


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


# --- what decides each artifact -----------------------------------------------------------


def _params(stage, exp, **wildcards):
    return STAGES[stage].slice_of(exp, **wildcards).params()


def test_experiment_resolves_study_overrides_in_one_place():
    raw = {**DEFAULT["experiments"]["mnist_mlp_noisy"], "dynamics_lr": 0.01, "crosstrain_lr": 0.2}
    exp = Experiment.from_config("noisy", raw)
    assert exp.study("dynamics").lr == raw["dynamics_lr"]
    assert exp.study("dynamics").epochs == raw.get("dynamics_epochs", raw["epochs"])
    # figure 4 trains at the experiment's own lr unless gradstats_lr says otherwise
    assert exp.study("gradstats").lr == raw.get("gradstats_lr", raw["lr"])
    assert exp.study("crosstrain").lr == raw.get("crosstrain_lr", raw["lr"])
    assert _params("dynamics", exp)["study"]["lr"] == raw["dynamics_lr"]
    # each study's slice holds that study's training, not another's
    for study in ("dynamics", "gradstats", "crosstrain"):
        assert STAGES[study].slice_of(exp).study == exp.study(study), study
    assert _params("gradstats", exp)["study"] != _params("dynamics", exp)["study"]
    # model defaults are resolved into the slice, so provenance holds the values used
    model = _params("scores", exp)["model"]
    assert model["hidden"] == raw["hidden"] and model["keep_fraction"] == 0.5


def test_slices_decide_exactly_their_stages():
    base = DEFAULT["experiments"]["mnist_mlp"]
    a = Experiment.from_config("a", base)
    figure_only = Experiment.from_config("a", {**base, "crosstrain_epochs": 7})
    for stage in ("labels", "scores", "subsets", "dynamics", "gradstats"):
        assert slice_hash(_params(stage, a)) == slice_hash(_params(stage, figure_only)), stage
    assert slice_hash(_params("crosstrain", a)) != slice_hash(_params("crosstrain", figure_only))
    reseeded = Experiment.from_config("a", {**base, "seed": 1})
    for stage in ("labels", "scores", "subsets", "dynamics", "crosstrain"):
        assert slice_hash(_params(stage, a)) != slice_hash(_params(stage, reseeded)), stage
    # the name decides nothing: two experiments with the same settings share artifacts
    assert _params("scores", a) == _params("scores", Experiment.from_config("b", base))
    assert _params("sweep", a, level=1000)["labels"]["corrupt"] == 1000
