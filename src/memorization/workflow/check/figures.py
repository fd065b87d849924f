"""Each figure names experiments that define what it draws."""

from __future__ import annotations

from collections.abc import Mapping

from ...trust.metrics import GOAL_RUNS
from ..figures import figure_needs
from ..registry import STAGES
from .schema_errors import _suggest


def _check_figures(config: Mapping, experiments: Mapping, bad: set[tuple]) -> list[str]:
    errors = []
    for fig_name, options, option, exp_name, artifact in figure_needs(config.get("figures")):
        if ("figures", fig_name) not in bad:  # else the schema has said what is wrong
            errors += _check_figure_need(fig_name, options, option, exp_name, artifact, experiments)
    return errors


def _check_figure_need(fig_name, options, option, exp_name, artifact, experiments) -> list[str]:
    where = f"figures.{fig_name}.{option}"
    if exp_name not in experiments:
        return [
            f"{where}: experiment {exp_name!r} is not defined under experiments"
            f"{_suggest(exp_name, experiments)} (defined: {sorted(experiments)})"
        ]
    exp = experiments[exp_name]
    if not isinstance(exp, Mapping):
        return []
    errors = [
        f"{where}: experiment {exp_name!r} has no {key}, which {fig_name} needs for its {artifact}"
        for key in STAGES[artifact].needs
        if exp.get(key) is None
    ]
    if fig_name == "validation" and artifact == "scores" and option == "clean":
        errors += _check_validation_replicates(options, exp_name, exp)
    if artifact == "gradstats" and exp.get("cosine_pairs", "probe") == "probe":
        if exp.get("probe_size") is None:
            errors.append(
                f"{where}: experiment {exp_name!r} has no probe_size, which {fig_name} needs for "
                "its probe cosine similarity (or set cosine_pairs: batch)"
            )
    return errors


def _check_validation_replicates(options, exp_name, exp) -> list[str]:
    """The first clean experiment of the validation figure must hold every R of
    ``replicates``; the others (more architectures) those up to the goal's cost."""
    asked = list(options.get("replicates") or [1])
    clean = options.get("clean")
    first = clean if isinstance(clean, str) else (list(clean or []) or [None])[0]
    if exp_name == first:
        wanted, why = max(asked), ""
    else:
        wanted = max([r for r in asked if r <= GOAL_RUNS] or [min(asked)])
        why = f" (every clean experiment after the first needs the R <= {GOAL_RUNS} of the goal)"
    held = exp.get("replicates", 1)
    if wanted > held:
        return [
            f"figures.validation.replicates: {wanted} replicates asked for, but experiment "
            f"{exp_name!r} has replicates: {held}{why}"
        ]
    return []
