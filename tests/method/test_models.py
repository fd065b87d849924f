import numpy as np
import pytest
import torch
from torch.nn import functional as F

from memorization.data import TensorSplit
from memorization.method.augment import RandomCropFlip, build_augment
from memorization.method.masks import MaskCollisionError, TurnOverMasks
from memorization.method.models import build_model, model_options
from memorization.method.models.cct import CCT_TINY
from memorization.method.models.mlp import MLP
from memorization.method.models.vgg import VGG11
from memorization.method.optim import OptimSpec
from memorization.method.training import fit

TINY_CCT = dict(CCT_TINY, depth=1, embed_dim=16, tokenizer_channels=8)

MODELS = [
    ("mlp", (1, 28, 28), {"hidden": 32}),
    ("mlp", (1, 28, 28), {"hidden": 32, "keep_fraction": 0.75}),
    ("vgg11", (1, 28, 28), {"width": 0.0625}),
    ("vgg11", (3, 32, 32), {"width": 0.0625}),
    ("vgg11", (1, 8, 8), {"width": 0.0625}),
    ("vgg11", (1, 28, 28), {"width": 0.0625, "masked_layers": 3}),
    ("vgg11", (3, 32, 32), {"width": 0.0625, "mask_at": "classifier"}),
    ("vgg11", (1, 64, 64), {"width": 0.0625, "mask_at": "classifier"}),  # 2x2 last maps
    ("vgg11", (1, 8, 8), {"width": 0.0625, "share_masks": True}),
    ("vgg11", (1, 28, 28), {"width": 0.0625, "share_masks": True, "masked_layers": 3}),
    ("vgg11", (1, 28, 28), {"width": 0.125, "mask_groups": 4}),
    ("vgg11", (1, 28, 28), {"width": 0.0625, "mask_groups": 6, "masked_layers": 2}),
    ("vgg11", (1, 8, 8), {"width": 0.0625, "keep_fraction": 0.25}),
    ("vgg11", (1, 28, 28), {"width": 0.0625, "keep_fraction": 0.7, "masked_layers": 1}),
    (
        "vgg11",
        (1, 8, 8),
        {"width": 0.0625, "mask_at": "classifier", "mask_groups": 16, "keep_fraction": 0.75},
    ),
    ("cct", (1, 28, 28), dict(TINY_CCT, keep_fraction=0.3)),
]


def _expected_shared(name, model, opts):
    """The parameters that no mask covers, derived from the options alone."""
    if name == "mlp":
        return set()
    if name == "cct":
        return None  # checked in test_cct.py
    n_shared = 8 - opts.get("masked_layers", 8)
    if opts.get("mask_at") == "classifier":
        # with 1x1 last feature maps, masking the features masks the last convolution's maps
        n_shared = 7 if model.final_size == 1 else 8
    return {f"convs.{i}.{p}" for i in range(n_shared) for p in ("weight", "bias")}


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.named_parameters()
    }


@pytest.mark.parametrize("name,shape,opts", MODELS)
def test_muted_subnetwork_gets_exactly_zero_gradient(name, shape, opts):
    """The property turn-over dropout rests on: example i never updates its muted sub-network.

    Every masking option keeps it: an example's unmuted loss gives exactly zero gradient
    to every parameter entry its muted sub-network uses, except the named shared ones.
    """
    torch.manual_seed(0)
    model = build_model(name, shape, 10, **opts).double()
    shared = set(model.shared_parameter_names())
    expected = _expected_shared(name, model, opts)
    assert expected is None or shared == expected
    examples = np.arange(100, 106)
    masks = model.turnover_masks(5, examples)
    assert masks.keep_fraction == opts.get("keep_fraction", 0.5)
    x = torch.randn(len(examples), *shape, dtype=torch.float64)
    y = torch.arange(len(examples)) % 10
    for i in range(len(examples)):
        row = torch.tensor([i])
        unmuted = [m.double() for m in masks.unmuted(row)]
        muted = [m.double() for m in masks.muted(row)]
        g_unmuted = _grads(model, F.cross_entropy(model(x[row], unmuted), y[row]))
        # the muted sub-network's parameters: every entry its own output depends on
        g_muted = _grads(model, model(x[row], muted).pow(2).sum())
        n_muted = 0
        for pname in shared:  # shared parameters are trained by both sub-networks
            assert (g_muted[pname] != 0).any() and (g_unmuted[pname] != 0).any()
        for pname, gm in g_muted.items():
            if pname in shared:
                continue
            support = gm != 0
            n_muted += int(support.sum())
            leaked = g_unmuted[pname][support]
            assert torch.all(leaked == 0), f"{pname}: {int((leaked != 0).sum())} entries leak"
        assert n_muted > 0
        # and the unmuted loss does train something
        assert any(bool((g != 0).any()) for g in g_unmuted.values())


