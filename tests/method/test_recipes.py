"""Training recipes (AdamW, cosine with warm-up, weight decay, clipping): the optimizer's
update keeps turn-over exact, the checks refuse what breaks it, and a recipe runs end to end."""

from __future__ import annotations

import copy
import os
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from helpers import ROOT, Killed, interrupt, snakemake_command
from torch import nn
from torch.nn import functional as F

from memorization.data import TensorSplit
from memorization.method.checkpoint import Checkpoint
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec, build_optimizer, clip_gradients
from memorization.method.training import fit
from memorization.method.turnover import TurnoverSiteError, check_turnover, turnover
from memorization.method.turnover.update import prove_update
from memorization.workflow.check import check_config
from memorization.workflow.specs import Experiment

SGD = OptimSpec(epochs=4, lr=0.1, batch_size=16)
RECIPES = {
    "sgd": SGD,
    "sgd_momentum_decay": replace(SGD, momentum=0.9, weight_decay=5e-3, milestones=(2,)),
    "adamw": replace(SGD, lr=1e-2, optimizer="adamw", weight_decay=0.05),
    "adamw_cosine": replace(
        SGD,
        lr=1e-2,
        optimizer="adamw",
        betas=(0.8, 0.95),
        eps=1e-6,
        weight_decay=0.05,
        schedule="cosine",
        warmup_epochs=1,
    ),
}


