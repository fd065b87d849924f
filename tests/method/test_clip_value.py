"""Element-wise gradient clipping (``clip_value``): turn-over training stays exact under it
(an example's muted entries end bit for bit where they would without the example, with SGD
and with AdamW), it clamps, it runs where training clips (after fp16's unscaling), the
checks accept it and refuse it beside ``clip_norm``, and it is recorded only when set."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from helpers import ROOT
from torch.nn import functional as F

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import (
    OptimSpec,
    build_optimizer,
    clip_gradients,
    recipe_problems,
    turnover_clip_problems,
)
from memorization.method.training import fit
from memorization.method.turnover import TurnoverSiteError, check_turnover, turnover
from memorization.method.turnover.update import prove_update
from memorization.workflow.check import check_config
from memorization.workflow.specs import Experiment

CLIP = 0.02  # small enough to bind on many entries of the tiny MLP's gradient
SGD = OptimSpec(epochs=4, lr=0.1, batch_size=16, momentum=0.9, weight_decay=5e-3)
RECIPES = {
    "sgd": replace(SGD, clip_value=CLIP),
    "adamw": replace(SGD, lr=1e-2, momentum=0.0, optimizer="adamw", weight_decay=0.05,
                     clip_value=CLIP),
}  # fmt: skip
#: (parameter, axis of its hidden units) of the MLP: what a muted hidden unit owns
UNITS = [("hidden.weight", 0), ("hidden.bias", 0), ("output.weight", 1)]


def _batch(n=16, shape=(1, 6, 6), classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def _mlp(seed=0):
    return ModelSpec.from_config("mlp", {"hidden": 24}).with_classes(4).build((1, 6, 6), seed=seed)


def _steps(model, x, y, unmuted, opt, last_weights, warm_steps=3):
    """``warm_steps`` steps on the whole batch, then one on the loss weighted by
    ``last_weights``, clipping as ``opt`` says; the parameters after it and the last
    step's gradient before clipping."""
    net = copy.deepcopy(model)
    net.train()
    optimizer, schedule = build_optimizer(net.parameters(), opt)
    full = torch.full((len(x),), 1.0 / len(x))
    for weights in [full] * warm_steps + [last_weights]:
        optimizer.zero_grad(set_to_none=True)
        (F.cross_entropy(net(x, unmuted), y, reduction="none") * weights).sum().backward()
        raw = {n: p.grad.clone() for n, p in net.named_parameters()}
        clip_gradients(net, opt)
        optimizer.step()
        schedule.step()
    return {n: p.detach().clone() for n, p in net.named_parameters()}, raw


def _muted(tensors: dict, dropped: torch.Tensor) -> dict:
    """The entries of the muted hidden units (``dropped``) of each parameter of UNITS."""
    rows = dropped.nonzero().flatten()
    return {name: tensors[name].index_select(axis, rows) for name, axis in UNITS}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_an_examples_muted_entries_do_not_move_because_of_it_under_clip_value(recipe):
    """The last step with example i and with i's loss weight zero leave i's muted entries
    bit for bit the same, though the clip binds on some of them and moves them elsewhere
    than the unclipped step would; the same harness sees clip_norm's leak."""
    opt = RECIPES[recipe]
    model, (x, y) = _mlp(), _batch()
    masks = model.turnover_masks(0, np.arange(len(x)), x.device, check_unique=False)
    unmuted = masks.unmuted(torch.arange(len(x)))
    full = torch.full((len(x),), 1.0 / len(x))
    for i in (0, 5):
        without = full.clone()
        without[i] = 0.0
        dropped = unmuted[0][i] == 0
        assert 0 < int(dropped.sum()) < len(dropped)
        with_i, raw = _steps(model, x, y, unmuted, opt, full)
        without_i, _ = _steps(model, x, y, unmuted, opt, without)
        unclipped, _ = _steps(model, x, y, unmuted, replace(opt, clip_value=None), full)
        a, b, c = _muted(with_i, dropped), _muted(without_i, dropped), _muted(unclipped, dropped)
        clamped = sum(int((g.abs() > CLIP).sum()) for g in _muted(raw, dropped).values())
        assert clamped > 0, (recipe, i)  # the clip binds on muted entries in this step
        for name in a:
            assert torch.equal(a[name], b[name]), (recipe, i, name)
        assert any(not torch.equal(a[n], c[n]) for n in a), (recipe, i)  # clipping acted
        by_norm, _ = _steps(
            model, x, y, unmuted, replace(opt, clip_value=None, clip_norm=1e-3), full
        )
        norm_without, _ = _steps(
            model, x, y, unmuted, replace(opt, clip_value=None, clip_norm=1e-3), without
        )
        d, e = _muted(by_norm, dropped), _muted(norm_without, dropped)
        assert any(not torch.equal(d[n], e[n]) for n in d), (recipe, i)  # the norm leaks


