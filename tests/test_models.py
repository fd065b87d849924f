import numpy as np
import pytest
import torch
from torch.nn import functional as F

from memorization.masks import TurnOverMasks
from memorization.models import MLP, VGG11, build_model

MODELS = [
    ("mlp", (1, 28, 28), {"hidden": 32}),
    ("vgg11", (1, 28, 28), {"width": 0.0625}),
    ("vgg11", (3, 32, 32), {"width": 0.0625}),
    ("vgg11", (1, 8, 8), {"width": 0.0625}),
    ("vgg11", (1, 28, 28), {"width": 0.0625, "masked_layers": 3}),
]


def _grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name,shape,opts", MODELS)
def test_muted_subnetwork_gets_exactly_zero_gradient(name, shape, opts):
    """The property turn-over dropout rests on: example i never updates its muted sub-network."""
    torch.manual_seed(0)
    model = build_model(name, shape, 10, **opts).double()
    shared = set(model.shared_parameter_names())
    # only VGG-11 with unmasked early convolutions has shared parameters
    assert (
        shared
        == {
            f"convs.{i}.{p}"
            for i in range(8 - opts.get("masked_layers", 8))
            for p in ("weight", "bias")
        }
        or name == "mlp"
        and not shared
    )
    examples = np.arange(100, 106)
    masks = TurnOverMasks(5, model.mask_units, examples)
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
    masks = TurnOverMasks(0, model.mask_units, np.arange(4))
    rows = torch.arange(4)
    x = torch.randn(4, *shape)
    u, m = model.forward_pair(x, masks.unmuted(rows), masks.muted(rows))
    assert u.shape == m.shape == (4, 10)
    torch.testing.assert_close(u, model(x, masks.unmuted(rows)))
    torch.testing.assert_close(m, model(x, masks.muted(rows)))
    assert model(x).shape == (4, 10)  # plain model, no masks
    assert not torch.allclose(u, m)


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
