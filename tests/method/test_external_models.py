"""Turn-over dropout on models built elsewhere: torchvision, timm and factory functions."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from memorization.method.models.external import OPTIONS, build_external
from memorization.method.models.spec import ModelSpec
from memorization.method.turnover import (
    HiddenHead,
    TurnOverModel,
    TurnoverSiteError,
    prove_turnover,
    turnover,
)

FACTORIES = '''
from torch import nn


def plain(num_classes, in_channels=3, width=8):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )


def with_bn(num_classes, in_channels=3):
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes),
    )


class SkipTap(nn.Module):
    """A tap on a branch whose input also flows unmasked around it."""

    def __init__(self, num_classes):
        super().__init__()
        self.fc1 = nn.Linear(12, 8)
        self.tap = nn.Identity()
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        h = self.fc1(x.flatten(1))
        return self.fc(self.norm(h + self.tap(h)))


class Twice(nn.Module):
    """Applies the same convolution twice."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        x = self.conv(x).relu()
        return self.fc(self.conv(x).relu().mean((2, 3)))
'''


@pytest.fixture
def factories(tmp_path, monkeypatch):
    """A module of factory functions importable as ``tm_factories``."""
    (tmp_path / "tm_factories.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tm_factories", raising=False)
    return "tm_factories"


def _masks(model, n):
    """The unmuted and muted masks of examples 0..n-1."""
    masks = model.turnover_masks(0, np.arange(n), check_unique=False)  # few bits: may collide
    rows = torch.arange(n)
    return masks.unmuted(rows), masks.muted(rows)


def _check_pair(model, shape, n=3):
    """forward_pair equals two masked forwards; masked and plain forwards have n x classes."""
    model.eval()
    x = torch.randn(n, *shape)
    unmuted, muted = _masks(model, n)
    with torch.no_grad():
        u, m = model.forward_pair(x, unmuted)
        torch.testing.assert_close(u, model(x, unmuted), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(m, model(x, muted), rtol=1e-5, atol=1e-5)
        plain = model(x)
    assert u.shape == m.shape == plain.shape == (n, model.n_classes)
    assert not torch.allclose(u, m)


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_torchvision_resnet18_head(shape):
    spec = ModelSpec.from_config("torchvision:resnet18", {}).with_classes(10)
    assert spec.options["turnover"] == "head" and spec.options["mask_groups"] == 64
    model = spec.build(shape, seed=0)
    net = model.net
    # small_input "auto": the CIFAR stem, for the data's channels
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert net.conv1.in_channels == shape[0] and isinstance(net.maxpool, nn.Identity)
    assert net.fc.bias is None and net.fc.out_features == 10
    # one site: the classifier's 512 features in 64 groups of 8
    assert model.site_names == ["fc"] and model.mask_units == [64]
    assert model.sites[0].units == 512 and set(model.sites[0].groups) == {8}
    _check_pair(model, shape)

    buffers = {k: b.clone() for k, b in model.named_buffers()}
    rng = torch.get_rng_state()
    model.train()
    proof = prove_turnover(model, shape, 10, n_examples=2)
    # the proof leaves the model and the random state as they were
    assert model.training and torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(b, buffers[k]) for k, b in model.named_buffers())
    assert "net.fc.weight" in proof.split and "net.fc.weight" not in proof.shared
    for backbone in ("net.conv1.weight", "net.bn1.weight", "net.layer3.1.conv2.weight"):
        assert backbone in proof.shared
    # layer4.1's last conv and batch-norm feed feature c from channel c only: split too
    assert {"net.layer4.1.conv2.weight", "net.layer4.1.bn2.bias"} <= set(proof.split)
    assert 0.75 < proof.shared_fraction < 0.8 and len(proof.batchnorm_before) == 20
    assert "eval mode with the running statistics" in proof.text()
    # structurally (an upper bound): everything but the head's weight is shared
    names = [n for n, _ in model.named_parameters()]
    assert model.shared_parameter_names() == [n for n in names if n != "net.fc.weight"]
    info = model.describe()
    assert info["sites"][0] == {
        "name": "fc", "masked": "input", "units": 512, "bits": 64, "group_sizes": [8]
    }  # fmt: skip
    assert info["total_entries"] - info["shared_entries"] == 512 * 10


def test_building_twice_gives_the_same_weights():
    spec = ModelSpec.from_config("torchvision:resnet18", {"head_hidden": 16}).with_classes(10)
    a, b, c = (spec.build((1, 28, 28), seed=s) for s in (3, 3, 4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["net.fc.hidden.weight"], sc["net.fc.hidden.weight"])


def test_factory_named_site_passes_the_proof(factories):
    model = build_external(f"{factories}:plain", (1, 12, 12), 5, turnover=["2"], mask_groups=4)
    net = model.net
    assert net[0].in_channels == 1 and net[6].bias is None  # channels passed, head replaced
    assert model.mask_units == [4] and model.sites[0].groups == (4, 4, 4, 4)
    assert set(model.proof.split) == {"net.2.weight", "net.2.bias", "net.6.weight"}
    assert model.shared_parameter_names() == ["net.0.weight", "net.0.bias"]
    assert model.proof.batchnorm_before == []
    # exactly zero gradient: example 0's unmuted loss in the filters its mask drops
    x, unmuted = torch.randn(3, 1, 12, 12), _masks(model, 3)[0]
    F.cross_entropy(model(x, unmuted)[:1], torch.tensor([1])).backward()
    dropped = unmuted[0][0].repeat_interleave(4) == 0
    assert dropped.sum() == 8
    assert torch.all(net[2].weight.grad[dropped] == 0) and torch.all(net[2].bias.grad[dropped] == 0)
    assert torch.all(net[6].weight.grad[:, dropped] == 0)
    assert torch.any(net[2].weight.grad[~dropped] != 0)
    _check_pair(model, (1, 12, 12))


def test_batchnorm_after_the_site_is_refused(factories):
    with pytest.raises(
        TurnoverSiteError, match=r"'net\.0\.weight'.*train mode|train mode.*'net\.0\.weight'"
    ):
        build_external(f"{factories}:with_bn", (3, 8, 8), 4, turnover=["0"])
    # masked after the batch-norm's ReLU, the same network is fine: each channel c of the
    # convolution and the batch-norm only reaches feature c, so everything is split
    model = build_external(f"{factories}:with_bn", (3, 8, 8), 4, turnover=["2"])
    assert model.proof.batchnorm_before == ["1"] and model.proof.shared == {}
    assert set(model.proof.split) == {
        "net.0.weight", "net.0.bias", "net.1.weight", "net.1.bias", "net.5.weight"
    }  # fmt: skip
    assert "batch-norm layers run before a site (1)" in model.proof.text()


def test_site_that_splits_nothing_is_refused(factories):
    with pytest.raises(TurnoverSiteError, match="'tap' splits no parameter.*net.norm.weight"):
        build_external(f"{factories}:SkipTap", (3, 2, 2), 4, turnover=["tap"])


def test_module_running_twice_is_refused(factories):
    with pytest.raises(TurnoverSiteError, match="'layer1.0.relu' runs 2 times"):
        build_external("torchvision:resnet18", (3, 16, 16), 10, turnover=["layer1.0.relu"])
    with pytest.raises(TurnoverSiteError, match="'conv' runs 2 times"):
        build_external(f"{factories}:Twice", (3, 8, 8), 4, turnover=["conv"])


def test_unknown_module_is_refused_with_suggestions():
    with pytest.raises(
        TurnoverSiteError, match=r"no module named 'layer4\.1\.bn3'.*layer4\.1\.bn2"
    ):
        build_external("torchvision:resnet18", (3, 16, 16), 10, turnover=["layer4.1.bn3"])


def test_head_hidden(factories):
    model = build_external(f"{factories}:plain", (3, 8, 8), 5, head_hidden=12, mask_groups=4)
    head = model.net[6]
    assert isinstance(head, HiddenHead) and head.out.bias is None
    assert (head.hidden.in_features, head.hidden.out_features) == (16, 12)
    assert model.site_names == ["6.hidden"] and model.mask_units == [4]
    backbone = ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    assert model.shared_parameter_names() == backbone  # nothing in the head is shared
    proof = prove_turnover(model, (3, 8, 8), 5, n_examples=4)
    assert set(proof.split) == {"net.6.hidden.weight", "net.6.hidden.bias", "net.6.out.weight"}
    _check_pair(model, (3, 8, 8))


def test_turnover_on_a_built_module():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 3))
    model = turnover(net, mask_groups=None)  # "head", no in_shape: checked on first use
    assert isinstance(model, TurnOverModel) and model.net is net
    assert model.mask_units == [20] and model.n_classes == 3
    assert model.shared_parameter_names() == ["net.1.weight", "net.1.bias", "net.3.bias"]
    _check_pair(model, (3, 2, 2))
    named = turnover(
        nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)), ["1"], in_shape=(6,)
    )
    assert named.mask_units == [8] and named.n_classes == 2
    assert set(named.shared_parameter_names()) == {"net.2.bias"}  # the proof, run on demand


class _Tokens(nn.Module):
    """[B, T, D] token outputs: a site masks the last dim, the same mask for every token."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 16)
        self.mix = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3, bias=False)

    def forward(self, x):
        return self.head(self.mix(self.embed(x).relu()).mean(1))


def test_token_outputs_and_several_sites():
    model = turnover(_Tokens(), ["embed", "mix"], mask_groups=4, in_shape=(5, 4))
    assert [(s.units, s.bits, s.axis(3)) for s in model.sites] == [(16, 4, 2), (16, 4, 2)]
    proof = prove_turnover(model, (5, 4), 3, n_examples=4)
    assert proof.shared == {} and len(proof.split) == 5  # both Linears' rows, the head's columns
    x, (unmuted, _) = torch.randn(2, 5, 4), _masks(model, 2)
    seen = []  # embed's output after the mask (hooks run in order of registration)
    model.net.embed.register_forward_hook(lambda module, args, out: seen.append(out))
    model(x), model(x, unmuted)
    kept = unmuted[0].repeat_interleave(4, dim=1)  # [B, 16]: 0 or 2 per unit, every token
    assert torch.equal(seen[1], seen[0] * kept[:, None, :])


def test_weights_from_a_local_state_dict(tmp_path):
    shape = (1, 28, 28)
    donor = build_external("torchvision:resnet18", shape, 10)
    path = tmp_path / "donor.pt"
    torch.save(donor.state_dict(), path)  # a TurnOverModel's own state dict ("net." names)
    model = build_external("torchvision:resnet18", shape, 10, weights=str(path))
    assert all(torch.equal(v, donor.state_dict()[k]) for k, v in model.state_dict().items())
    assert model.weights_report["skipped"] == [] and model.weights_report["missing"] == []
    # torchvision's ImageNet layout: 1000 classes with a bias, 7x7 RGB stem: skipped
    import torchvision

    imagenet = torchvision.models.resnet18().state_dict()
    torch.save(imagenet, path)
    model = build_external("torchvision:resnet18", shape, 10, weights=str(path))
    report = model.weights_report
    assert set(report["skipped"]) == {"conv1.weight", "fc.weight", "fc.bias"}
    assert report["missing"] == ["conv1.weight", "fc.weight"]
    assert torch.equal(model.net.layer2[0].conv1.weight, imagenet["layer2.0.conv1.weight"])


def test_torchvision_weights_only_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"resnet18-f37072fd\.pth.*get_model"):
        build_external("torchvision:resnet18", (3, 32, 32), 10, weights="DEFAULT")
    import torchvision

    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    imagenet = torchvision.models.resnet18().state_dict()
    torch.save(imagenet, cached)
    model = build_external(
        "torchvision:resnet18", (3, 224, 224), 10, weights="IMAGENET1K_V1", mask_groups=None
    )
    assert model.net.conv1.kernel_size == (7, 7)  # 224 pixels: the ImageNet stem stays
    assert torch.equal(model.net.conv1.weight, imagenet["conv1.weight"])
    assert model.mask_units == [512]
    with pytest.raises(ValueError, match="no weights 'IMAGENET9K'"):
        build_external("torchvision:resnet18", (3, 32, 32), 10, weights="IMAGENET9K")


def test_timm_resnet18():
    pytest.importorskip("timm")
    model = build_external("timm:resnet18", (1, 28, 28), 10)
    net = model.net
    assert net.conv1.in_channels == 1 and net.conv1.kernel_size == (3, 3)  # in_chans, small stem
    assert net.fc.bias is None and model.site_names == ["fc"] and model.mask_units == [64]
    _check_pair(model, (1, 28, 28), n=2)
    proof = prove_turnover(model, (1, 28, 28), 10, n_examples=2)
    assert "net.fc.weight" in proof.split and "net.conv1.weight" in proof.shared


def test_options_and_refusals():
    assert set(OPTIONS) == {
        "turnover", "mask_groups", "head_hidden", "keep_fraction", "weights",
        "small_input", "model_args", "preprocess",
    }  # fmt: skip
    assert all(opt.doc and opt.schema for opt in OPTIONS.values())
    assert OPTIONS["small_input"].default == "auto" and OPTIONS["keep_fraction"].default == 0.5
    with pytest.raises(ValueError, match="did you mean mask_groups"):
        build_external("torchvision:resnet18", (3, 32, 32), 10, mask_group=8)
    with pytest.raises(ValueError, match="only known for torchvision and timm ResNets"):
        build_external("torchvision:vgg11", (3, 32, 32), 10, small_input=True)
    with pytest.raises(TurnoverSiteError, match="no nn.Linear classifier with 10 outputs"):
        build_external("torchvision:squeezenet1_1", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="did you mean resnet18"):
        build_external("torchvision:resnet81", (3, 32, 32), 10)
    model = build_external(
        "torchvision:resnet18", (3, 32, 32), 10, small_input=False, keep_fraction=0.25
    )
    assert model.net.conv1.stride == (2, 2) and model.keep_fraction == 0.25


def test_importing_the_models_stays_light():
    code = (
        "import sys, memorization.method.models.spec, memorization.method.turnover;"
        "print('torchvision' in sys.modules, 'timm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
