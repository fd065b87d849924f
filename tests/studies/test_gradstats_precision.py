"""The gradient statistics record the arithmetic they were computed in: under bf16 the exact
hooks method stays fp32, the per-example method follows the training; fp16 is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.studies.gradient_statistics import gradient_statistics

MLP = ModelSpec("mlp", {"hidden": 8}, 3)


def _data() -> tuple[TensorSplit, dict]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 1, 4, 4, generator=g), torch.arange(60) % 3
    train = TensorSplit(x, y, np.arange(60))
    return train, {"easy": np.arange(60) < 30, "difficult": np.arange(60) >= 30}


def _run(precision: str, method: str):
    train, subsets = _data()
    opt = OptimSpec(epochs=1, lr=0.05, batch_size=20, precision=precision)
    return gradient_statistics(MLP, train, opt, 0, subsets, 5, method=method, progress=False)


@pytest.mark.parametrize(
    ("precision", "method", "recorded"),
    [
        ("fp32", "auto", ("hooks", "fp32")),
        ("bf16", "auto", ("hooks", "fp32")),  # the exact hooks read one dtype: fp32
        ("bf16", "func", ("func", "bf16")),  # per-example gradients in the training's
    ],
)
def test_the_artifact_records_the_statistics_precision(precision, method, recorded):
    ds = _run(precision, method)
    assert (ds.attrs["statistics_method"], ds.attrs["statistics_precision"]) == recorded
    assert np.isfinite(ds["contribution"].values).all()


def test_bf16_hooks_statistics_are_those_of_fp32():
    bf16, fp32 = _run("bf16", "auto"), _run("fp32", "auto")
    assert bf16["contribution"].equals(fp32["contribution"])


def test_fp16_is_refused_before_training():
    with pytest.raises(ValueError, match="precision: fp16 needs loss scaling.*use bf16 or fp32"):
        _run("fp16", "auto")