def _batch(n=16, shape=(1, 6, 6), classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def _mlp(seed=0):
    return ModelSpec.from_config("mlp", {"hidden": 24}).with_classes(4).build((1, 6, 6), seed=seed)


def _steps(model, x, y, unmuted, opt, last_weights, warm_steps=3):
    """``warm_steps`` steps on the whole batch (a schedule step after each), then one step
    on the loss weighted by ``last_weights``; returns a copy of the trained parameters."""
    net = copy.deepcopy(model)
    net.train()
    optimizer, schedule = build_optimizer(net.parameters(), opt)
    full = torch.full((len(x),), 1.0 / len(x))
    for weights in [full] * warm_steps + [last_weights]:
        optimizer.zero_grad(set_to_none=True)
        loss = (F.cross_entropy(net(x, unmuted), y, reduction="none") * weights).sum()
        loss.backward()
        clip_gradients(net, opt)
        optimizer.step()
        schedule.step()
    return {n: p.detach().clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_an_examples_muted_parameters_do_not_move_because_of_it(recipe):
    """Per optimizer: the last step with example i in the batch and with i's loss weight
    zero leave i's muted hidden units (their rows of the hidden layer, their columns of
    the output layer) bit for bit the same; the units i trains do move."""
    opt = RECIPES[recipe]
    model = _mlp()
    x, y = _batch()
    masks = model.turnover_masks(0, np.arange(len(x)), x.device, check_unique=False)
    unmuted = masks.unmuted(torch.arange(len(x)))
    for i in (0, 5):
        without = torch.full((len(x),), 1.0 / len(x))
        without[i] = 0.0
        with_i = _steps(model, x, y, unmuted, opt, torch.full((len(x),), 1.0 / len(x)))
        without_i = _steps(model, x, y, unmuted, opt, without)
        dropped = unmuted[0][i] == 0
        assert 0 < int(dropped.sum()) < len(dropped)
        for name, axis in [("hidden.weight", 0), ("hidden.bias", 0), ("output.weight", 1)]:
            a = with_i[name].index_select(axis, dropped.nonzero().flatten())
            b = without_i[name].index_select(axis, dropped.nonzero().flatten())
            assert torch.equal(a, b), (recipe, i, name)
            kept = (~dropped).nonzero().flatten()
            moved = with_i[name].index_select(axis, kept) != without_i[name].index_select(
                axis, kept
            )
            assert moved.any(), (recipe, i, name)  # the example does train its unmuted units


def _wrapped_cnn(seed=0):
    """A small conv net with batch-norm, wrapped with turn-over masks at its head."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 16),
        nn.ReLU(),
        nn.Linear(16, 4),
    )
    return turnover(net, mask_groups=None, n_classes=4, in_shape=(1, 6, 6))


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_the_check_before_training_proves_each_optimizers_update(recipe):
    opt = RECIPES[recipe]
    x, y = _batch(n=8)
    for model in (_mlp(), _wrapped_cnn()):
        before = {n: p.detach().clone() for n, p in model.state_dict().items()}
        check = check_turnover(model, x, y, seed=3, opt=opt)
        if recipe.startswith("sgd"):  # the paper's optimizer: its report stays as it was
            assert check.text == check_turnover(model, x, y, seed=3).text
        else:
            assert f"The {opt.optimizer} update" in check.text
            assert "moves none of the" in check.text
        for n, v in model.state_dict().items():  # the model is left as it was
            assert torch.equal(v, before[n]), n


@pytest.mark.parametrize("recipe", ["sgd_momentum_decay", "adamw_cosine"])
def test_the_update_proof_holds_under_bf16_autocast(recipe):
    x, y = _batch(n=8)
    opt = replace(RECIPES[recipe], precision="bf16")
    for model in (_mlp(), _wrapped_cnn()):
        shared = check_turnover(model, x, y, seed=3).shared
        assert "moves none of the" in prove_update(model, x, y, 3, opt, shared)


def test_clipping_by_the_global_norm_breaks_turnover_and_is_refused():
    x, y = _batch(n=8)
    model = _mlp()
    clipped = replace(RECIPES["sgd_momentum_decay"], clip_norm=1e-3)
    # the update proof itself sees the leak: the norm couples every entry to every example
    with pytest.raises(TurnoverSiteError, match="clip_norm"):
        prove_update(model, x, y, 3, clipped, shared=())
    with pytest.raises(TurnoverSiteError, match="clip_norm"):
        check_turnover(model, x, y, seed=3, opt=clipped)
    # without clipping the same proof holds
    assert "moves none" in prove_update(model, x, y, 3, replace(clipped, clip_norm=None), ())


def test_an_update_that_leaks_is_named():
    """Both sub-networks of an example use the layers before the head (they are shared):
    told that nothing is shared, the update proof names one of them."""
    x, y = _batch(n=8)
    model = _wrapped_cnn()
    with pytest.raises(TurnoverSiteError, match="muted sub-network"):
        prove_update(model, x, y, 3, RECIPES["adamw"], shared=())


def test_the_papers_sgd_is_built_as_before():
    """The default recipe: torch's SGD and MultiStepLR with the experiment's numbers, no
    clipping, so its runs stay bit for bit those of the SGD-only releases."""
    opt = OptimSpec(epochs=6, lr=0.3, momentum=0.9, batch_size=8, milestones=(2, 4), gamma=0.5)
    param = torch.nn.Parameter(torch.ones(3))
    optimizer, schedule = build_optimizer([param], opt)
    assert type(optimizer) is torch.optim.SGD
    assert type(schedule) is torch.optim.lr_scheduler.MultiStepLR
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.3, 0.9, 0.0)
    assert (group["dampening"], group["nesterov"]) == (0, False)
    assert dict(schedule.milestones) == {2: 1, 4: 1} and schedule.gamma == 0.5
    param.grad = torch.full((3,), 100.0)
    clip_gradients([param], opt)  # no clip_norm: the gradient is left alone
    assert torch.equal(param.grad, torch.full((3,), 100.0))
    clip_gradients([param], replace(opt, clip_norm=1.0))
    assert float(param.grad.norm()) == pytest.approx(1.0, rel=1e-5)
    adamw, cosine = build_optimizer([param], RECIPES["adamw_cosine"])
    assert type(adamw) is torch.optim.AdamW and type(cosine) is torch.optim.lr_scheduler.LambdaLR
    assert adamw.param_groups[0]["betas"] == (0.8, 0.95)
    assert adamw.param_groups[0]["weight_decay"] == 0.05


def test_the_python_api_takes_the_recipe_by_keyword():
    import memorization as mz

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 6, 6, generator=g).numpy(), (torch.arange(60) % 3).numpy()
    common = dict(epochs=3, lr=0.01, batch_size=16, hidden=32, device="cpu", seed=0)
    recipe = dict(optimizer="adamw", schedule="cosine", warmup_epochs=1, weight_decay=0.05)
    scores = mz.score("mlp", x, y, **common, **recipe)
    assert "The adamw update (weight decay 0.05)" in scores.attrs["turnover_check"]
    assert np.isfinite(scores["memorization"].values).all()
    plain = mz.score("mlp", x, y, **common)  # the paper's SGD: other scores
    assert not np.allclose(plain["memorization"].values, scores["memorization"].values)
    with pytest.raises(ValueError, match="warmup_epochs: 3 warm-up epochs are not shorter"):
        mz.score("mlp", x, y, **{**common, **recipe, "warmup_epochs": 3})
    with pytest.raises(ValueError, match="betas: is an option of optimizer: adamw"):
        mz.score("mlp", x, y, **common, betas=(0.5, 0.9))


# --------------------------------------------------------------------------- resume
def test_an_adamw_cosine_run_killed_resumes_bit_identical(tmp_path, monkeypatch):
    """AdamW's moments and step counts and the LambdaLR schedule round-trip a checkpoint."""
    g = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(96, 1, 6, 6, generator=g), torch.arange(96) % 4, np.arange(96))
    opt = replace(RECIPES["adamw_cosine"], epochs=4, warmup_epochs=2, batch_size=32)

    def trained(checkpoint=None):
        torch.manual_seed(0)
        model = _mlp()
        masks = model.turnover_masks(0, np.arange(96), train.x.device)
        fit(model, train, opt, seed=0, masks=masks, checkpoint=checkpoint, progress=False)
        return model.state_dict()

    reference = trained()
    ckpt = Checkpoint(tmp_path / "ckpt.pt", {"test": "recipe"}, every=1)
    with monkeypatch.context() as m:
        interrupt(m, 8, "kill")  # in the third epoch: after the warm-up's last checkpoint
        with pytest.raises(Killed):
            trained(ckpt)
    resumed = trained(Checkpoint(tmp_path / "ckpt.pt", {"test": "recipe"}, every=1))
    for name, value in reference.items():
        assert torch.equal(resumed[name], value), name


# --------------------------------------------------------------------------- config check
with open(ROOT / "config/config.yaml") as _fh:
    DEFAULT = yaml.safe_load(_fh)


def _experiment(name: str, **keys) -> dict:
    cfg = copy.deepcopy(DEFAULT)
    cfg["experiments"][name].update(keys)
    return cfg


def test_contradicting_recipes_are_refused_naming_the_key():
    noisy = "experiments.mnist_mlp_noisy"
    cases = [
        (
            _experiment("mnist_mlp", optimizer="adamw", momentum=0.9),
            "experiments.mnist_mlp.momentum: is an option of optimizer: sgd",
        ),
        # a study's own epochs and milestones keep the warm-up: it must stay shorter
        (
            _experiment(
                "mnist_mlp_noisy", warmup_epochs=5, dynamics_epochs=4, dynamics_milestones=[]
            ),
            f"{noisy}.dynamics_epochs: the dynamics training: 5 warm-up epochs are not shorter",
        ),
        (
            _experiment(
                "mnist_mlp_noisy", schedule="cosine", warmup_epochs=2, gradstats_milestones=[5]
            ),
            f"{noisy}.gradstats_milestones: the gradstats training: [5] apply to the step",
        ),
    ]
    for cfg, message in cases:
        errors = check_config(cfg)
        assert any(message in e for e in errors), (message, errors)


def test_a_consistent_recipe_passes_the_check():
    recipe = dict(optimizer="adamw", schedule="cosine", warmup_epochs=2, weight_decay=0.05)
    cfg = _experiment("mnist_mlp_noisy", **recipe, betas=[0.9, 0.95], eps=1e-7)
    # study epochs without milestones scale the warm-up with them (as many steps)
    cfg["experiments"]["mnist_mlp_noisy"]["dynamics_epochs"] = 3
    assert check_config(cfg) == []
    exp = Experiment.from_config("mnist_mlp_noisy", cfg["experiments"]["mnist_mlp_noisy"])
    assert exp.optim.optimizer == "adamw" and exp.optim.betas == (0.9, 0.95)
    assert exp.studies["dynamics"].warmup_epochs == 1  # round(2 * 3 / 20) kept at least 1
    assert exp.studies["gradstats"].warmup_epochs == 6  # 60 epochs: 3 times the steps
    assert exp.optim.params()["schedule"] == "cosine"


# --------------------------------------------------------------------------- end to end
RECIPE_CONFIG = {
    "device": "cpu",
    "threads": 1,
    "experiments": {
        "recipe": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "seed": 0,
            "epochs": 3,
            "lr": 0.003,
            "batch_size": 64,
            "optimizer": "adamw",
            "schedule": "cosine",
            "warmup_epochs": 1,
            "weight_decay": 0.05,
            "truth": {"models": 4, "fraction": 0.7, "shards": 1, "top_k": 3},
        },
    },
    "figures": {},
}


@pytest.mark.workflow
def test_an_adamw_cosine_recipe_is_checked_and_scored(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(RECIPE_CONFIG))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cli = [str(ROOT / ".venv/bin/memorization"), "check", str(cfg)]
    res = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    targets = [f"results/recipe/{name}.nc" for name in ("scores", "peers", "truth")]
    cmd = snakemake_command(
        "--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "2", *targets
    )
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    with xr.open_dataset(tmp_path / "results/recipe/scores.nc", engine="netcdf4") as ds:
        assert "The adamw update" in ds.attrs["turnover_check"]
        assert np.isfinite(ds["memorization"].values).all()
        assert "optimizer: adamw" in ds.attrs["config"]
        assert "schedule: cosine" in ds.attrs["config"]
    with xr.open_dataset(tmp_path / "results/recipe/truth.nc", engine="netcdf4") as ds:
        assert "optimizer: adamw" in ds.attrs["config"]
