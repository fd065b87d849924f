"""The hooks path's layer kinds: found through one registry, an unknown kind refused."""

from __future__ import annotations

import pytest
from torch import nn

from memorization.studies.per_example.layers import LAYER_KINDS, layer_kind, make_layer
from memorization.studies.per_example.layers.conv2d import Conv2dLayer
from memorization.studies.per_example.layers.linear import LinearLayer
from memorization.studies.per_example.modules import HOOK_LAYERS, hooks_unsupported_reason


class WideLinear(nn.Linear):
    """A subclass is its base class's kind."""


def test_each_kind_has_its_own_layer():
    assert isinstance(make_layer("fc", nn.Linear(3, 2)), LinearLayer)
    assert isinstance(make_layer("fc", WideLinear(3, 2)), LinearLayer)
    assert isinstance(make_layer("conv", nn.Conv2d(1, 2, 3)), Conv2dLayer)


def test_an_unknown_kind_is_refused_by_name_not_treated_as_a_convolution():
    assert layer_kind(nn.Embedding(5, 3)) is None
    with pytest.raises(ValueError, match=r"'emb' \(Embedding\).*nn.Linear, nn.Conv2d"):
        make_layer("emb", nn.Embedding(5, 3))


def test_the_model_check_follows_the_registry():
    assert HOOK_LAYERS == tuple(LAYER_KINDS)
    reason = hooks_unsupported_reason(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)))
    assert "'1' (LayerNorm)" in reason and "nn.Linear and nn.Conv2d" in reason
    assert hooks_unsupported_reason(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())) is None
