"""The compact convolutional transformer with turn-over dropout
(memorization.method.models.cct)."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.nn import functional as F

from memorization.method.masks import TurnOverMasks
from memorization.method.models import MODELS, build_model
from memorization.method.models.base import parameter_counts, shared_fraction
from memorization.method.models.cct import CCT, CCT_DEFAULTS, CCT_TINY

SEED = 11
EXAMPLES = [0, 7, 123, 3999, 42]

#: small configurations covering every branch of the masking logic
CONFIGS = {
    "tiny": dict(CCT_TINY),
    "three_conv_relu_sine": dict(
        CCT_TINY, tokenizer_layers=3, activation="relu", positional_embedding="sine", heads=4
    ),
    "one_conv_one_head": dict(CCT_TINY, tokenizer_layers=1, heads=1, positional_embedding="none"),
}


def make(config: str = "tiny", in_shape=(1, 28, 28), seed: int = 0) -> CCT:
    torch.manual_seed(seed)
    return CCT(in_shape, 10, **CONFIGS[config])


def batch(n: int = len(EXAMPLES), in_shape=(1, 28, 28), seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *in_shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def example_masks(model: CCT, pos: int):
    masks = TurnOverMasks(SEED, model.mask_units, EXAMPLES)
    p = torch.tensor([pos])
    return masks.unmuted(p), masks.muted(p)


def grads(model: CCT, x, y, masks) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x, masks), y).backward()
    return {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.named_parameters()
    }


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_unmuted_loss_gives_zero_gradient_to_muted_subnetwork(config):
    model = make(config)
    shared = set(model.shared_parameter_names())
    names = [n for n, _ in model.named_parameters()]
    assert shared <= set(names)
    x, y = batch()
    for pos in range(len(EXAMPLES)):
        unmuted, muted = example_masks(model, pos)
        xi, yi = x[pos : pos + 1], y[pos : pos + 1]
        g_u = grads(model, xi, yi, unmuted)
        g_m = grads(model, xi, yi, muted)
        use_u = model.parameter_usage(unmuted)
        use_m = model.parameter_usage(muted)
        for n in names:
            if n in shared:
                # honest list: a shared parameter really gets gradient from both sub-networks
                assert use_u[n].all() and use_m[n].all()
                assert (g_u[n] != 0).float().mean() > 0.9, n
                assert (g_m[n] != 0).float().mean() > 0.9, n
                continue
            # a covered parameter: the two sub-networks use disjoint entries ...
            assert not (use_u[n] & use_m[n]).any(), n
            # ... the unmuted loss gives exactly zero gradient to the muted entries
            # (and to any entry outside the unmuted sub-network), and vice versa
            assert torch.count_nonzero(g_u[n][use_m[n]]) == 0, n
            assert torch.count_nonzero(g_u[n][~use_u[n]]) == 0, n
            assert torch.count_nonzero(g_m[n][~use_m[n]]) == 0, n
            # structure-free: no covered entry gets gradient from both forwards
            assert not ((g_u[n] != 0) & (g_m[n] != 0)).any(), n
            # not vacuous: each sub-network's loss reaches many of the entries it uses
            # (ReLU MLPs leave about half their hidden units dead for one input)
            assert (g_u[n][use_u[n]] != 0).float().mean() > 0.25, n
            assert (g_m[n][use_m[n]] != 0).float().mean() > 0.25, n


def test_batched_masks_match_per_example_masks():
    model = make()
    x, y = batch()
    masks = TurnOverMasks(SEED, model.mask_units, EXAMPLES)
    positions = torch.arange(len(EXAMPLES))
    together = model(x, masks.unmuted(positions))
    for pos in range(len(EXAMPLES)):
        alone = model(x[pos : pos + 1], example_masks(model, pos)[0])
        torch.testing.assert_close(together[pos : pos + 1], alone, rtol=1e-5, atol=1e-6)


def test_shared_parameter_names_per_config():
    names = make("tiny").shared_parameter_names()
    assert "pos_embedding" in names and "head.weight" in names and "pool.weight" in names
    assert "tokenizer.0.weight" not in names
    assert not any(".attn." in n or ".mlp." in n for n in names)
    names = make("one_conv_one_head").shared_parameter_names()
    assert "tokenizer.0.weight" in names and "pos_embedding" not in names
    assert "blocks.0.attn.qkv.weight" in names and "blocks.1.attn.proj.weight" in names
    assert "pos_embedding" not in make("three_conv_relu_sine").shared_parameter_names()


def test_deterministic_for_a_seed():
    x, y = batch()
    unmuted, _ = example_masks(make(), 0)
    unmuted = [m.expand(len(EXAMPLES), -1) for m in unmuted]
    a, b = make(seed=3), make(seed=3)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    assert torch.equal(a(x, unmuted), b(x, unmuted))
    ga, gb = grads(a, x, y, unmuted), grads(b, x, y, unmuted)
    assert all(torch.equal(ga[n], gb[n]) for n in ga)
    # no randomness in either mode: masks are the only dropout
    a.train()
    out_train = a(x, unmuted)
    a.eval()
    assert torch.equal(out_train, a(x, unmuted))
    assert torch.equal(a(x), a(x))
    assert not torch.equal(make(seed=4)(x), a(x))
    # the masks themselves are a pure function of (seed, layer, example)
    m1 = TurnOverMasks(SEED, a.mask_units, EXAMPLES).unmuted(torch.arange(5))
    m2 = TurnOverMasks(SEED, a.mask_units, EXAMPLES).unmuted(torch.arange(5))
    assert all(torch.equal(u, v) for u, v in zip(m1, m2, strict=True))


@pytest.mark.parametrize("in_shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("config", ["tiny", "three_conv_relu_sine"])
def test_forward_shapes_and_pair(in_shape, config):
    model = make(config, in_shape).eval()
    side = in_shape[1]
    for _ in range(len(model.tokenizer)):
        side = (side - 1) // 2 + 1
    assert model.n_tokens == side * side
    x, _ = batch(4, in_shape)
    masks = TurnOverMasks(SEED, model.mask_units, [5, 6, 7, 8])
    pos = torch.arange(4)
    unmuted, muted = masks.unmuted(pos), masks.muted(pos)
    assert len(unmuted) == len(model.mask_units) == len(model.mask_names)
    assert model(x).shape == (4, 10)
    out_u, out_m = model(x, unmuted), model(x, muted)
    assert out_u.shape == out_m.shape == (4, 10)
    assert torch.isfinite(out_u).all() and not torch.allclose(out_u, out_m)
    pair_u, pair_m = model.forward_pair(x, unmuted, muted)
    torch.testing.assert_close(pair_u, out_u, rtol=0, atol=0)
    torch.testing.assert_close(pair_m, out_m, rtol=0, atol=0)
    with pytest.raises(ValueError):
        model(x, unmuted[:-1])


def test_mask_layout():
    model = make("three_conv_relu_sine")  # tokenizer 16, 16 -> 32; 4 heads; mlp 64
    assert model.mask_names == [
        "tokenizer.0",
        "tokenizer.1",
        "blocks.0.attn",
        "blocks.0.mlp",
        "blocks.1.attn",
        "blocks.1.mlp",
    ]
    assert model.mask_units == [16, 16, 4, 64, 4, 64]
    # 4,000 training examples get distinct masks (TurnOverMasks checks it)
    TurnOverMasks(0, make().mask_units, range(4000))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_shared_fraction_matches_direct_count(config):
    model = make(config)
    shared = set(model.shared_parameter_names())
    params = dict(model.named_parameters())
    n_shared = sum(params[n].numel() for n in shared)
    n_total = sum(p.numel() for p in params.values())
    frac = model.shared_fraction()
    assert 0 < frac < 1
    assert frac == shared_fraction(model) == n_shared / n_total
    assert parameter_counts(model) == {
        "total": n_total,
        "shared": n_shared,
        "covered": n_total - n_shared,
    }
    # per example, the entries both sub-networks use are exactly the shared entries
    unmuted, muted = example_masks(model, 1)
    part = model.parameter_partition(unmuted, muted)
    assert part["both"] == n_shared and part["total"] == n_total
    assert part["unmuted"] > 0 and part["muted"] > 0
    assert sum(part[k] for k in ("both", "unmuted", "muted", "neither")) == n_total
    # and measured with gradients: entries reached by both losses are (nearly) the shared ones
    x, y = batch(1)
    g_u, g_m = grads(model, x, y, unmuted), grads(model, x, y, muted)
    both = sum(int(((g_u[n] != 0) & (g_m[n] != 0)).sum()) for n in params)
    assert 0.9 * n_shared <= both <= n_shared


def test_default_fraction_is_small():
    model = CCT((1, 28, 28), 10)
    assert model.mask_units == [64] + [4, 512] * 7
    assert 3e6 < parameter_counts(model)["total"] < 4.5e6
    assert model.shared_fraction() < 0.01


def test_registered_in_models():
    assert MODELS["cct"].cls is CCT
    assert {k: opt.default for k, opt in MODELS["cct"].options.items()} == CCT_DEFAULTS
    signature = inspect.signature(CCT.__init__).parameters
    assert {k: signature[k].default for k in CCT_DEFAULTS} == CCT_DEFAULTS
    model = build_model(
        "cct", (1, 28, 28), 10, depth=2, heads=2, embed_dim=32, tokenizer_channels=16, width=3
    )
    assert isinstance(model, CCT) and model.depth == 2 and model.embed_dim == 32
    assert model.mask_units == make().mask_units
    with pytest.raises(ValueError):
        CCT((1, 28, 28), 10, embed_dim=30, heads=4)
