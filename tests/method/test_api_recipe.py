"""score() takes every key of the training recipe by keyword, by one route (the optimizer's
declared options), and refuses what turn-over cannot train before reading any data."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import memorization as mz
from memorization import api
from memorization.api import ArgumentError
from memorization.method.optim import OPTIONS, OptimSpec

#: a value other than the default for every recipe key score() takes as a keyword
NOT_DEFAULT = {
    "momentum": 0.9,
    "milestones": [2],
    "gamma": 0.5,
    "weight_decay": 0.01,
    "optimizer": "adamw",
    "betas": [0.8, 0.9],
    "eps": 1e-6,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "clip_norm": 2.0,
    "clip_value": 0.5,
    "precision": "bf16",
    "channels_last": True,
    "augment": "flip",
}


def _xy():
    g = torch.Generator().manual_seed(0)
    return torch.randn(60, 6, 6, generator=g).numpy(), (torch.arange(60) % 3).numpy()


def test_every_recipe_option_reaches_the_optimizer_spec():
    # a new option of the optimizer fails here until it has a value above
    assert set(NOT_DEFAULT) == set(OPTIONS) - {"epochs", "lr", "batch_size"}
    for key, value in NOT_DEFAULT.items():
        optim, model_options = api._split_recipe(3, 0.1, 16, {key: value, "hidden": 8})
        assert model_options == {"hidden": 8}
        got = getattr(OptimSpec.from_config(optim), key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    optim, _ = api._split_recipe(3, 0.1, 16, {})
    assert OptimSpec.from_config(optim) == OptimSpec(epochs=3, lr=0.1, batch_size=16)


def test_clip_value_trains_and_clip_norm_is_refused_before_the_data():
    x, y = _xy()
    common = dict(epochs=1, lr=0.05, batch_size=20, hidden=16, device="cpu", seed=0)
    scores = mz.score("mlp", x, y, **common, clip_value=1e-3)
    # the check before training proved the clipped update, and the bound did bind
    found = re.search(
        r"clipped element-wise to \[-0.001, 0.001\]: ([\d,]+) entries clamped",
        scores.attrs["turnover_check"],
    )
    assert found and int(found.group(1).replace(",", "")) > 0, scores.attrs["turnover_check"]
    assert np.isfinite(scores["memorization"].values).all()
    # no data at all: refused from the arguments alone
    with pytest.raises(ArgumentError, match="clip_norm: clipping by the global norm"):
        mz.score("mlp", None, None, **common, clip_norm=1.0)


def test_a_misspelled_recipe_key_gets_the_recipe_keys_did_you_mean():
    x, y = _xy()
    with pytest.raises(
        ArgumentError, match="warmup_epoch: unknown key \\(did you mean 'warmup_epochs'\\?\\)"
    ):
        mz.score("mlp", x, y, epochs=2, lr=0.1, hidden=8, warmup_epoch=1)
    with pytest.raises(ArgumentError, match="precison: .*did you mean 'precision'"):
        mz.score(torch.nn.Linear(36, 3), x, y, epochs=2, lr=0.1, precison="bf16")
