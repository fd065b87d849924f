"""Each experiment's model: its options, built on the meta device, its masks, a dry run."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...data.spec import DatasetInfo
from ...method.dry_run import dry_run
from ...method.models import MODELS, external
from ...method.models.spec import ModelSpec, is_external, model_option_table
from ...method.precision import has_convolutions
from ...method.turnover.collisions import UNITS_OPTIONS, mask_collisions


def _check_model_keys(where: str, exp: Mapping) -> list[str]:
    model = exp["model"]
    own = set(model_option_table(model))
    errors = []
    tables = {n: e.options for n, e in MODELS.items()} | {"external models": external.OPTIONS}
    for other, options in tables.items():
        for key in sorted(set(options) - own):
            if key in exp:
                errors.append(
                    f"{where}.{key}: is an option of {other}, not of {model} "
                    f"(options of {model}: {', '.join(sorted(own))})"
                )
    return list(dict.fromkeys(errors))


def _check_model(where: str, exp: Mapping, info: DatasetInfo) -> list[str]:
    """Build the model on the meta device (no memory, no compute) to vet its options,
    check that its turn-over masks can be distinct for every example, and try a model
    of your own on two examples (its output's shape, the zero-gradient proof: dry_run)."""
    spec = ModelSpec.from_config(exp["model"], exp).with_classes(len(info.classes))
    shape, refused = _model_shape(where, exp, info, spec)
    if refused:
        return refused
    try:
        with torch.device("meta"):
            model = spec.build(shape)
    except Exception as err:  # noqa: BLE001 - a factory of the user's may raise anything
        keys = ", ".join(sorted(k for k in spec.options if k in exp)) or "defaults"
        what = "" if isinstance(err, _EXPECTED_BUILD_ERRORS) else f"{type(err).__name__}: "
        return [
            f"{where}: the {exp['model']} model with these options ({keys}) cannot be built: "
            f"{what}{err}"
        ]
    layout = _check_layout(where, exp, model)
    n = max(info.n_train, info.n_test)
    problems = mask_collisions(model, n, int(exp["seed"]), info)
    if not problems:
        size = sum(p.numel() for p in model.parameters() if p.requires_grad)
        tried = dry_run(spec, shape, size, int(exp["seed"]))
        return layout + [f"{where}: the {exp['model']} model: {msg}" for msg in tried]
    keys = [k for k in UNITS_OPTIONS.get(_family(exp["model"]), ()) if k in spec.options]
    given = [k for k in keys if k in exp] or keys
    return layout + [
        f"{where}.{'/'.join(given)}: {msg}" if given else f"{where}: {msg}" for msg in problems
    ]


def _model_shape(where: str, exp: Mapping, info: DatasetInfo, spec: ModelSpec):
    """(the shape the model reads, problems): the data's, or with ``preprocess: model`` the
    model's own input size, refused for a model without a preprocessing config."""
    if spec.options.get("preprocess", "dataset") != "model":
        return tuple(info.shape), []
    try:
        pre = external.model_preprocessing(spec.name, info.shape, spec.options)
    except Exception as err:  # noqa: BLE001 - a factory of the user's may raise anything
        return None, [f"{where}.preprocess: the {spec.name} model's preprocessing: {err}"]
    if pre is None:
        return None, [
            f"{where}.preprocess: the {spec.name} model has no preprocessing config (no "
            "timm data config, no torchvision weights' transforms); use preprocess: dataset"
        ]
    return (int(info.shape[0]), *pre.size), []


def _check_layout(where: str, exp: Mapping, model) -> list[str]:
    """``channels_last`` is a layout of convolutions: refused on a model without any."""
    if not exp.get("channels_last") or has_convolutions(model):
        return []
    return [
        f"{where}.channels_last: the {exp['model']} model has no convolutions, so the "
        "channels-last layout changes nothing; remove the key"
    ]


#: errors whose message says it all (others are named by their type)
_EXPECTED_BUILD_ERRORS = (ValueError, TypeError, AssertionError, RuntimeError, ImportError)


def _family(model: str) -> str:
    return "external" if is_external(model) else model