def test_mlp_masks_cover_hidden_rows_and_output_columns():
    torch.manual_seed(0)
    model = MLP((1, 4, 4), 3, hidden=64)
    masks = TurnOverMasks(0, model.mask_units, [42])
    keep = masks.unmuted(torch.tensor([0]))[0][0] > 0
    loss = F.cross_entropy(
        model(torch.randn(1, 1, 4, 4), masks.unmuted(torch.tensor([0]))), torch.tensor([1])
    )
    loss.backward()
    assert torch.all(model.hidden.weight.grad[~keep] == 0)
    assert torch.all(model.hidden.bias.grad[~keep] == 0)
    assert torch.all(model.output.weight.grad[:, ~keep] == 0)
    assert torch.any(model.hidden.weight.grad[keep] != 0)
    assert model.output.bias is None  # an output bias would be updated by every example


@pytest.mark.parametrize("name,shape,opts", MODELS)
def test_forward_pair_matches_two_forwards(name, shape, opts):
    torch.manual_seed(1)
    model = build_model(name, shape, 10, **opts).eval()
    masks = model.turnover_masks(0, np.arange(4))
    rows = torch.arange(4)
    x = torch.randn(4, *shape)
    u, m = model.forward_pair(x, masks.unmuted(rows), masks.muted(rows))
    assert u.shape == m.shape == (4, 10)
    torch.testing.assert_close(u, model(x, masks.unmuted(rows)))
    torch.testing.assert_close(m, model(x, masks.muted(rows)))
    # without explicit muted masks: the complements (the MLP's fused path)
    u2, m2 = model.forward_pair(x, masks.unmuted(rows))
    torch.testing.assert_close(u2, u)
    torch.testing.assert_close(m2, m)
    assert model(x).shape == (4, 10)  # plain model, no masks
    assert not torch.allclose(u, m)


def test_mlp_forward_pair_with_other_muted_masks():
    """An explicit muted mask that is not the complement (e.g. another example's) is honoured."""
    torch.manual_seed(2)
    model = MLP((1, 4, 4), 3, hidden=16, keep_fraction=0.25)
    masks = model.turnover_masks(0, np.arange(4))
    x = torch.randn(4, 1, 4, 4)
    other = masks.muted(torch.tensor([1, 2, 3, 0]))
    _, m = model.forward_pair(x, masks.unmuted(torch.arange(4)), other)
    torch.testing.assert_close(m, model(x, other))


def test_vgg11_structure():
    model = VGG11((3, 32, 32), 10, width=1.0)
    assert model.mask_units == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(model.pool_after) == 5
    small = VGG11((1, 28, 28), 10, width=0.125)
    assert small.mask_units == [8, 16, 32, 32, 64, 64, 64, 64]
    assert small.classifier.bias is None


def test_unknown_model_and_wrong_mask_count():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", (1, 8, 8), 10)
    model = MLP((1, 4, 4), 3, hidden=8)
    with pytest.raises(ValueError, match="1 masked layers, got 2"):
        model(torch.randn(2, 1, 4, 4), [torch.ones(2, 8), torch.ones(2, 8)])


def test_vgg11_mask_options_structure():
    shape = (3, 32, 32)
    assert VGG11(shape, 10, mask_at="classifier").mask_units == [512]
    assert VGG11(shape, 10, share_masks=True).mask_units == [64, 128, 256, 512]
    assert VGG11(shape, 10, share_masks=True, masked_layers=3).mask_units == [512]
    assert VGG11(shape, 10, mask_groups=8).mask_units == [8] * 8
    # a layer with fewer feature maps than groups keeps one bit per map
    narrow = VGG11(shape, 10, width=0.0625, mask_groups=8)
    assert narrow.mask_units == [4] + [8] * 7
    assert narrow.shared_parameter_names() == []
    classifier = VGG11(shape, 10, width=0.0625, mask_at="classifier", mask_groups=4)
    assert classifier.mask_units == [4]
    assert classifier.shared_parameter_names() == [
        f"convs.{i}.{p}" for i in range(7) for p in ("weight", "bias")
    ]
    # 64x64 inputs end in 2x2 feature maps (128 features): every convolution is shared
    large = VGG11((3, 64, 64), 10, width=0.0625, mask_at="classifier")
    assert large.mask_units == [128] and len(large.shared_parameter_names()) == 16
    # the options' defaults are the paper's: every convolution, one bit per map
    defaults = {k: opt.default for k, opt in model_options("vgg11").items()}
    paper = build_model("vgg11", shape, 10, **defaults)
    assert paper.mask_units == [64, 128, 256, 256, 512, 512, 512, 512]
    assert paper.keep_fraction == 0.5 and paper.shared_parameter_names() == []