def _wrapped_cnn(seed=0):
    """A small conv net with batch-norm, wrapped with turn-over masks at its head."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(24, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 4),
    )
    return turnover(net, mask_groups=None, n_classes=4, in_shape=(1, 6, 6))


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_the_check_before_training_proves_the_clipped_update(recipe):
    """check_turnover accepts clip_value, proves the clipped update and says how often the
    clip bound; clip_norm is refused, pointing at clip_value."""
    opt = RECIPES[recipe]
    x, y = _batch(n=8)
    for model in (_mlp(), _wrapped_cnn()):
        before = {n: p.detach().clone() for n, p in model.state_dict().items()}
        text = check_turnover(model, x, y, seed=3, opt=opt).text
        assert f"The {opt.optimizer} update" in text and "moves none of the" in text
        said = text.split("gradient clipped element-wise to [-0.02, 0.02]: ")[1]
        assert int(said.split(" entries clamped")[0].replace(",", "")) > 0, text
        for n, v in model.state_dict().items():  # the model is left as it was
            assert torch.equal(v, before[n]), n
        by_norm = replace(opt, clip_value=None, clip_norm=1e-3)
        with pytest.raises(TurnoverSiteError, match="clip_norm: .*use clip_value"):
            check_turnover(model, x, y, seed=3, opt=by_norm)
    with pytest.raises(TurnoverSiteError, match="clip_norm: .*use clip_value"):
        prove_update(_mlp(), x, y, 3, by_norm, shared=())


def test_clip_value_clamps_each_entry_and_changes_the_step():
    param = torch.nn.Parameter(torch.zeros(4))
    opt = OptimSpec(epochs=1, lr=0.5, batch_size=4)
    param.grad = torch.tensor([100.0, -100.0, 0.25, -3.0])
    clip_gradients([param], opt)  # no clip: left alone
    assert torch.equal(param.grad, torch.tensor([100.0, -100.0, 0.25, -3.0]))
    clip_gradients([param], replace(opt, clip_value=1.0))
    assert torch.equal(param.grad, torch.tensor([1.0, -1.0, 0.25, -1.0]))
    with pytest.raises(ValueError, match="clip_norm, clip_value: .*both set"):
        clip_gradients([param], replace(opt, clip_value=1.0, clip_norm=1.0))


def _fit_delta(opt, masks: bool, precision="fp32"):
    """One SGD step of ``fit`` (the whole split one batch): the parameters' change, and
    the gradient of that step (unclipped, in fp32) computed by hand."""
    g = torch.Generator().manual_seed(1)
    train = TensorSplit(torch.randn(16, 1, 6, 6, generator=g), torch.arange(16) % 4, np.arange(16))
    model = _mlp()
    net_masks = model.turnover_masks(0, np.arange(16), train.x.device) if masks else None
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    manual = copy.deepcopy(model)
    unmuted = None if net_masks is None else net_masks.unmuted(torch.arange(16))
    F.cross_entropy(manual(train.x, unmuted), train.y).backward()
    grads = {n: p.grad for n, p in manual.named_parameters()}
    opt = replace(opt, epochs=1, batch_size=16, precision=precision)
    fit(model, train, opt, seed=0, masks=net_masks, progress=False)
    delta = {n: p.detach() - before[n] for n, p in model.named_parameters()}
    return delta, grads


@pytest.mark.parametrize("masks", [True, False], ids=["turnover", "plain"])
def test_training_clips_each_step(masks):
    """fit's step is -lr · clamp(gradient, -v, v), turn-over as plain; unclipped it
    moves some entry further than lr · v."""
    opt = OptimSpec(epochs=1, lr=0.5, batch_size=16, clip_value=CLIP)
    delta, grads = _fit_delta(opt, masks)
    for name, d in delta.items():
        want = -opt.lr * grads[name].clamp(-CLIP, CLIP)
        assert torch.allclose(d, want, rtol=1e-4, atol=1e-7), name
    assert any(bool((grads[n].abs() > CLIP).any()) for n in grads)  # it did bind
    free, _ = _fit_delta(replace(opt, clip_value=None), masks)
    assert max(float(d.abs().max()) for d in free.values()) > opt.lr * CLIP * 1.5


def test_fp16_training_clips_the_unscaled_gradient():
    """With fp16's loss scaling the clip acts on the true gradient: the largest step is
    lr · v (clipping the scaled gradient would make it some 65,536 times smaller)."""
    opt = OptimSpec(epochs=1, lr=0.5, batch_size=16, clip_value=CLIP)
    delta, grads = _fit_delta(opt, masks=True, precision="fp16")
    largest = max(float(d.abs().max()) for d in delta.values())
    assert largest == pytest.approx(opt.lr * CLIP, rel=1e-3)


# --------------------------------------------------------------------------- config
with open(ROOT / "config/config.yaml") as _fh:
    DEFAULT = yaml.safe_load(_fh)


def _experiment(**keys) -> dict:
    cfg = copy.deepcopy(DEFAULT)
    cfg["experiments"]["mnist_mlp"].update(keys)
    return cfg


def test_the_config_takes_clip_value_and_refuses_bad_ones():
    where = "experiments.mnist_mlp"
    assert check_config(_experiment(clip_value=0.5)) == []
    for bad in (0, -1.0):
        errors = check_config(_experiment(clip_value=bad))
        assert any(e.startswith(f"{where}.clip_value") for e in errors), (bad, errors)
    errors = check_config(_experiment(clip_value=0.5, clip_norm=1.0))
    both = [e for e in errors if "clip_norm and clip_value are both set" in e]
    assert both and both[0].startswith(f"{where}.clip_value: "), errors


def test_the_python_checks_refuse_a_bad_or_doubled_clip():
    opt = OptimSpec(epochs=2, lr=0.1, batch_size=4)
    assert recipe_problems(replace(opt, clip_value=0.5)) == []
    assert [k for k, _ in recipe_problems(replace(opt, clip_value=0.0))] == ["clip_value"]
    both = dict(recipe_problems(replace(opt, clip_value=0.5, clip_norm=1.0)))
    assert "clip_norm and clip_value are both set" in both["clip_value"]
    assert turnover_clip_problems({"clip_value": 0.5}) == []
    (refusal,) = turnover_clip_problems({"clip_norm": 1.0, "clip_value": None})
    assert refusal.startswith("clip_norm: clipping by the global norm") and "clip_value" in refusal


def test_clip_value_is_recorded_only_when_set():
    exp = DEFAULT["experiments"]["mnist_mlp"]
    plain = Experiment.from_config("mnist_mlp", exp)
    assert plain.optim.clip_value is None and "clip_value" not in plain.optim.params()
    clipped = Experiment.from_config("mnist_mlp", {**exp, "clip_value": 0.5})
    params = clipped.optim.params()
    assert params["clip_value"] == 0.5
    assert {k: v for k, v in params.items() if k != "clip_value"} == plain.optim.params()
    assert OptimSpec.from_params(params) == clipped.optim
    assert clipped.studies["dynamics"].clip_value == 0.5  # the plain studies clip too
