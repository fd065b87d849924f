"""The training recipe (the experiment's and each plain study's) and the ground truth's options."""

from __future__ import annotations

from collections.abc import Mapping

from ...data.spec import DatasetInfo
from ...infra.options import resolve
from ...method.optim import OptimSpec, recipe_problems, turnover_clip_problems
from ..specs import EXPERIMENT_OPTIONS, STUDIES, study_optim


def _check_recipe(where: str, exp: Mapping, info: DatasetInfo) -> list[str]:
    """The optimizer's options against each other, for the experiment's training and each
    plain study's (its own epochs and milestones), and no clipping for turn-over."""
    values = resolve(EXPERIMENT_OPTIONS, exp)
    optim = OptimSpec.from_config(values)
    errors = [f"{where}.{key}: {msg}" for key, msg in recipe_problems(optim, set(exp))]
    errors += [f"{where}.{msg}" for msg in turnover_clip_problems(values)]
    reported = {key for key, _ in recipe_problems(optim, set(exp))}
    for study in STUDIES:
        own = study_optim(study, optim, values, info)
        for key, msg in recipe_problems(own, set(exp)):
            study_key = {"warmup_epochs": f"{study}_epochs", "milestones": f"{study}_milestones"}
            if key in reported or key not in study_key:
                continue
            errors.append(f"{where}.{study_key[key]}: the {study} training: {msg}")
    return errors


def _check_truth(where: str, truth, n_train: int) -> list[str]:
    if not isinstance(truth, Mapping):
        return []
    errors = []
    models, shards = truth.get("models", 200), truth.get("shards", 1)
    if shards > models:
        errors.append(f"{where}.truth.shards: {shards} shards for {models} models")
    if truth.get("design") == "pairs":
        if models % 4:
            errors.append(
                f"{where}.truth.models: the pairs design needs a multiple of 4 models "
                f"(whole complementary pairs in each half), got {models}"
            )
        if truth.get("fraction", 0.5) != 0.5:
            errors.append(
                f"{where}.truth.fraction: the pairs design trains every model on half of "
                f"the training set; leave fraction out (got {truth['fraction']})"
            )
        return errors
    fraction = truth.get("fraction", 0.7)
    if round(fraction * n_train) in (0, n_train):
        errors.append(
            f"{where}.truth.fraction: {fraction} of {n_train} examples leaves no "
            "example in or none out of a subset"
        )
    return errors
