from dataclasses import dataclass, fields, replace

import numpy as np
import pytest
import torch

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec, build_optimizer, epoch_lr
from memorization.trust.ensemble import (
    input_density,
    predict_split,
    train_ensemble,
    train_in_chunks,
    train_sequential,
)
from memorization.trust.ensemble.optimizer import StackedOptimizer

OPT = OptimSpec(
    epochs=3, lr=0.1, momentum=0.9, batch_size=32, milestones=(1, 2), gamma=0.5, weight_decay=1e-3
)
SEEDS = [3, 7, 11, 20]


def spec(name: str, options: dict, n_classes: int) -> ModelSpec:
    """The model ``name`` with ``options`` (defaults for the rest) on ``n_classes`` classes."""
    return ModelSpec.from_config(name, options).with_classes(n_classes)


def _sparse_split(n=160, shape=(1, 6, 6), classes=4, seed=0) -> TensorSplit:
    """Images that sit at -0.4 except for ~30 % of their pixels (like standardised MNIST)."""
    g = torch.Generator().manual_seed(seed)
    on = torch.rand(n, *shape, generator=g) < 0.3
    x = torch.where(on, torch.randn(n, *shape, generator=g), torch.tensor(-0.4))
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorSplit(x, y, np.arange(n) + 1000)


