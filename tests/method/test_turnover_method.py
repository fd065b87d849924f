"""Unit tests of ``memorization.method.turnover``: sites, the hooks that mask them, the
zero-gradient proof of gradient and update, and the check run before every training.

Small networks only (a few hundred parameters), so every test runs in well under a second.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from memorization.method.masks import complement
from memorization.method.models.base import TurnOverNet, masked_relu
from memorization.method.optim import OptimSpec
from memorization.method.turnover import (
    HiddenHead,
    Site,
    TurnOverModel,
    TurnoverSiteError,
    check_turnover,
    find_head,
    prove_turnover,
    prove_update,
    turnover,
)
from memorization.method.turnover.head import bias_free_head, replace_module
from memorization.method.turnover.sites import group_sizes, resolve_sites, trace

IN_SHAPE = (3, 2, 2)  # 12 features once flattened
CLASSES = 4
SGD = OptimSpec(epochs=2, lr=0.1, batch_size=8, momentum=0.9, weight_decay=5e-3)
ADAMW = replace(SGD, optimizer="adamw", lr=1e-2, momentum=0.0, weight_decay=0.05)


def _mlp_net(seed: int = 0, bias: bool = True) -> nn.Sequential:
    """Flatten -> Linear(12, 16) -> ReLU -> Linear(16, 4): the head is module ``"3"``."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, CLASSES, bias=bias)
    )


def _head_model(seed: int = 0, bias: bool = True, **kwargs) -> TurnOverModel:
    return turnover(
        _mlp_net(seed, bias), n_classes=CLASSES, in_shape=IN_SHAPE, mask_groups=None, **kwargs
    )


def _conv_model(seed: int = 0) -> TurnOverModel:
    """A 1x1 convolution and batch-norm before a Linear head on the flattened maps: each
    channel reaches four features, so the layers before the head are shared."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    net.append(nn.Linear(16, CLASSES))
    return turnover(net, n_classes=CLASSES, in_shape=IN_SHAPE, mask_groups=None)


def _batch(n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *IN_SHAPE, generator=g), torch.arange(n) % CLASSES


def _masks(model, n: int, seed: int = 0):
    masks = model.turnover_masks(seed, np.arange(n), check_unique=False)
    rows = torch.arange(n)
    return masks.unmuted(rows), masks.muted(rows)


class Bypass(nn.Module):
    """``fc1``'s output is the site, but its weight is also used outside the module
    (unmasked): the weight rows of the units an example's mask drops still learn from it."""

    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.leak = leak
        self.fc1 = nn.Linear(12, 8)
        self.fc = nn.Linear(8, CLASSES, bias=False)

    def forward(self, x):
        x = x.flatten(1)
        out = self.fc(self.fc1(x).relu())
        if self.leak:
            out = out + F.linear(x, self.fc1.weight).sum(1, keepdim=True)
        return out


class TinyNet(TurnOverNet):
    """A built-in style turn-over net: ``pre`` (no mask), ``hidden`` (masked), ``out``.

    ``pre`` and ``out.bias`` are used by both sub-networks of every example: they must
    be declared by :meth:`shared_parameter_names`, here ``declared``.
    """

    def __init__(self, declared=(), out_bias: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.pre = nn.Linear(12, 12)
        self.hidden = nn.Linear(12, 16)
        self.out = nn.Linear(16, CLASSES, bias=out_bias)
        self.mask_units = [16]
        self.declared = list(declared)

    def forward(self, x, masks=None):
        self._check_masks(masks)
        h = self.hidden(F.relu(self.pre(x.flatten(1))))
        return self.out(masked_relu(h, None if masks is None else masks[0]))

    def shared_parameter_names(self):
        return list(self.declared)


# -- sites -------------------------------------------------------------------------------------


def test_find_head_is_the_last_linear_with_the_class_count():
    net = nn.Sequential(nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 3))
    assert find_head(net, 4) == "2"
    assert find_head(net, 3) == "3"
    assert find_head(net) == "3"
    conv = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten())
    with pytest.raises(TurnoverSiteError, match="no nn.Linear classifier with 4 outputs"):
        find_head(conv, 4)


