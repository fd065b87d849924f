"""``preprocess: model`` in the workflow: every stage's tensors are made the way the
model reads them (one route, :func:`memorization.workflow.stages.common.split_tensors`),
and the cost estimates count the model's own input size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

import memorization as mz
from memorization.data.tensors import to_tensors
from memorization.method.models.spec import ModelSpec
from memorization.workflow.context import StageContext
from memorization.workflow.resources import model_cost, model_shape
from memorization.workflow.specs import Experiment
from memorization.workflow.stages.common import preprocessing, slice_model, split_tensors

timm = pytest.importorskip("timm")
ROOT = Path(__file__).resolve().parents[2]
ARCH = "timm:test_resnet"  # timm's own tiny ResNet (160-pixel inputs)


def _images(n: int = 16, size: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)
    split = np.array(["train"] * (n - 4) + ["test"] * 4)
    return images, np.arange(n) % 2, split


def test_split_tensors_follow_the_models_preprocess_option():
    data = mz.prepare(*_images()[:2], split=list(_images()[2]))
    own = ModelSpec.from_config(ARCH, {"preprocess": "model"})
    plain = ModelSpec.from_config(ARCH, {})
    assert preprocessing(plain, data) is None
    assert preprocessing(ModelSpec.from_config("mlp", {}), data) is None
    pre = preprocessing(own, data)
    assert pre.size == (160, 160) and len(pre.mean) == 3
    resized = split_tensors(data, "test", own)
    assert resized.x.shape == (4, 3, 160, 160)
    assert torch.equal(resized.x, to_tensors(data, "test", preprocess=pre).x)
    kept = split_tensors(data, "train", plain, labels=np.ones(12, dtype=np.int64))
    assert kept.x.shape == (12, 3, 8, 8) and torch.equal(kept.x, to_tensors(data, "train").x)
    assert kept.y.tolist() == [1] * 12


def test_a_stage_reads_its_data_with_its_slices_model():
    own = ModelSpec.from_config(ARCH, {"preprocess": "model"})
    for params in ({"model": own.params()}, {"scores": {"model": own.params()}, "top_k": 3}):
        found = slice_model(StageContext("influence", "out.nc", params))
        assert found == own and found.options["preprocess"] == "model"
    with pytest.raises(ValueError, match="the dataset stage's slice has no model"):
        slice_model(StageContext("dataset", "out.nc", {"dataset": {}}))


def _experiment(tmp_path, **extra) -> Experiment:
    images, labels, split = _images()
    np.savez(tmp_path / "d.npz", images=images, labels=labels, split=split)
    datasets = {"own": {"source": "arrays", "path": str(tmp_path / "d.npz")}}
    exp = {"dataset": "own", "model": ARCH, "seed": 0, "epochs": 1, "lr": 0.01, "batch_size": 6}
    return Experiment.from_config("pre", exp | extra, datasets=datasets)


def test_the_cost_estimates_count_the_models_input_size(tmp_path):
    plain, own = _experiment(tmp_path), _experiment(tmp_path, preprocess="model")
    assert model_shape(plain) == (3, 8, 8) and model_shape(own) == (3, 160, 160)
    # a convolutional network: its FLOPs grow with the pixels it reads
    ratio = model_cost(own).flops / model_cost(plain).flops
    assert ratio > 100, ratio


@pytest.mark.workflow
def test_the_scores_stage_trains_on_the_models_input_size(tmp_path):
    images, labels, split = _images()
    np.savez(tmp_path / "d.npz", images=images, labels=labels, split=split)
    exp = {"dataset": "own", "model": ARCH, "preprocess": "model", "seed": 0, "epochs": 1,
           "lr": 0.01, "batch_size": 6, "corrupt": 0}  # fmt: skip
    cfg = {"device": "cpu", "threads": 1, "experiments": {"pre": exp},
           "datasets": {"own": {"source": "arrays", "path": str(tmp_path / "d.npz")}}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "results/pre/scores.nc",
           "--configfile", str(tmp_path / "config.yaml"), "--cores", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-5000:]
    (data_path,) = (tmp_path / "results").rglob("own*.nc")
    with xr.open_dataset(data_path, engine="netcdf4") as ds:
        data = ds.load()
    with xr.open_dataset(tmp_path / "results/pre/scores.nc", engine="netcdf4") as ds:
        staged = ds["memorization"].values
    common = dict(data=data, epochs=1, lr=0.01, batch_size=6, seed=0, device="cpu")
    own = mz.score(ARCH, preprocess="model", **common)["memorization"].values
    plain = mz.score(ARCH, **common)["memorization"].values
    np.testing.assert_allclose(staged, own, rtol=1e-5, atol=1e-6)
    assert not np.allclose(staged, plain, rtol=1e-3, atol=1e-4)  # not the data's own size