def _subsets(n_models: int, n: int, equal: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    if equal:
        out = np.zeros((n_models, n), dtype=bool)
        for k in range(n_models):
            out[k, rng.choice(n, int(0.7 * n), replace=False)] = True
        return out
    return rng.random((n_models, n)) < np.linspace(0.4, 0.9, n_models)[:, None]


def _assert_same_models(ensemble, reference, atol=1e-5):
    states = ensemble.state_dicts()
    assert len(states) == len(reference) == len(ensemble)
    for state, model in zip(states, reference, strict=True):
        ref = model.state_dict()
        assert state.keys() == ref.keys()
        for name, value in ref.items():
            torch.testing.assert_close(state[name], value, atol=atol, rtol=1e-4, msg=name)


@pytest.mark.parametrize("path", ["sparse_mlp", "func", "loop"])
@pytest.mark.parametrize("equal", [True, False])
def test_mlp_ensemble_matches_sequential_fit(path, equal):
    train = _sparse_split()
    subsets = _subsets(len(SEEDS), len(train), equal)
    options = {"hidden": 48}
    reference = train_sequential(spec("mlp", options, 4), train, OPT, SEEDS, subsets)
    ens = train_ensemble(
        spec("mlp", options, 4), train, OPT, SEEDS, subsets, path=path, hidden_block=16
    )
    assert ens.path == path
    _assert_same_models(ens, reference)
    # the models really trained and differ from one another
    w = [s["hidden.weight"] for s in ens.state_dicts()]
    assert not torch.allclose(w[0], w[1])


def test_ensemble_without_momentum_matches_too():
    train = _sparse_split(seed=1)
    opt = OptimSpec(epochs=2, lr=0.2, batch_size=50)
    subsets = _subsets(3, len(train), equal=True)
    reference = train_sequential(spec("mlp", {"hidden": 40}, 4), train, opt, SEEDS[:3], subsets)
    ens = train_ensemble(spec("mlp", {"hidden": 40}, 4), train, opt, SEEDS[:3], subsets)
    assert ens.path == "sparse_mlp"  # auto: the inputs are sparse
    _assert_same_models(ens, reference)


@pytest.mark.parametrize(
    "name,options",
    [
        ("vgg11", {"width": 0.125}),
        ("cct", {"depth": 1, "heads": 2, "embed_dim": 16, "tokenizer_channels": 8}),
    ],
)
@pytest.mark.parametrize("path", ["auto", "func"])
def test_vmap_ensemble_matches_sequential_for_other_models(name, options, path):
    g = torch.Generator().manual_seed(0)
    train = TensorSplit(
        torch.randn(64, 1, 8, 8, generator=g),
        torch.randint(0, 3, (64,), generator=g),
        np.arange(64),
    )
    opt = OptimSpec(epochs=2, lr=0.05, momentum=0.9, batch_size=16, milestones=(1,))
    subsets = _subsets(2, 64, equal=False)
    reference = train_sequential(spec(name, options, 3), train, opt, SEEDS[:2], subsets)
    ens = train_ensemble(spec(name, options, 3), train, opt, SEEDS[:2], subsets, path=path)
    assert ens.path == ("loop" if path == "auto" else path)  # auto on a CPU: one by one
    _assert_same_models(ens, reference)


@pytest.mark.parametrize("path", ["sparse_mlp", "func", "loop"])
def test_predictions_match_the_models_one_by_one(path):
    train = _sparse_split()
    test = _sparse_split(n=50, seed=5)
    subsets = _subsets(3, len(train), equal=True)
    ens = train_ensemble(spec("mlp", {"hidden": 32}, 4), train, OPT, SEEDS[:3], subsets, path=path)
    models = [ens.model(k) for k in range(3)]
    ref = predict_split(models, test)
    got = ens.predict(test, batch_size=17)  # batches that do not divide the split
    np.testing.assert_array_equal(got.correct, ref.correct)
    np.testing.assert_allclose(got.prob, ref.prob, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-4, atol=1e-5)
    logits = ens.logits(test.x)
    assert logits.shape == (3, 50, 4)
    torch.testing.assert_close(logits[2], models[2](test.x), atol=1e-5, rtol=1e-4)


def test_chunks_give_the_same_models_as_one_ensemble():
    train = _sparse_split()
    subsets = _subsets(4, len(train), equal=True)
    whole = train_ensemble(spec("mlp", {"hidden": 32}, 4), train, OPT, SEEDS, subsets)
    seen = {}

    def evaluate(ens, k0):
        for k, state in enumerate(ens.state_dicts()):
            seen[k0 + k] = state

    train_in_chunks(
        spec("mlp", {"hidden": 32}, 4), train, OPT, SEEDS, subsets, evaluate, chunk_size=3
    )
    assert sorted(seen) == [0, 1, 2, 3]
    for k, state in enumerate(whole.state_dicts()):
        for name, value in state.items():
            torch.testing.assert_close(seen[k][name], value, atol=1e-6, rtol=1e-5)


def test_epoch_lr_follows_multistep_lr():
    opt = OptimSpec(epochs=10, lr=0.3, milestones=(2, 5, 5, 8), gamma=0.1)
    param = torch.nn.Parameter(torch.zeros(1))
    sgd = torch.optim.SGD([param], lr=opt.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(sgd, list(opt.milestones), opt.gamma)
    for epoch in range(opt.epochs):
        assert epoch_lr(opt, epoch) == pytest.approx(sgd.param_groups[0]["lr"])
        sgd.step()
        sched.step()


def test_path_choice_and_refusals():
    sparse = _sparse_split()
    assert input_density(sparse.x) < 0.35
    dense = TensorSplit(torch.randn(40, 1, 6, 6), torch.randint(0, 4, (40,)), np.arange(40))
    assert input_density(dense.x) > 0.9
    subsets = np.ones((2, 40), dtype=bool)
    opt = OptimSpec(epochs=1, lr=0.1, batch_size=16)
    # dense inputs on a CPU: one model after another
    assert train_ensemble(spec("mlp", {"hidden": 8}, 4), dense, opt, [0, 1], subsets).path == "loop"
    with pytest.raises(ValueError, match="needs the MLP"):
        train_ensemble(
            spec("vgg11", {"width": 0.125}, 4), dense, opt, [0, 1], subsets, path="sparse_mlp"
        )
    subsets[1] = False
    with pytest.raises(ValueError, match="empty training subset"):
        train_ensemble(spec("mlp", {"hidden": 8}, 4), dense, opt, [0, 1], subsets)
    with pytest.raises(ValueError, match="subsets must be"):
        train_ensemble(spec("mlp", {"hidden": 8}, 4), dense, opt, [0, 1, 2], subsets)


RECIPE = OptimSpec(
    epochs=3,
    lr=0.01,
    batch_size=32,
    weight_decay=0.05,
    optimizer="adamw",
    betas=(0.8, 0.99),
    eps=1e-7,
    schedule="cosine",
    warmup_epochs=1,
    clip_norm=0.1,
)


@pytest.mark.parametrize("path", ["sparse_mlp", "func", "loop"])
@pytest.mark.parametrize("equal", [True, False])
def test_adamw_cosine_warmup_clipped_ensemble_matches_sequential_fit(path, equal):
    train = _sparse_split(seed=2)
    subsets = _subsets(3, len(train), equal)
    options = {"hidden": 40}
    reference = train_sequential(spec("mlp", options, 4), train, RECIPE, SEEDS[:3], subsets)
    ens = train_ensemble(
        spec("mlp", options, 4), train, RECIPE, SEEDS[:3], subsets, path=path, hidden_block=8
    )
    _assert_same_models(ens, reference)
    # the clipping binds: without it the models end elsewhere
    unclipped = train_sequential(
        spec("mlp", options, 4), train, replace(RECIPE, clip_norm=None), SEEDS[:3], subsets
    )
    w = unclipped[0].state_dict()["hidden.weight"]
    assert (ens.state_dicts()[0]["hidden.weight"] - w).abs().max() > 1e-3


def test_clipped_sgd_ensemble_matches_sequential_for_a_conv_net():
    g = torch.Generator().manual_seed(1)
    train = TensorSplit(
        torch.randn(48, 1, 8, 8, generator=g),
        torch.randint(0, 3, (48,), generator=g),
        np.arange(48),
    )
    opt = replace(OPT, batch_size=16, clip_norm=0.01, schedule="step", warmup_epochs=1)
    subsets = _subsets(2, 48, equal=False)
    model = spec("vgg11", {"width": 0.125}, 3)
    reference = train_sequential(model, train, opt, SEEDS[:2], subsets)
    _assert_same_models(train_ensemble(model, train, opt, SEEDS[:2], subsets), reference)
    unclipped = train_sequential(model, train, replace(opt, clip_norm=None), SEEDS[:2], subsets)
    ref, free = reference[0].state_dict(), unclipped[0].state_dict()
    floats = [n for n in ref if ref[n].is_floating_point()]
    assert max(float((ref[n] - free[n]).abs().max()) for n in floats) > 1e-3  # it binds


def test_epoch_lr_follows_the_torch_schedules():
    for opt in [
        replace(RECIPE, epochs=7, warmup_epochs=2),
        replace(RECIPE, epochs=5, warmup_epochs=0),
        replace(OPT, epochs=6, warmup_epochs=2, milestones=(3, 5)),
    ]:
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer, schedule = build_optimizer([param], opt)
        lrs = []
        for epoch in range(opt.epochs):
            assert epoch_lr(opt, epoch) == optimizer.param_groups[0]["lr"]
            lrs.append(epoch_lr(opt, epoch))
            optimizer.step()
            schedule.step()
        warm = opt.warmup_epochs
        assert lrs[:warm] == pytest.approx([opt.lr * (e + 1) / warm for e in range(warm)])
        assert max(lrs) == pytest.approx(opt.lr)
        if opt.schedule == "cosine":
            assert lrs[warm] == pytest.approx(opt.lr)
            assert all(a > b for a, b in zip(lrs[warm:-1], lrs[warm + 1 :], strict=True))
            assert 0 < lrs[-1] < 0.5 * opt.lr


def _has_clip_value() -> bool:
    return "clip_value" in {f.name for f in fields(OptimSpec)}


@dataclass(frozen=True)
class _ClipValueSpec(OptimSpec):
    """An OptimSpec with ``clip_value`` whether or not OptimSpec has the field yet."""

    clip_value: float | None = None


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_stacked_step_clips_each_element_as_clip_grad_value_does(optimizer):
    spec_ = _ClipValueSpec(
        epochs=1, lr=0.1, momentum=0.9, weight_decay=0.01, optimizer=optimizer, clip_value=0.05
    )
    if optimizer == "adamw":
        spec_ = replace(spec_, momentum=0.0)
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 5), (3, 5)]  # K = 3 models' stacked tensors
    params = [torch.randn(s, generator=g) for s in shapes]
    start = [p.clone() for p in params]
    g = torch.Generator().manual_seed(1)
    singles = [[torch.nn.Parameter(p[k].clone()) for p in params] for k in range(3)]
    torch_opts = [build_optimizer(ps, spec_)[0] for ps in singles]
    stacked = StackedOptimizer(spec_)
    for _ in range(3):
        grads = [torch.randn(s, generator=g) * 0.1 for s in shapes]  # some beyond 0.05
        assert any(bool((gr.abs() > 0.05).any()) for gr in grads)
        stacked.step(params, grads, spec_.lr, None)
        for k, (ps, o) in enumerate(zip(singles, torch_opts, strict=True)):
            for p, gr in zip(ps, grads, strict=True):
                p.grad = gr[k].clone()
            torch.nn.utils.clip_grad_value_(ps, 0.05)
            o.step()
    for k, ps in enumerate(singles):
        for p, stacked_p in zip(ps, params, strict=True):
            torch.testing.assert_close(stacked_p[k], p.detach(), atol=1e-6, rtol=1e-5)
    # the clipping binds: the same steps without it end elsewhere
    free = [p.clone() for p in start]
    free_opt, g = (
        StackedOptimizer(replace(spec_, clip_value=None)),
        torch.Generator().manual_seed(1),
    )
    for _ in range(3):
        free_opt.step(free, [torch.randn(s, generator=g) * 0.1 for s in shapes], spec_.lr, None)
    assert max(float((a - b).abs().max()) for a, b in zip(free, params, strict=True)) > 1e-3
    with pytest.raises(ValueError, match="clip_norm and clip_value"):
        StackedOptimizer(replace(spec_, clip_norm=1.0))