def test_find_head_takes_a_timm_style_classifier_and_refuses_one_that_is_not_linear():
    class Named(nn.Module):
        def __init__(self, head):
            super().__init__()
            self.body, self.classifier = nn.Linear(12, 8), head

        def get_classifier(self):
            return self.classifier

    assert find_head(Named(nn.Linear(8, 4)), 4) == "classifier"
    with pytest.raises(TurnoverSiteError, match="classifier of Named is Conv2d, not a Linear"):
        find_head(Named(nn.Conv2d(8, 4, 1)), 4)


def test_group_sizes_cover_every_unit_larger_groups_first():
    assert group_sizes(10, 4) == (3, 3, 2, 2)
    assert group_sizes(5, None) == (1, 1, 1, 1, 1)
    assert group_sizes(3, 64) == (1, 1, 1)  # capped at the units
    for units, groups in [(7, 2), (64, 64), (100, 7)]:
        sizes = group_sizes(units, groups)
        assert sum(sizes) == units and len(sizes) == min(units, groups)
        assert list(sizes) == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1
    with pytest.raises(TurnoverSiteError, match="at least 2 units, got 1"):
        group_sizes(1, None)
    with pytest.raises(ValueError, match="mask_groups must be at least 2"):
        group_sizes(8, 1)


def test_site_axis_is_channels_or_the_last_dim_of_tokens():
    out = Site("m", "output", 8, (1,) * 8)
    assert [out.axis(n) for n in (2, 3, 4)] == [1, 2, 1]
    head = Site("fc", "input", 8, (2,) * 4)
    assert head.bits == 4 and [head.axis(n) for n in (2, 3)] == [1, 2]


def test_trace_counts_calls_keeps_order_and_restores_training_flags():
    class TwiceNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(12, 6), nn.Linear(6, 6)

        def forward(self, x):
            return self.b(self.b(self.a(x.flatten(1))))

    net = TwiceNet().train()
    seen = trace(net, torch.randn(2, *IN_SHAPE), keep=["a"])
    assert seen.calls["a"] == 1 and seen.calls["b"] == 2
    assert seen.start["a"] < seen.end["a"] < seen.start["b"]
    assert seen.in_shapes["a"] == (2, 12) and seen.out_shapes["b"] == (2, 6)
    assert set(seen.outputs) == {"a"} and seen.outputs["a"].shape == (2, 6)
    assert seen.output.shape == (2, 6)
    assert all(m.training for m in net.modules())  # trace ran in eval mode, then restored


def test_resolve_sites_takes_units_from_the_traced_output_and_canonical_names():
    class Alias(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 1)
            self.same = self.conv  # one module, two names: named_modules() keeps "conv"
            self.fc = nn.Linear(6, CLASSES)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    net = Alias()
    seen = trace(net, torch.randn(2, *IN_SHAPE))
    (conv,) = resolve_sites(net, ["same"], seen, mask_groups=4)
    assert conv == Site("conv", "output", 6, (2, 2, 1, 1))
    (head,) = resolve_sites(net, ["fc"], seen, mask_groups=None, heads=["fc"])
    assert head == Site("fc", "input", 6, (1,) * 6)
    with pytest.raises(TurnoverSiteError, match="named twice"):
        resolve_sites(net, ["conv", "same"], seen, mask_groups=None)


# -- wrapping a network ------------------------------------------------------------------------


def test_turnover_on_the_head_masks_the_classifier_input():
    net = _mlp_net()
    model = turnover(net, n_classes=CLASSES, in_shape=IN_SHAPE, mask_groups=4)
    assert model.net is net  # kept, not copied
    assert model.sites == [Site("3", "input", 16, (4, 4, 4, 4))]
    assert model.mask_units == [4] and model.pair_module == "3"
    # everything before the head, and the head's bias (its input mask does not split it)
    assert model.shared_parameter_names() == ["net.1.weight", "net.1.bias", "net.3.bias"]
    described = model.describe()
    assert described["shared_entries"] == 12 * 16 + 16 + CLASSES
    assert described["total_entries"] == 12 * 16 + 16 + 16 * CLASSES + CLASSES
    assert described["shared_fraction"] == pytest.approx(
        described["shared_entries"] / described["total_entries"]
    )


