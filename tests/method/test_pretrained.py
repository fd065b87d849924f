"""Pretrained timm weights offline (a file, timm's file overlay, the Hugging Face cache),
fine-tuning them under the zero-gradient proof, the model's own preprocessing
(``preprocess: model``) and the precision keywords of ``score()``."""

from __future__ import annotations

import socket
import textwrap

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import memorization as mz
from memorization.api import ArgumentError
from memorization.data.tensors import to_tensors
from memorization.method.models.external import build_external, model_preprocessing
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.precision import supports
from memorization.method.turnover import check_turnover, prove_turnover
from memorization.workflow.check import check_config

timm = pytest.importorskip("timm")
ARCH = "test_resnet"  # timm's own tiny ResNet (373k parameters, 160-pixel inputs)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _donor(seed: int = 1) -> dict[str, torch.Tensor]:
    """An ImageNet-shaped state dict of timm's test_resnet (1000 classes), seeded."""
    torch.manual_seed(seed)
    return timm.create_model(ARCH, pretrained=False).state_dict()


def _assert_loaded(model, state, skipped=("fc.weight", "fc.bias")):
    own = model.net.state_dict()
    report = model.weights_report
    assert sorted(report["skipped"]) == sorted(skipped)
    for key, value in state.items():
        if key not in skipped:
            assert torch.equal(own[key], value), key
    assert own["fc.weight"].shape[0] == 10 and "fc.weight" in report["missing"]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_weights_from_a_file_equal_the_files(tmp_path, no_network, suffix):
    state = _donor()
    path = tmp_path / f"donor{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = build_external(f"timm:{ARCH}", (3, 32, 32), 10, weights=str(path))
    _assert_loaded(model, state)
    assert model.weights_report["source"] == str(path) and model.net.fc.bias is None


def test_timm_pretrained_cfg_overlay_file_and_grey_images(tmp_path, no_network):
    state = _donor()
    path = tmp_path / "overlay.pth"
    torch.save({"state_dict": state}, path)  # a checkpoint holding the state dict
    overlay = {"pretrained_cfg_overlay": {"file": str(path)}}
    model = build_external(f"timm:{ARCH}", (1, 32, 32), 10, model_args=overlay)
    first = model.net.conv1[0].weight
    assert first.shape[1] == 1  # in_chans=1: the RGB filters summed
    assert torch.equal(first, state["conv1.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.net.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])
    with pytest.raises(ValueError, match="give one"):
        build_external(f"timm:{ARCH}", (3, 32, 32), 10, weights=str(path), model_args=overlay)


def _fake_hf_cache(root, state) -> None:
    """The Hugging Face cache layout of timm/test_resnet.r160_in1k holding ``state``."""
    from safetensors.torch import save_file

    repo = root / "models--timm--test_resnet.r160_in1k"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    save_file(state, str(snapshot / "model.safetensors"))


def test_timm_weights_from_the_hugging_face_cache_only(tmp_path, monkeypatch, no_network):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError) as err:
        build_external(f"timm:{ARCH}", (3, 32, 32), 10, weights="DEFAULT")
    message = str(err.value)
    assert f"timm:{ARCH}" in message and "timm/test_resnet.r160_in1k" in message
    assert str(cache) in message and "Nothing is downloaded" in message
    state = _donor(seed=2)
    _fake_hf_cache(cache, state)
    for weights in ("DEFAULT", "r160_in1k", "test_resnet.r160_in1k"):
        model = build_external(f"timm:{ARCH}", (3, 32, 32), 10, weights=weights)
        _assert_loaded(model, state)
    with pytest.raises(ValueError, match=r"no pretrained weights 'in22k'.*r160_in1k"):
        build_external(f"timm:{ARCH}", (3, 32, 32), 10, weights="in22k")
    with pytest.raises(ValueError, match="model_args.pretrained would download"):
        build_external(f"timm:{ARCH}", (3, 32, 32), 10, model_args={"pretrained": True})


def test_a_missing_weights_file_is_refused_before_compute_naming_it(tmp_path):
    missing = tmp_path / "nowhere" / "weights.safetensors"
    with pytest.raises(FileNotFoundError, match=r"nowhere/weights\.safetensors.*timm:test_resnet"):
        build_external(f"timm:{ARCH}", (3, 32, 32), 10, weights=str(missing))
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (24, 8, 8, 3)).astype(np.uint8), np.arange(24) % 3
    with pytest.raises(FileNotFoundError, match="weights.safetensors"):
        mz.score(f"timm:{ARCH}", images, labels, epochs=1, lr=0.1, batch_size=8,
                 weights=str(missing), device="cpu")  # fmt: skip
    cfg = {"datasets": {"own": {"source": "arrays", "path": str(tmp_path / "d.npz")}}}
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    exp = {"dataset": "own", "model": f"timm:{ARCH}", "weights": str(missing), "seed": 0}
    cfg["experiments"] = {"pre": exp | {"epochs": 1, "lr": 0.1, "batch_size": 8}}
    errors = check_config(cfg)
    assert any(e.startswith("experiments.pre") and "weights.safetensors" in e for e in errors)


