"""The models' options live apart from the models (``method/models/options.py``, no torch):
each model's module hands on the same table, and what a model reads of them agrees."""

from __future__ import annotations

import subprocess
import sys

import pytest

from memorization.method.models import MODELS, cct, external, mlp, model_options, options, vgg


def test_each_model_module_hands_on_its_table_from_the_options_module():
    assert mlp.OPTIONS is options.MLP_OPTIONS
    assert vgg.OPTIONS is options.VGG_OPTIONS
    assert cct.OPTIONS is options.CCT_OPTIONS
    assert external.OPTIONS is options.EXTERNAL_OPTIONS
    assert external.UNRECORDED_DEFAULTS == {"preprocess": "dataset"}


def test_the_registry_names_each_class_and_its_options():
    assert MODELS["mlp"].cls is mlp.MLP
    assert MODELS["vgg11"].cls is vgg.VGG11
    assert MODELS["cct"].cls is cct.CCT
    assert {n: m.options for n, m in MODELS.items()} == {
        "mlp": options.MLP_OPTIONS,
        "vgg11": options.VGG_OPTIONS,
        "cct": options.CCT_OPTIONS,
    }


def test_the_declared_choices_are_those_the_models_accept():
    assert sorted(options.CCT_ACTIVATIONS) == sorted(cct._ACTIVATIONS)
    assert options.CCT_OPTIONS["activation"].schema["enum"] == sorted(cct._ACTIVATIONS)
    assert options.VGG_OPTIONS["mask_at"].schema["enum"] == list(vgg.MASK_AT)
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        model_options("resnet")


def test_the_options_and_the_registry_import_no_torch():
    code = (
        "import sys\n"
        "from memorization.method.models import MODELS, options\n"
        "from memorization.method.models.spec import ModelSpec\n"
        "spec = ModelSpec.from_config('mlp', {'hidden': 8})\n"
        "print(spec.params(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False"
    assert "'hidden': 8" in out.stdout