def test_turnover_site_lists_are_checked_before_anything_runs():
    with pytest.raises(TurnoverSiteError, match="non-empty list"):
        turnover(_mlp_net(), sites=[])
    with pytest.raises(TurnoverSiteError, match='"head" is a site of its own'):
        turnover(_mlp_net(), sites=["head", "1"])
    with pytest.raises(TurnoverSiteError, match="head_hidden goes with the head site"):
        turnover(_mlp_net(), sites=["1"], head_hidden=8, in_shape=IN_SHAPE)
    with pytest.raises(ValueError, match="named turn-over sites need in_shape"):
        turnover(_mlp_net(), sites=["1"])
    with pytest.raises(TurnoverSiteError, match="at least one site"):
        TurnOverModel(_mlp_net(), [])


def test_head_hidden_replaces_the_classifier_by_a_bias_free_masked_head():
    model = _head_model(head_hidden=10)
    head = model.net.get_submodule("3")
    assert isinstance(head, HiddenHead) and head.out.bias is None
    assert model.sites == [Site("3.hidden", "output", 10, (1,) * 10)]
    proof = prove_turnover(model, IN_SHAPE, CLASSES)
    assert set(proof.split) == {"net.3.hidden.weight", "net.3.hidden.bias", "net.3.out.weight"}
    assert set(proof.shared) == {"net.1.weight", "net.1.bias"}  # nothing in the head


def test_bias_free_head_and_replace_module():
    old = nn.Linear(6, 3).double()
    new = bias_free_head(old, 5)
    assert isinstance(new, nn.Linear) and new.bias is None
    assert (new.in_features, new.out_features, new.weight.dtype) == (6, 5, torch.float64)
    hidden = bias_free_head(old, 5, hidden=7)
    assert (hidden.hidden.out_features, hidden.out.out_features) == (7, 5)
    assert hidden.out.weight.dtype == torch.float64

    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    replace_module(net, "1.1", new)
    replace_module(net, "0", hidden)
    assert net[1][1] is new and net[0] is hidden


# -- the masks at work -------------------------------------------------------------------------


def test_masked_forward_is_the_head_on_masked_features_and_plain_without_masks():
    model = _head_model().eval()
    net = model.net
    x, _ = _batch()
    unmuted, muted = _masks(model, len(x))
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
        features = net[2](net[1](net[0](x)))
        torch.testing.assert_close(model(x, unmuted), net[3](features * unmuted[0]))
        torch.testing.assert_close(model(x, muted), net[3](features * muted[0]))
        u, m = model(x, unmuted), model(x, muted)
        assert not torch.allclose(u, m)  # the two sub-networks differ on every example
        assert all(not torch.allclose(u[i], m[i]) for i in range(len(x)))
        assert torch.equal(model(x), net(x))  # the masks are gone after the call


def test_forward_pair_equals_two_masked_forwards():
    for model in (_head_model(), _head_model(head_hidden=10)):
        model.eval()
        x, _ = _batch()
        unmuted, muted = _masks(model, len(x))
        with torch.no_grad():
            u, m = model.forward_pair(x, unmuted)  # the muted masks: the complement
            torch.testing.assert_close(u, model(x, unmuted))
            torch.testing.assert_close(m, model(x, muted))
            torch.testing.assert_close(complement(unmuted)[0], muted[0])


def test_a_mask_of_the_wrong_shape_names_the_site_and_is_cleared():
    model = _head_model()
    x, _ = _batch()
    with pytest.raises(TurnoverSiteError, match=r"site '3'.*mask of 8 units for a batch of 6"):
        model(x, [torch.ones(len(x), 8)])
    with pytest.raises(ValueError, match="has 1 masked layers, got 2 masks"):
        model.forward_pair(x, [torch.ones(len(x), 16)] * 2)
    assert all(hook.mask is None for hook in model._masks)
    torch.testing.assert_close(model(x), model.net(x))


def test_a_site_running_twice_is_refused_at_the_forward_pass():
    class TwiceNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.fc = nn.Linear(12, 12), nn.Linear(12, CLASSES)

        def forward(self, x):
            return self.fc(self.a(self.a(x.flatten(1))))

    model = TurnOverModel(TwiceNet(), [Site("a", "output", 12, (1,) * 12)])
    x, _ = _batch()
    unmuted, _ = _masks(model, len(x))
    with pytest.raises(TurnoverSiteError, match="'a' applied its mask 2 times"):
        model(x, unmuted)