@pytest.mark.parametrize("sites", ["head", ["layer3", "layer4"]])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fine_tuning_pretrained_weights_passes_the_proof(tmp_path, sites, optimizer):
    state = _donor()
    path = tmp_path / "donor.pth"
    torch.save(state, path)
    shape = (3, 32, 32)
    model = build_external(f"timm:{ARCH}", shape, 4, weights=str(path), turnover=sites,
                           mask_groups=8)  # fmt: skip
    assert torch.equal(model.net.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    if sites != "head":  # named sites: proved when built, on the loaded weights
        assert model.proof is not None and model.proof.split
    proof = prove_turnover(model, shape, 4, n_examples=4)
    assert "net.fc.weight" in proof.split
    torch.manual_seed(0)
    x, y = torch.randn(8, *shape), torch.arange(8) % 4
    opt = OptimSpec(epochs=2, lr=0.01, optimizer=optimizer, weight_decay=0.05)
    report = check_turnover(model, x, y, seed=0, opt=opt)
    assert "net.fc.weight" in report.text and 0 < report.shared_fraction < 1


def _constant_data(value: int, channels: int, size: int = 12, n: int = 20):
    images = np.full((n, size, size, channels), value, dtype=np.uint8)
    images[:, 0, 0] = 255 - value  # two pixel values: the channel statistics are not degenerate
    return mz.prepare(images, np.arange(n) % 2, split=["train"] * (n - 4) + ["test"] * 4)


def test_preprocess_model_resizes_and_standardises_as_the_model_expects():
    data = _constant_data(128, 3)
    pre = model_preprocessing(f"timm:{ARCH}", (3, 12, 12), {})
    expected = timm.data.resolve_model_data_config(timm.create_model(ARCH))
    assert pre.size == tuple(expected["input_size"][1:]) == (160, 160)
    assert pre.mean == tuple(expected["mean"]) and pre.interpolation == "bilinear"
    x = to_tensors(data, "test", preprocess=pre).x  # test rows: row 0 differs only at (0, 0)
    assert x.shape == (4, 3, 160, 160) and x.dtype == torch.float32
    interior = x[:, :, 40:, 40:]  # far from the one odd pixel
    torch.testing.assert_close(interior, torch.full_like(interior, (128 / 255 - 0.5) / 0.5))
    # torchvision: its DEFAULT weights' transforms (224 pixels, ImageNet mean and std)
    tv = model_preprocessing("torchvision:resnet18", (1, 12, 12), {})
    assert tv.size == (224, 224) and tv.mean == (pytest.approx(np.mean([0.485, 0.456, 0.406])),)
    grey = to_tensors(_constant_data(51, 1), "test", preprocess=tv).x
    assert grey.shape == (4, 1, 224, 224)
    torch.testing.assert_close(
        grey[:, :, 60:, 60:], torch.full_like(grey[:, :, 60:, 60:], (0.2 - tv.mean[0]) / tv.std[0])
    )


def test_the_default_path_is_unchanged_bit_for_bit():
    data = _constant_data(128, 3)
    x = to_tensors(data, "train").x
    mean = np.asarray(data.attrs["channel_mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(data.attrs["channel_std"], dtype=np.float32)[:, None, None]
    images = data.sel(example=data["split"].values == "train")["image"].values
    assert torch.equal(
        x, torch.from_numpy((images.astype(np.float32) / np.float32(255) - mean) / std)
    )
    assert torch.equal(x, to_tensors(data, "train", preprocess=None).x)


def _factory_module(tmp_path, monkeypatch):
    (tmp_path / "pre_factories.py").write_text(
        textwrap.dedent("""
        from torch import nn

        def plain(num_classes, in_channels=3):
            return nn.Sequential(nn.Conv2d(in_channels, 8, 3), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_the_check_refuses_preprocess_model_without_a_config_naming_the_key(tmp_path, monkeypatch):
    _factory_module(tmp_path, monkeypatch)
    assert model_preprocessing("pre_factories:plain", (3, 8, 8), {}) is None
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, (24, 8, 8, 3)).astype(np.uint8),
             labels=np.arange(24) % 3)  # fmt: skip
    exp = {"dataset": "own", "seed": 0, "epochs": 1, "lr": 0.1, "batch_size": 8}
    cfg = {"datasets": {"own": {"source": "arrays", "path": str(tmp_path / "d.npz")}}}
    cfg["experiments"] = {"pre": exp | {"model": "pre_factories:plain", "preprocess": "model"}}
    errors = check_config(cfg)
    assert any(e.startswith("experiments.pre.preprocess: the pre_factories:plain model has no "
                            "preprocessing config") for e in errors), errors  # fmt: skip
    cfg["experiments"]["pre"]["model"] = f"timm:{ARCH}"  # timm's data config: accepted
    assert check_config(cfg) == []
    cfg["experiments"]["pre"] = exp | {"model": "mlp", "hidden": 8, "preprocess": "model"}
    assert any(e.startswith("experiments.pre.preprocess:") for e in check_config(cfg))
    with pytest.raises(ArgumentError, match="preprocess: the pre_factories:plain model has no"):
        mz.score("pre_factories:plain", rng.integers(0, 256, (24, 8, 8, 3)).astype(np.uint8),
                 np.arange(24) % 3, epochs=1, lr=0.1, batch_size=8, preprocess="model")  # fmt: skip


def test_the_params_record_preprocess_only_when_not_the_default():
    spec = ModelSpec.from_config(f"timm:{ARCH}", {})
    assert "preprocess" not in spec.params() and spec.options["preprocess"] == "dataset"
    assert ModelSpec.from_params(spec.params()) == spec
    model = ModelSpec.from_config(f"timm:{ARCH}", {"preprocess": "model"})
    assert model.params()["preprocess"] == "model"
    assert ModelSpec.from_params(model.params()) == model


def test_score_with_pretrained_weights_and_the_models_preprocessing(tmp_path):
    path = tmp_path / "donor.pth"
    torch.save(_donor(), path)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 8, 8, 3)).astype(np.uint8), np.arange(16) % 2
    split = ["train"] * 12 + ["test"] * 4
    data = mz.prepare(images, labels, split=split)
    out = mz.score(f"timm:{ARCH}", data=data, epochs=1, lr=0.01, batch_size=6,
                   weights=str(path), preprocess="model", device="cpu")  # fmt: skip
    assert out.sizes["example"] == 12 and np.isfinite(out["memorization"].values).all()
    assert "net.fc.weight" in out.attrs["turnover_check"]


@pytest.mark.skipif(not supports("bf16", "cpu"), reason="this CPU has no bf16 kernels")
def test_score_in_bf16_agrees_with_fp32():
    rng = np.random.default_rng(0)
    n, k = 240, 4
    labels = np.arange(n) % k
    centres = rng.normal(0, 1, (k, 1, 8, 8))
    images = centres[labels] + rng.normal(0, 0.8, (n, 1, 8, 8))
    images = ((images - images.min()) / np.ptp(images) * 255).astype(np.uint8)
    common = dict(epochs=6, lr=0.1, momentum=0.9, batch_size=32, corrupt=24, hidden=128,
                  seed=0, device="cpu")  # fmt: skip
    data = mz.prepare(images, labels)
    fp32 = mz.score("mlp", data=data, **common)
    bf16 = mz.score("mlp", data=data, precision="bf16", **common)
    a, b = fp32["memorization"].values, bf16["memorization"].values
    assert not np.array_equal(a, b)  # bf16 did run: other bits
    rho = spearmanr(a, b).statistic
    assert rho > 0.95, rho
    with pytest.raises(ArgumentError, match="precision"):
        mz.score("mlp", data=data, precision="fp64", **common)
    last = mz.score("mlp", data=data, channels_last=True, **(common | {"epochs": 1}))
    assert np.isfinite(last["memorization"].values).all()


def test_a_lazy_image_folder_is_decoded_at_the_models_size(tmp_path):
    from PIL import Image

    from memorization.data.prepare import prepare_dataset
    from memorization.data.sources import dataset_spec

    colours = {"a": (64, 128, 192), "b": (32, 96, 160)}  # one constant colour per class
    for split, n in (("train", 3), ("test", 2)):
        for name, colour in colours.items():
            folder = tmp_path / "imgs" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (10, 8), colour).save(folder / f"{i}.png")
    entry = {"source": "image_folder", "path": str(tmp_path / "imgs"), "size": None, "lazy": True}
    data = prepare_dataset(dataset_spec("f", {"f": entry})).load()
    pre = model_preprocessing(f"timm:{ARCH}", (3, 8, 10), {})
    split = to_tensors(data, "train", preprocess=pre)
    assert split.x.shape == (6, 3, 160, 160)
    rows = split.x[torch.arange(6)]
    pixels = torch.tensor([colours["ab"[int(y)]] for y in split.y], dtype=torch.float32)
    want = (pixels / 255 - 0.5) / 0.5
    torch.testing.assert_close(rows, want[:, :, None, None].expand_as(rows))