def test_classifier_input_mask_equals_last_layer_mask_on_1x1_feature_maps():
    """On 32x32 inputs the features are the last feature maps: the same model, the same masks."""
    models = []
    for opts in (
        {"mask_at": "classifier", "mask_groups": 4},
        {"masked_layers": 1, "mask_groups": 4},
    ):
        torch.manual_seed(0)
        models.append(VGG11((3, 32, 32), 10, width=0.0625, **opts))
    a, b = models
    assert a.mask_units == b.mask_units == [4]
    masks = a.turnover_masks(0, np.arange(6), check_unique=False)  # 6 masks of 4 bits
    x = torch.randn(6, 3, 32, 32)
    for sub in (masks.unmuted(torch.arange(6)), masks.muted(torch.arange(6))):
        assert torch.equal(a(x, sub), b(x, sub))


@pytest.mark.parametrize("groups,sizes", [(4, [8, 8, 8, 8]), (5, [7, 7, 6, 6, 6])])
def test_grouped_masks_keep_whole_groups(groups, sizes):
    torch.manual_seed(0)
    model = VGG11((1, 8, 8), 10, width=0.0625, mask_at="classifier", mask_groups=groups)
    assert model.classifier.in_features == 32 and model.mask_units == [groups]
    seen = []
    model.classifier.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    masks = model.turnover_masks(0, np.arange(10), check_unique=False)  # 6 or 10 masks
    x = torch.randn(10, 1, 8, 8)
    model(x)
    features = seen.pop()
    for sub in (masks.unmuted(torch.arange(10)), masks.muted(torch.arange(10))):
        model(x, sub)
        bits = sub[0]
        assert bits.shape == (10, groups)
        expected = torch.cat([bits[:, g : g + 1].expand(-1, n) for g, n in enumerate(sizes)], 1)
        assert torch.equal(seen.pop(), features * expected)
    assert (masks.unmuted(torch.arange(10))[0] > 0).sum(1).eq(groups // 2).all()


def test_shared_masks_keep_the_same_feature_maps_in_layers_of_equal_width():
    torch.manual_seed(0)
    model = VGG11((1, 8, 8), 10, width=0.0625, share_masks=True).double()
    assert model.mask_units == [4, 8, 16, 32]
    masks = model.turnover_masks(0, np.arange(3))
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    for pos in range(3):
        bits = [m.double() for m in masks.unmuted(torch.tensor([pos]))]
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[pos : pos + 1], bits), torch.tensor([2])).backward()
        kept = bits[3][0] > 0
        for i in (5, 6, 7):  # 32 -> 32 convolutions: the same maps kept in and out
            used = model.convs[i].weight.grad.abs().sum((2, 3)) != 0
            assert used.any()
            assert not used[~kept].any() and not used[:, ~kept].any()
        # conv 4 reads the 16 maps of conv 3 (the mask it shares with conv 2) and writes 32
        used = model.convs[4].weight.grad.abs().sum((2, 3)) != 0
        assert not used[~kept].any() and not used[:, bits[2][0] == 0].any()


@pytest.mark.parametrize(
    "name,opts,n",
    [
        ("vgg11", {"width": 0.0625, "mask_groups": 2, "masked_layers": 1}, 3),  # 2 masks
        ("vgg11", {"width": 0.0625, "mask_groups": 4, "share_masks": True, "masked_layers": 3}, 7),
        ("vgg11", {"width": 0.0625, "mask_at": "classifier", "mask_groups": 2}, 3),
        ("mlp", {"hidden": 4, "keep_fraction": 0.25}, 5),  # 4 masks keep one unit of 4
    ],
)
def test_collisions_are_refused_for_every_option(name, opts, n):
    """Fewer mask bits (groups, shared masks, keep fractions) still refuse shared masks."""
    model = build_model(name, (1, 8, 8), 10, **opts)
    with pytest.raises(MaskCollisionError):
        model.turnover_masks(0, np.arange(n))
    assert len(model.turnover_masks(0, np.arange(n), check_unique=False)) == n