def test_a_deep_copy_masks_with_its_own_hooks():
    model = _head_model().eval()
    twin = copy.deepcopy(model)
    assert twin._masks[0] is not model._masks[0]
    x, _ = _batch()
    unmuted, _ = _masks(model, len(x))
    with torch.no_grad():
        torch.testing.assert_close(twin(x, unmuted), model(x, unmuted))
        assert not torch.allclose(twin(x, unmuted), twin(x))
        twin.net[3].weight.add_(1.0)  # the copy's weights are its own
        assert not torch.allclose(twin(x, unmuted), model(x, unmuted))


# -- the zero-gradient proof -------------------------------------------------------------------


def test_the_proof_accepts_a_head_site_and_reports_what_is_split_and_shared():
    model = _conv_model().train()
    model.net[1].running_mean.fill_(0.25)
    rng = torch.get_rng_state()
    proof = prove_turnover(model, IN_SHAPE, CLASSES, seed=1)
    assert set(proof.split) == {"net.4.weight"}
    assert set(proof.shared) == {"net.0.weight", "net.0.bias", "net.1.weight", "net.1.bias"} | {
        "net.4.bias"
    }
    assert proof.shared_entries == 12 + 4 + 4 + 4 + CLASSES
    assert proof.total_entries == proof.shared_entries + 16 * CLASSES
    assert proof.shared_fraction == pytest.approx(proof.shared_entries / proof.total_entries)
    assert proof.batchnorm_before == ["1"] and proof.batchnorm_after == []
    assert "1 batch-norm layers run before a site (1)" in proof.text()
    assert "net.4.weight (64 entries)" in proof.text()
    # the model is left as it was: statistics, flags, random state, no .grad
    assert torch.equal(model.net[1].running_mean, torch.full((4,), 0.25))
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("leak", [False, True])
def test_the_proof_refuses_a_parameter_shared_across_the_split(leak):
    model = turnover(Bypass(leak), sites=["fc1"], in_shape=IN_SHAPE, mask_groups=None)
    if not leak:
        proof = prove_turnover(model, IN_SHAPE, CLASSES)
        assert set(proof.split) == {"net.fc1.weight", "net.fc1.bias", "net.fc.weight"}
        assert proof.shared == {}
        return
    with pytest.raises(TurnoverSiteError) as err:
        prove_turnover(model, IN_SHAPE, CLASSES)
    assert "site 'fc1' breaks turn-over (train mode)" in str(err.value)
    assert "parameter 'net.fc1.weight' gets gradient from example 0's unmuted loss" in str(
        err.value
    )


def test_the_proof_takes_only_turnover_models():
    with pytest.raises(TypeError, match="takes a TurnOverModel, got TinyNet"):
        prove_turnover(TinyNet(), IN_SHAPE, CLASSES)


# -- the check before training -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "out_bias", "named"),
    [
        ((), False, "pre.weight"),  # a layer before the mask, not declared
        (("pre.weight", "pre.bias"), True, "out.bias"),  # the classifier's bias, not declared
    ],
)
def test_the_check_names_a_parameter_the_masks_do_not_cover(declared, out_bias, named):
    x, y = _batch(8)
    with pytest.raises(TurnoverSiteError) as err:
        check_turnover(TinyNet(declared, out_bias), x, y, seed=0)
    assert f"TinyNet: parameter {named!r} gets gradient from both sub-networks" in str(err.value)
    assert "train mode" in str(err.value) and "not declared shared" in str(err.value)


def test_the_check_accepts_the_declared_shared_parameters():
    x, y = _batch(8)
    model = TinyNet(("pre.weight", "pre.bias", "out.bias"))
    found = check_turnover(model, x, y, seed=0)
    assert found.shared == ("out.bias", "pre.bias", "pre.weight")
    total = sum(p.numel() for p in model.parameters())
    assert found.shared_fraction == pytest.approx((12 * 12 + 12 + CLASSES) / total)
    assert "out.bias, pre.bias, pre.weight" in found.text


def test_the_check_of_a_wrapped_model_is_its_proof():
    x, y = _batch(8)
    model = _head_model()
    found = check_turnover(model, x, y, seed=2)
    proof = prove_turnover(model, IN_SHAPE, CLASSES, seed=2, x=x, y=y)
    assert found.shared == tuple(proof.shared) == ("net.3.bias",)
    # hidden unit j reaches feature j only: the proof finds the layer before the head split,
    # where the structure (an upper bound) counts it shared
    assert {"net.1.weight", "net.1.bias"} <= set(proof.split)
    assert set(model.shared_parameter_names()) == {"net.1.weight", "net.1.bias", "net.3.bias"}
    assert found.text == proof.text()
    assert found.shared_fraction == pytest.approx(proof.shared_fraction)


