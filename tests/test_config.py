import copy

import pytest
import yaml

from memorization.config import ConfigError, check_config, coerce_overrides, validate_config

with open("config/config.yaml") as fh:
    DEFAULT = yaml.safe_load(fh)


def _with(path, value):
    cfg = copy.deepcopy(DEFAULT)
    node = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return cfg


def test_default_and_paper_configs_are_valid():
    assert check_config(DEFAULT) == []
    with open("config/paper.yaml") as fh:
        assert check_config(yaml.safe_load(fh)) == []


@pytest.mark.parametrize(
    "path,value,message",
    [
        ("experiments.mnist_mlp.dataset", "svhn", "experiments.mnist_mlp.dataset: unknown dataset"),
        ("experiments.mnist_mlp.model", "resnet", "experiments.mnist_mlp.model: unknown model"),
        ("experiments.mnist_mlp.corrupt", 4001, "experiments.mnist_mlp.corrupt: 4001 exceeds"),
        ("experiments.mnist_mlp.corrupt", -1, "experiments.mnist_mlp.corrupt: must not be neg"),
        ("experiments.mnist_mlp.subset_size", 2001, "experiments.mnist_mlp.subset_size: 2001 is"),
        ("experiments.mnist_mlp.lr", 0, "experiments.mnist_mlp.lr: must be a positive"),
        ("experiments.mnist_mlp.lr", -0.1, "experiments.mnist_mlp.lr: must be a positive"),
        ("experiments.mnist_mlp.epochs", 0, "experiments.mnist_mlp.epochs: must be a positive"),
        ("experiments.mnist_mlp.batch_size", 0, "experiments.mnist_mlp.batch_size: must be a pos"),
        ("experiments.mnist_mlp.milestones", [5, 3], "experiments.mnist_mlp.milestones"),
        ("figures.fig7.experiment", "nope", "figures.fig7: experiment 'nope' is not defined"),
        ("figures.fig2.corrupted", "nope", "figures.fig2: experiment 'nope' is not defined"),
        ("figures.fig11", {"experiment": "mnist_mlp"}, "figures.fig11: unknown figure"),
        ("device", "tpu", "device: must be one of"),
        (
            "experiments.mnist_mlp_noisy.probe_size",
            1000,
            "experiments.mnist_mlp_noisy.probe_size: 1000 is larger than the subsets",
        ),
        (
            "experiments.mnist_mlp.corruption_levels",
            [],
            "experiments.mnist_mlp.corruption_levels: must be a non-empty list",
        ),
        (
            "experiments.mnist_mlp.corruption_levels",
            [0, 5000],
            "experiments.mnist_mlp.corruption_levels: 5000 exceeds",
        ),
        (
            "experiments.mnist_mlp.test_subset_size",
            501,
            "experiments.mnist_mlp.test_subset_size: 501 is more than half",
        ),
        (
            "experiments.mnist_vgg.masked_layers",
            9,
            "experiments.mnist_vgg: the vgg11 options (masked_layers, width) are invalid",
        ),
        (
            "experiments.mnist_cct.heads",
            3,
            "experiments.mnist_cct: the cct options (depth, embed_dim, heads, tokenizer_c",
        ),
        (
            "figures.fig4.experiment",
            "mnist_mlp",
            "figures.fig4: experiment 'mnist_mlp' has no probe_size",
        ),
        (
            "figures.fig10.experiment",
            "mnist_vgg",
            "figures.fig10: experiment 'mnist_vgg' has no corruption_levels",
        ),
    ],
)
def test_bad_input_names_the_key(path, value, message):
    errors = check_config(_with(path, value))
    assert any(message in e for e in errors), errors
    with pytest.raises(ConfigError, match="invalid config"):
        validate_config(_with(path, value))


def test_all_problems_reported_at_once():
    cfg = _with("experiments.mnist_mlp.lr", 0)
    cfg["experiments"]["mnist_vgg"]["dataset"] = "svhn"
    assert len(check_config(cfg)) >= 2


def test_coerce_overrides_turns_strings_into_numbers():
    cfg = {"experiments": {"a": {"epochs": "5", "lr": "0.1", "model": "mlp", "ms": "[1, 2]"}}}
    coerce_overrides(cfg)
    assert cfg["experiments"]["a"] == {"epochs": 5, "lr": 0.1, "model": "mlp", "ms": [1, 2]}