@pytest.mark.parametrize("path", ["sparse_mlp", "func", "loop"])
def test_clip_value_ensemble_matches_sequential_fit(path):
    if not _has_clip_value():
        pytest.skip("OptimSpec has no clip_value field yet (method/optim.py)")
    train = _sparse_split(seed=3)
    subsets = _subsets(3, len(train), equal=False)
    opt = replace(OPT, clip_value=0.002)
    options = {"hidden": 40}
    reference = train_sequential(spec("mlp", options, 4), train, opt, SEEDS[:3], subsets)
    ens = train_ensemble(
        spec("mlp", options, 4), train, opt, SEEDS[:3], subsets, path=path, hidden_block=8
    )
    _assert_same_models(ens, reference)
    # the clipping binds: without it the models end elsewhere
    free = train_ensemble(spec("mlp", options, 4), train, OPT, SEEDS[:3], subsets, path=path)
    w, w_free = ens.state_dicts()[0]["hidden.weight"], free.state_dicts()[0]["hidden.weight"]
    assert (w - w_free).abs().max() > 1e-3
    with pytest.raises(ValueError, match="clip_norm and clip_value"):
        train_ensemble(
            spec("mlp", options, 4), train, replace(opt, clip_norm=1.0), [0], subsets[:1]
        )