@pytest.mark.parametrize(
    "opts,match",
    [
        ({"mask_at": "fc"}, "mask_at must be one of"),
        ({"mask_at": "classifier", "masked_layers": 3}, "not with mask_at=classifier"),
        ({"mask_groups": 1}, "mask_groups must be at least 2"),
        ({"keep_fraction": 1.0}, "strictly between 0 and 1"),
    ],
)
def test_bad_vgg11_options(opts, match):
    with pytest.raises(ValueError, match=match):
        build_model("vgg11", (1, 8, 8), 10, **opts)


def test_keep_fraction_is_an_option_of_every_model():
    for name, shape, opts in [("mlp", (1, 4, 4), {"hidden": 8}), ("cct", (1, 28, 28), TINY_CCT)]:
        assert model_options(name)["keep_fraction"].default == 0.5
        model = build_model(name, shape, 10, **dict(opts, keep_fraction=0.25))
        masks = model.turnover_masks(0, np.arange(3))
        assert masks.keep_fraction == 0.25
        unmuted = masks.unmuted(torch.arange(3))
        assert set(unmuted[0].unique().tolist()) == {0.0, 4.0}
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        build_model("cct", (1, 28, 28), 10, **dict(TINY_CCT, keep_fraction=0.0))


# -- augmentation (the config's augment option) and fit(augment=...) ----------------------------


def _shifted(x, dy, dx):
    """x moved by (dy, dx) pixels with zeros shifted in."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_random_crop_flip_is_a_shift_and_maybe_a_mirror():
    x = torch.randn(16, 3, 8, 8)
    aug = RandomCropFlip(padding=2)
    out = aug(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    seen = set()
    for img, orig in zip(out, x, strict=True):
        matches = [
            (dy, dx, flip)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            for flip in (False, True)
            if torch.equal(img, _shifted(orig.flip(2) if flip else orig, dy, dx))
        ]
        assert matches, "not a shifted (and possibly mirrored) copy of its image"
        seen.update(matches)
    assert len(seen) > 4  # images get different shifts
    # deterministic for a generator seed, different for another
    assert torch.equal(out, aug(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, aug(x, torch.Generator().manual_seed(1)))
    flips = RandomCropFlip(padding=0)(x, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(a, b.flip(2)) for a, b in zip(flips, x, strict=True)]
    kept = [torch.equal(a, b) for a, b in zip(flips, x, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and any(mirrored) and any(kept)
    assert build_augment(None) is None and build_augment("none") is None
    assert isinstance(build_augment("crop_flip"), RandomCropFlip)
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_augment("mixup")


def _train(augment, seed=0):
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 3, hidden=16)
    g = torch.Generator().manual_seed(3)
    split = TensorSplit(torch.randn(40, 1, 8, 8, generator=g), torch.arange(40) % 3, np.arange(40))
    opt = OptimSpec(epochs=2, lr=0.1, batch_size=8)
    fit(model, split, opt, seed=seed, augment=augment, progress=False)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fit_with_augmentation_is_deterministic_and_keeps_the_batch_order():
    plain = _train(None)
    # an augmentation that changes nothing leaves training exactly as without one
    assert torch.equal(_train(lambda x, g: x), plain)
    crop = _train(RandomCropFlip(padding=2))
    assert torch.equal(crop, _train(RandomCropFlip(padding=2)))
    assert not torch.equal(crop, plain)
    assert not torch.equal(crop, _train(RandomCropFlip(padding=2), seed=1))


def test_the_augment_option_reaches_every_training_run():
    """``augment`` in a config is OptimSpec's, so every fit of the experiment uses it; a
    run without keeps the slice it had before the option existed."""
    base = {"epochs": 2, "lr": 0.1, "batch_size": 8}
    opt = OptimSpec.from_config({**base, "augment": "crop_flip"})
    assert opt.params()["augment"] == "crop_flip"
    assert "augment" not in OptimSpec.from_config(base).params()
    assert OptimSpec.from_params(opt.params()) == opt
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 3, hidden=16)
    g = torch.Generator().manual_seed(3)
    split = TensorSplit(torch.randn(40, 1, 8, 8, generator=g), torch.arange(40) % 3, np.arange(40))
    fit(model, split, opt, seed=0, progress=False)
    by_option = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(by_option, _train(RandomCropFlip()))