def test_the_check_refuses_global_norm_clipping_before_any_forward_pass():
    class Exploding(TinyNet):
        def forward(self, x, masks=None):
            raise AssertionError("the model ran")

    x, y = _batch(8)
    with pytest.raises(TurnoverSiteError, match=r"clip_norm: .*\(0\.5\).*cannot clip"):
        check_turnover(Exploding(), x, y, seed=0, opt=replace(SGD, clip_norm=0.5))


# -- the update proof --------------------------------------------------------------------------


@pytest.mark.parametrize("opt", [SGD, ADAMW], ids=["sgd", "adamw"])
def test_the_update_proof_holds_for_sgd_and_adamw_and_leaves_the_model(opt):
    x, y = _batch(8)
    for model in (_conv_model(), TinyNet(("pre.weight", "pre.bias", "out.bias"))):
        model.eval()
        before = {n: v.clone() for n, v in model.state_dict().items()}
        rng = torch.get_rng_state()
        shared = check_turnover(model, x, y, seed=0).shared
        said = prove_update(model, x, y, 0, opt, shared)
        found = re.search(r"moves none of the ([\d,]+) muted entries checked", said)
        assert found is not None, said
        assert int(found[1].replace(",", "")) > 0
        decay = f"weight decay {opt.weight_decay:g}"
        assert said.startswith(f"The {opt.optimizer} update ({decay}")
        assert ("momentum 0.9" in said) == (opt.optimizer == "sgd")
        assert not model.training
        assert torch.equal(torch.get_rng_state(), rng)
        for n, v in model.state_dict().items():
            assert torch.equal(v, before[n]), n


@pytest.mark.parametrize("opt", [SGD, ADAMW], ids=["sgd", "adamw"])
def test_the_update_proof_names_a_shared_parameter_left_undeclared(opt):
    """The layer before the head is used by both sub-networks of an example: the step
    with the example moves it, and the proof names it."""
    x, y = _batch(8)
    with pytest.raises(TurnoverSiteError) as err:
        prove_update(_conv_model(), x, y, 0, opt, shared=["net.4.bias"])
    assert f"the {opt.optimizer} update moves" in str(err.value)
    assert "of 'net.0.weight' in example 0's muted sub-network" in str(err.value)
    # declared, the same layers pass
    assert "moves none" in prove_update(
        _conv_model(), x, y, 0, opt, _conv_model().shared_parameter_names()
    )


def test_the_check_with_an_optimizer_reports_the_update_only_off_the_papers_sgd():
    x, y = _batch(8)
    model = _head_model()
    plain = check_turnover(model, x, y, seed=0)
    assert check_turnover(model, x, y, seed=0, opt=SGD).text == plain.text
    with_adamw = check_turnover(model, x, y, seed=0, opt=ADAMW)
    assert with_adamw.text.startswith(plain.text + "\nThe adamw update")


# -- determinism -------------------------------------------------------------------------------


def test_a_seed_decides_the_masks_the_outputs_and_the_reports():
    x, y = _batch(8)
    a, b = _head_model(seed=5), _head_model(seed=5)
    ua, _ = _masks(a, len(x), seed=3)
    ub, _ = _masks(b, len(x), seed=3)
    assert torch.equal(ua[0], ub[0])
    assert not torch.equal(ua[0], _masks(a, len(x), seed=4)[0][0])
    with torch.no_grad():
        assert torch.equal(a(x, ua), b(x, ub))
    pa, pb = (
        prove_turnover(a, IN_SHAPE, CLASSES, seed=3),
        prove_turnover(b, IN_SHAPE, CLASSES, seed=3),
    )
    assert pa.text() == pb.text() and pa.shared_observed == pb.shared_observed
    shared = pa.shared
    assert prove_update(a, x, y, 3, ADAMW, shared) == prove_update(b, x, y, 3, ADAMW, shared)
    assert not torch.equal(_head_model(seed=6).net[3].weight, a.net[3].weight)