def test_channels_last_ensemble_equals_the_default_layout():
    g = torch.Generator().manual_seed(4)
    train = TensorSplit(
        torch.randn(48, 3, 8, 8, generator=g),
        torch.randint(0, 3, (48,), generator=g),
        np.arange(48),
    )
    opt = replace(OPT, batch_size=16, epochs=2)
    opt_cl = replace(opt, channels_last=True)
    subsets = _subsets(2, 48, equal=False)
    model = spec("vgg11", {"width": 0.125}, 3)
    default = train_ensemble(model, train, opt, SEEDS[:2], subsets)
    ens = train_ensemble(model, train, opt_cl, SEEDS[:2], subsets)
    convs = [n for n, v in ens.state_dicts()[0].items() if v.dim() == 4]
    assert convs and all(
        ens.state_dicts()[0][n].is_contiguous(memory_format=torch.channels_last) for n in convs
    )
    assert not default.state_dicts()[0][convs[1]].is_contiguous(memory_format=torch.channels_last)
    _assert_same_models(ens, [default.model(k) for k in range(2)])
    _assert_same_models(ens, train_sequential(model, train, opt_cl, SEEDS[:2], subsets))
    torch.testing.assert_close(ens.logits(train.x), default.logits(train.x), atol=1e-5, rtol=1e-4)


