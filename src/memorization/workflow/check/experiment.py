"""What the schema cannot say about one experiment: its names, then each part's check."""

from __future__ import annotations

from collections.abc import Mapping

from ...data.sources.builtin import DATASETS
from ...infra.options import resolve
from ...method.models import MODELS
from ...method.models.spec import is_external
from ..figures import figure_needs
from ..specs import EXPERIMENT_OPTIONS
from ..stages import estimates
from .datasets import _check_sizes
from .model import _check_model, _check_model_keys
from .recipe import _check_fp16, _check_recipe
from .schema_errors import _suggest

#: names of the results folder's own subfolders and files: not experiment names
RESERVED = ("data", "logs", "benchmarks", "claims", "validation", "figures")


def _check_experiment(name: str, exp: Mapping, config: Mapping, infos) -> list[str]:
    """What the schema cannot say about one experiment (assumes it passed the schema)."""
    where = f"experiments.{name}"
    errors = _check_names(where, exp, config)
    if errors:
        return errors
    errors += _check_model_keys(where, exp)
    errors += _check_subsets_from(where, exp)
    errors += _check_fp16(where, exp, _figures_reading(config, name, "gradstats"))
    info = infos.get(exp["dataset"])
    if info is None:
        return errors
    errors += _check_sizes(where, exp, info)
    errors += _check_recipe(where, exp, info)
    if not errors:
        errors += _check_model(where, exp, info)
    return errors


def _figures_reading(config: Mapping, name: str, artifact: str) -> list[str]:
    """The figures of ``config`` that read experiment ``name``'s ``artifact``."""
    found = figure_needs(config.get("figures"))
    return list(
        dict.fromkeys(fig for fig, _, _, exp, art in found if (exp, art) == (name, artifact))
    )


def _check_names(where: str, exp: Mapping, config: Mapping) -> list[str]:
    dataset, model = exp["dataset"], exp["model"]
    known = sorted(DATASETS) + sorted(config.get("datasets") or {})
    errors = []
    name = where.split(".", 1)[1]
    if name in RESERVED:
        errors.append(
            f"{where}: {name!r} is the name of a folder of the results "
            f"({', '.join(RESERVED)}); give the experiment another name"
        )
    if dataset not in known:
        errors.append(
            f"{where}.dataset: {dataset!r} is neither a built-in dataset nor one defined under "
            f"datasets:{_suggest(dataset, known)} (known: {', '.join(known)})"
        )
    if not is_external(model) and model not in MODELS:
        errors.append(
            f"{where}.model: {model!r} is not a built-in model ({', '.join(MODELS)}); other "
            f"models are named torchvision:NAME, timm:NAME or package.module:function"
            f"{_suggest(model, MODELS)}"
        )
    return errors


def _check_subsets_from(where: str, exp: Mapping) -> list[str]:
    """subsets_from names a variable a stage of this experiment puts in estimates.nc."""
    name = exp.get("subsets_from")
    if name is None:
        return []
    oob = any(str(key).startswith("oob_") for key in exp)
    gradients = bool(resolve(EXPERIMENT_OPTIONS, exp)["peer_gradients"])
    known = estimates.estimate_names(oob, gradients)
    if name in known:
        return []
    if name in estimates.estimate_names(oob):  # a peer of the gradient records
        return [
            f"{where}.subsets_from: {name!r} needs the per-example gradient records, which "
            f"peer_gradients: false skips; set peer_gradients: true (or leave it out) or "
            f"draw the subsets from another estimate: {', '.join(known)}"
        ]
    hint = (
        " (the out-of-bag estimates need an oob_* key, e.g. oob_networks)"
        if name in estimates.OOB_NAMES
        else _suggest(name, known)
    )
    return [
        f"{where}.subsets_from: {name!r} is not an estimate of this experiment{hint}; "
        f"known: {', '.join(known)}"
    ]
