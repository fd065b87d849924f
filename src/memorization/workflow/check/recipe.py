"""The training recipe (the experiment's and each plain study's) and the ground truth's options."""

from __future__ import annotations

from collections.abc import Mapping

from ...data.spec import DatasetInfo
from ...infra.options import resolve
from ...method.optim import OptimSpec, recipe_problems, turnover_clip_problems
from ..specs import EXPERIMENT_OPTIONS, STUDIES, TRUTH_OPTIONS, study_optim


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


def _check_fp16(where: str, exp: Mapping, gradstats_figures: list[str]) -> list[str]:
    """``precision: fp16`` where the experiment asks for a training that cannot scale its
    loss: the vectorised ensembles of the ground truth (a ``truth`` section) and of the
    out-of-bag estimates (an ``oob_*`` key), and the gradient statistics' own training step
    when a figure reads them (``gradstats_figures``). The turn-over scores and the other
    plain studies train in fp16 with a loss scaler; a gradient statistics job asked for by
    name, outside any figure, refuses fp16 when it starts."""
    if exp.get("precision") != "fp16":
        return []
    targets = []
    if exp.get("truth") is not None:
        targets.append("the ground truth's vectorised ensembles (truth)")
    oob = sorted(str(key) for key in exp if str(key).startswith("oob_"))
    if oob:
        targets.append(f"the out-of-bag estimates' vectorised ensembles ({', '.join(oob)})")
    if gradstats_figures:
        drawn = ", ".join(f"figures.{f}" for f in gradstats_figures)
        targets.append(f"the gradient statistics' training ({drawn} draws them)")
    if not targets:
        return []
    removable = ["truth"] if exp.get("truth") is not None else []
    removable += oob + [f"figures.{f}" for f in gradstats_figures]
    return [
        f"{where}.precision: fp16 needs loss scaling, which {_and(targets)} do not "
        "do, so their jobs cannot run in fp16 (the turn-over scores and the other studies "
        f"can); use bf16 or fp32 for this experiment, or remove {', '.join(removable)}"
    ]


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _check_truth(where: str, truth, n_train: int) -> list[str]:
    if not isinstance(truth, Mapping):
        return []
    errors = []
    values = resolve(TRUTH_OPTIONS, truth)
    models, shards = values["models"], values["shards"]
    if shards > models:
        errors.append(f"{where}.truth.shards: {shards} shards for {models} models")
    if truth.get("design") == "pairs":
        if models % 4:
            errors.append(
                f"{where}.truth.models: the pairs design needs a multiple of 4 models "
                f"(whole complementary pairs in each half), got {models}"
            )
        if "fraction" in truth and truth["fraction"] != 0.5:  # pairs: half of the set
            errors.append(
                f"{where}.truth.fraction: the pairs design trains every model on half of "
                f"the training set; leave fraction out (got {truth['fraction']})"
            )
        return errors
    fraction = values["fraction"]
    if round(fraction * n_train) in (0, n_train):
        errors.append(
            f"{where}.truth.fraction: {fraction} of {n_train} examples leaves no "
            "example in or none out of a subset"
        )
    return errors