def _images(n: int, seed: int) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    return TensorSplit(
        torch.randn(n, 3, 16, 16, generator=g),
        torch.randint(0, 3, (n,), generator=g),
        np.arange(n),
    )


@pytest.mark.parametrize("path", ["func", "loop"])
def test_a_batch_norm_ensemble_predicts_in_eval_mode_as_its_models_do(path):
    """Predictions from running statistics, as one model's (not batch statistics), and
    predicting leaves the running statistics as they are."""
    train = _images(32, 2)
    opt = OptimSpec(epochs=1, lr=0.01, momentum=0.9, batch_size=16)
    subsets = _subsets(2, 32, equal=True)
    model = spec("torchvision:resnet18", {}, 3)
    ens = train_ensemble(model, train, opt, SEEDS[:2], subsets, path=path)
    assert ens.path == path
    reference = train_sequential(model, train, opt, SEEDS[:2], subsets)
    _assert_same_models(ens, reference, atol=1e-4)
    before = ens.state_dicts()
    logits = ens.logits(train.x[:5])  # a small batch: its statistics differ from the running ones
    for k, one in enumerate(reference):
        torch.testing.assert_close(logits[k], one.eval()(train.x[:5]), atol=1e-4, rtol=1e-3)
    for a, b in zip(before, ens.state_dicts(), strict=True):
        assert all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.parametrize("path", ["func", "loop"])
def test_bf16_ensemble_of_a_batch_norm_network_trains_as_one_model_does(path):
    """vmap refuses batch norm on a bf16 input beside float32 weights; the ensemble
    normalises in float32, so a torchvision ResNet-18 trains in bf16 like one model."""
    train = _images(32, 2)
    opt = OptimSpec(epochs=1, lr=0.01, momentum=0.9, batch_size=16, precision="bf16")
    subsets = _subsets(2, 32, equal=True)
    model = spec("torchvision:resnet18", {}, 3)
    ens = train_ensemble(model, train, opt, SEEDS[:2], subsets, path=path)
    assert ens.path == path
    reference = train_sequential(model, train, opt, SEEDS[:2], subsets)
    for state, one in zip(ens.state_dicts(), reference, strict=True):
        ref = one.state_dict()
        # the running statistics moved, as in the model trained alone
        name = next(n for n in ref if n.endswith("bn1.running_mean"))
        assert state[name].abs().max() > 1e-3
        torch.testing.assert_close(state[name], ref[name], atol=2e-2, rtol=5e-2)
        head = [n for n in ref if n.endswith(".weight") and ref[n].dim() == 2][-1]
        torch.testing.assert_close(state[head], ref[head], atol=2e-2, rtol=5e-2)
    logits = ens.logits(train.x)
    assert logits.dtype == torch.float32 or logits.dtype == torch.bfloat16
    assert logits.float().isfinite().all()


def test_the_loop_path_trains_batch_norm_on_each_models_own_rows():
    """Subsets of different sizes: the padded rows of a step and a model sitting a step
    out never reach the loop path's batch normalisation, so every model, its running
    statistics included, is the one trained alone."""
    train = _images(40, 3)
    opt = OptimSpec(epochs=2, lr=0.01, momentum=0.9, batch_size=16)
    subsets = _subsets(2, 40, equal=False)
    assert subsets[0].sum() != subsets[1].sum()
    model = spec("torchvision:resnet18", {}, 3)
    ens = train_ensemble(model, train, opt, SEEDS[:2], subsets, path="loop")
    reference = train_sequential(model, train, opt, SEEDS[:2], subsets)
    _assert_same_models(ens, reference, atol=1e-4)
