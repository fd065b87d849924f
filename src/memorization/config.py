"""Config semantics the JSON schema cannot express, checked before any job runs.

``check_config`` returns every problem at once, each naming the offending key
(``experiments.<name>.<key>`` or ``figures.<fig>.<key>``); ``validate_config``
raises :class:`ConfigError` with all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from .data import DATASETS
from .models import MODELS

__all__ = [
    "ConfigError",
    "FIGURE_NEEDS",
    "check_config",
    "coerce_overrides",
    "experiment_names",
    "figure_experiments",
    "validate_config",
]

DEVICES = ("auto", "cpu", "cuda")
POSITIVE = ("lr", "epochs", "batch_size")

#: figure -> what it needs of each experiment it draws: "scores" (always), "subsets"
#: (subset_size), "gradstats" (probe_size), "sweep" (corruption_levels)
FIGURE_NEEDS: dict[str, tuple[str, ...]] = {
    "fig2": ("scores",),
    "fig3": ("scores", "subsets"),
    "fig4": ("scores", "subsets", "gradstats"),
    "fig5": ("scores", "subsets"),
    "fig6": ("scores", "subsets"),
    "fig7": ("scores",),
    "fig8": ("scores",),
    "fig9": ("scores",),
    "fig10": ("sweep",),
}
_STAGE_KEY = {"subsets": "subset_size", "gradstats": "probe_size", "sweep": "corruption_levels"}


class ConfigError(ValueError):
    """The workflow config is inconsistent; the message names every offending key."""


def coerce_overrides(value):
    """Turn the strings ``snakemake --config`` leaves in nested values into numbers/lists.

    ``--config 'experiments={mnist_mlp: {epochs: 5}}'`` arrives as the string
    ``'5'``; a string that YAML reads as a number, boolean or list becomes one.
    Mappings are updated in place and returned.
    """
    import yaml

    if isinstance(value, dict):
        for key in list(value):
            value[key] = coerce_overrides(value[key])
        return value
    if isinstance(value, list):
        return [coerce_overrides(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, (int, float, bool, list)) or parsed is None and value == "null":
            return parsed
    return value


def experiment_names(config: Mapping) -> list[str]:
    return list((config.get("experiments") or {}).keys())


def figure_experiments(fig_cfg: Mapping) -> list[str]:
    """Experiment names a figure's config refers to (keys ``experiment``, ``experiments``,
    ``clean``, ``corrupted`` and ``panels``), in order."""
    names: list[str] = []
    for key in ("experiment", "clean", "corrupted"):
        if isinstance(fig_cfg.get(key), str):
            names.append(fig_cfg[key])
    for key in ("experiments", "panels"):
        value = fig_cfg.get(key) or []
        if isinstance(value, str):
            value = [value]
        names.extend(v for v in value if isinstance(v, str))
    return names


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_experiment(name: str, exp: Mapping) -> list[str]:
    errors = []
    where = f"experiments.{name}"
    if not isinstance(exp, Mapping):
        return [f"{where}: expected a mapping of settings, got {exp!r}"]
    dataset = exp.get("dataset")
    if dataset not in DATASETS:
        errors.append(f"{where}.dataset: unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
    if exp.get("model") not in MODELS:
        errors.append(f"{where}.model: unknown model {exp.get('model')!r}; known: {sorted(MODELS)}")
    for key in POSITIVE:
        value = exp.get(key)
        if not _is_number(value) or value <= 0:
            errors.append(f"{where}.{key}: must be a positive number, got {value!r}")
    for key in ("epochs", "batch_size", "seed", "corrupt"):
        value = exp.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
            errors.append(f"{where}.{key}: must be an integer, got {value!r}")
    n_train = DATASETS[dataset].n_train if dataset in DATASETS else None
    corrupt = exp.get("corrupt", 0)
    if isinstance(corrupt, int) and n_train is not None:
        if corrupt < 0:
            errors.append(f"{where}.corrupt: must not be negative, got {corrupt}")
        elif corrupt > n_train:
            errors.append(
                f"{where}.corrupt: {corrupt} exceeds the {n_train} training examples of {dataset}"
            )
    size = exp.get("subset_size")
    if size is not None and n_train is not None:
        if not isinstance(size, int) or size < 1:
            errors.append(f"{where}.subset_size: must be a positive integer, got {size!r}")
        elif size > n_train // 2:
            errors.append(
                f"{where}.subset_size: {size} is more than half of the {n_train} training "
                f"examples of {dataset} (at most {n_train // 2}), so the easy and difficult "
                "subsets would overlap"
            )
    test_size = exp.get("test_subset_size")
    if test_size is not None and dataset in DATASETS:
        n_test = DATASETS[dataset].n_test
        if not isinstance(test_size, int) or test_size < 1:
            errors.append(
                f"{where}.test_subset_size: must be a positive integer, got {test_size!r}"
            )
        elif test_size > n_test // 2:
            errors.append(
                f"{where}.test_subset_size: {test_size} is more than half of the {n_test} test "
                f"examples of {dataset} (at most {n_test // 2})"
            )
    probe = exp.get("probe_size")
    if probe is not None:
        if not isinstance(probe, int) or probe < 2:
            errors.append(f"{where}.probe_size: must be an integer of at least 2, got {probe!r}")
        elif isinstance(size, int) and probe > size:
            errors.append(
                f"{where}.probe_size: {probe} is larger than the subsets "
                f"(subset_size {size}) it samples from"
            )
        elif size is None:
            errors.append(f"{where}.probe_size: needs subset_size to be set")
    levels = exp.get("corruption_levels")
    if levels is not None:
        if not isinstance(levels, list) or not levels:
            errors.append(f"{where}.corruption_levels: must be a non-empty list, got {levels!r}")
        else:
            for level in levels:
                if not isinstance(level, int) or level < 0:
                    errors.append(
                        f"{where}.corruption_levels: {level!r} is not a non-negative integer"
                    )
                elif n_train is not None and level > n_train:
                    errors.append(
                        f"{where}.corruption_levels: {level} exceeds the {n_train} "
                        f"training examples of {dataset}"
                    )
            if len(set(map(str, levels))) != len(levels):
                errors.append(f"{where}.corruption_levels: levels must be distinct")
    if dataset in DATASETS and exp.get("model") in MODELS:
        errors.extend(_check_model_options(where, exp, DATASETS[dataset]))
    milestones = exp.get("milestones") or []
    if any(not isinstance(m, int) or m < 1 for m in milestones) or list(milestones) != sorted(
        milestones
    ):
        errors.append(f"{where}.milestones: must be increasing positive epochs, got {milestones!r}")
    return errors


def _check_model_options(where: str, exp: Mapping, info) -> list[str]:
    """Build the model on the meta device (no memory, no compute) to vet its options."""
    import torch

    from .models import MODEL_OPTIONS, build_model

    options = {k: exp[k] for k in MODEL_OPTIONS[exp["model"]] if k in exp}
    try:
        with torch.device("meta"):
            build_model(exp["model"], info.shape, len(info.classes), **options)
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        keys = ", ".join(sorted(options)) or "defaults"
        return [f"{where}: the {exp['model']} options ({keys}) are invalid: {err}"]
    return []


def check_config(config: Mapping) -> list[str]:
    """Every semantic problem of a workflow config, as messages naming the key."""
    errors: list[str] = []
    device = config.get("device", "auto")
    if device not in DEVICES:
        errors.append(f"device: must be one of {list(DEVICES)}, got {device!r}")
    experiments = config.get("experiments") or {}
    if not experiments:
        errors.append("experiments: at least one experiment is needed")
    for name, exp in experiments.items():
        errors.extend(_check_experiment(str(name), exp))
    for fig, fig_cfg in (config.get("figures") or {}).items():
        if fig not in FIGURE_NEEDS:
            errors.append(f"figures.{fig}: unknown figure; known: {sorted(FIGURE_NEEDS)}")
            continue
        if not isinstance(fig_cfg, Mapping):
            errors.append(f"figures.{fig}: expected a mapping, got {fig_cfg!r}")
            continue
        names = figure_experiments(fig_cfg)
        if not names:
            errors.append(f"figures.{fig}: names no experiment")
        for exp_name in names:
            if exp_name not in experiments:
                errors.append(
                    f"figures.{fig}: experiment {exp_name!r} is not defined under experiments "
                    f"(defined: {sorted(experiments)})"
                )
                continue
            exp = experiments[exp_name]
            for need in FIGURE_NEEDS[fig]:
                key = _STAGE_KEY.get(need)
                if key and isinstance(exp, Mapping) and exp.get(key) is None:
                    errors.append(
                        f"figures.{fig}: experiment {exp_name!r} has no {key}, which {fig} "
                        f"needs for its {need} stage"
                    )
    return errors


def validate_config(config: Mapping) -> None:
    errors = check_config(config)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
