"""The workflow config: strict validation before any job runs, then typed objects.

:func:`validate_config` checks a config against the JSON schema
(``config/schema/config.schema.yaml``, with each figure's options from its module)
and against what the schema cannot express (sizes against the dataset, turn-over
mask uniqueness for the model's layer sizes, figures naming experiments, the device
where jobs run locally). It lists *every* problem at once, each with its key path,
and suggests the key meant when one is misspelled. :func:`coerce_config` first turns
the strings YAML 1.1 and ``--config`` leave behind (``1e-3``, nested ``--config``
numbers) into numbers. :class:`WorkflowConfig` is the parsed result the rules use.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from .data import DATASETS
from .experiment import Experiment
from .models import MODEL_OPTIONS, MODELS

__all__ = [
    "ConfigError",
    "WorkflowConfig",
    "check_config",
    "coerce_config",
    "coerce_overrides",
    "schema",
    "validate_config",
]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema" / "config.schema.yaml"

#: what each artifact a figure reads needs an experiment to define
ARTIFACT_NEEDS: dict[str, tuple[str, ...]] = {
    "subsets": ("subset_size",),
    "dynamics": ("subset_size",),
    "crosstrain": ("subset_size",),
    "gradstats": ("subset_size",),
    "sweep": ("corruption_levels",),
    "truth": ("truth",),
}

#: a mask collision among n examples is checked exactly when the birthday bound
#: n² / (2 · distinct masks) exceeds this (else it is negligible and not computed)
COLLISION_CHECK_ABOVE = 1e-9

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class ConfigError(ValueError):
    """The workflow config is invalid; the message names every offending key."""


# --- coercion ---------------------------------------------------------------------------


def coerce_overrides(value):
    """Turn strings that are numbers, booleans, lists or null into them, in place.

    ``--config 'experiments={mnist_mlp: {epochs: 5}}'`` leaves ``'5'`` and PyYAML (YAML
    1.1) reads ``1e-3`` as a string; both become numbers. A float with an integral
    value stays a float here (``epochs: 1e3`` is then refused as not an integer,
    naming the key, rather than silently truncated).
    """
    if isinstance(value, dict):
        for key in list(value):
            value[key] = coerce_overrides(value[key])
        return value
    if isinstance(value, list):
        return [coerce_overrides(v) for v in value]
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            number = float(text)
            return int(text) if re.fullmatch(r"[+-]?\d+", text) else number
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, (int, float, bool, list)) or (parsed is None and text == "null"):
            return coerce_overrides(parsed)
    return value


coerce_config = coerce_overrides


# --- schema -------------------------------------------------------------------------------


@cache
def _file_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def schema() -> dict:
    """The full schema: the file's, with each figure's options under ``figures``."""
    import copy

    from .figures import FIGURES

    full = copy.deepcopy(_file_schema())
    full["properties"]["figures"] = {
        "type": "object",
        "properties": {name: fig.schema() for name, fig in FIGURES.items()},
        "additionalProperties": False,
    }
    return full


def _path(parts) -> str:
    return ".".join(str(p) for p in parts)


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _schema_errors(config: Mapping) -> list[str]:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    errors = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        where = _path(err.absolute_path) or "<top level>"
        if err.validator == "additionalProperties":
            allowed = err.schema.get("properties", {})
            extra = sorted(set(err.instance) - set(allowed))
            for key in extra:
                prefix = f"{where}." if err.absolute_path else ""
                hint = _suggest(key, allowed) or f"; known here: {', '.join(sorted(allowed))}"
                errors.append(f"{prefix}{key}: unknown key{hint}")
        elif err.validator == "required":
            errors.append(f"{where}: {err.message}")
        elif err.validator == "type" and isinstance(err.instance, str):
            errors.append(
                f"{where}: {err.instance!r} is a string, expected {err.validator_value} "
                "(quote nothing; write numbers as 0.001 or 1e-3)"
            )
        elif err.validator == "enum":
            errors.append(
                f"{where}: {err.instance!r} is not one of {err.validator_value}"
                + _suggest(err.instance, err.validator_value)
            )
        else:
            errors.append(f"{where}: {err.message}")
    return errors


# --- semantic checks ------------------------------------------------------------------------


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_experiment(name: str, exp: Mapping) -> list[str]:
    """What the schema cannot say about one experiment (assumes it passed the schema)."""
    errors = []
    where = f"experiments.{name}"
    dataset, model = exp.get("dataset"), exp.get("model")
    if model in MODEL_OPTIONS:
        own = set(MODEL_OPTIONS[model])
        for other, options in MODEL_OPTIONS.items():
            for key in sorted(set(options) - own):
                if key in exp:
                    errors.append(
                        f"{where}.{key}: is an option of model {other}, not of {model} "
                        f"(options of {model}: {', '.join(sorted(own))})"
                    )
    info = DATASETS.get(dataset)
    if info is None:
        return errors
    n_train, n_test = info.n_train, info.n_test
    corrupt = exp.get("corrupt", 0)
    if _int(corrupt) and corrupt > n_train:
        errors.append(
            f"{where}.corrupt: {corrupt} exceeds the {n_train} training examples of {dataset}"
        )
    size = exp.get("subset_size")
    if _int(size) and size > n_train // 2:
        errors.append(
            f"{where}.subset_size: {size} is more than half of the {n_train} training examples "
            f"of {dataset} (at most {n_train // 2}), so the easy and difficult subsets would "
            "overlap"
        )
    test_size = exp.get("test_subset_size")
    if _int(test_size) and test_size > n_test // 2:
        errors.append(
            f"{where}.test_subset_size: {test_size} is more than half of the {n_test} test "
            f"examples of {dataset} (at most {n_test // 2})"
        )
    probe = exp.get("probe_size")
    if _int(probe):
        if size is None:
            errors.append(f"{where}.probe_size: needs subset_size to be set")
        elif _int(size) and probe > size:
            errors.append(
                f"{where}.probe_size: {probe} is larger than the subsets (subset_size {size}) "
                "it samples from"
            )
    levels = exp.get("corruption_levels") or []
    for level in levels:
        if _int(level) and level > n_train:
            errors.append(
                f"{where}.corruption_levels: {level} exceeds the {n_train} training examples "
                f"of {dataset}"
            )
    if len(set(map(str, levels))) != len(levels):
        errors.append(f"{where}.corruption_levels: levels must be distinct, got {levels}")
    milestones = exp.get("milestones") or []
    if list(milestones) != sorted(set(milestones)):
        errors.append(f"{where}.milestones: must be increasing epochs, got {milestones!r}")
    truth = exp.get("truth")
    if isinstance(truth, Mapping):
        models, shards = truth.get("models", 200), truth.get("shards", 1)
        if _int(models) and _int(shards) and shards > models:
            errors.append(f"{where}.truth.shards: {shards} shards for {models} models")
        fraction = truth.get("fraction", 0.7)
        if isinstance(fraction, float) and round(fraction * n_train) in (0, n_train):
            errors.append(
                f"{where}.truth.fraction: {fraction} of {n_train} examples leaves no example in "
                "or none out of a subset"
            )
    batch = exp.get("batch_size")
    if _int(batch) and batch > n_train:
        errors.append(
            f"{where}.batch_size: {batch} is larger than the {n_train} training examples of "
            f"{dataset}"
        )
    if model in MODELS:
        errors.extend(_check_model(where, exp, info))
    return errors


def _check_model(where: str, exp: Mapping, info) -> list[str]:
    """Build the model on the meta device (no memory, no compute) to vet its options,
    then check that its turn-over masks can be distinct for every example."""
    import torch

    from .models import build_model

    options = {k: exp[k] for k in MODEL_OPTIONS[exp["model"]] if k in exp}
    try:
        with torch.device("meta"):
            model = build_model(exp["model"], info.shape, len(info.classes), **options)
    except (ValueError, TypeError, AssertionError, RuntimeError) as err:
        keys = ", ".join(sorted(options)) or "defaults"
        return [f"{where}: the {exp['model']} options ({keys}) are invalid: {err}"]
    n = max(info.n_train, info.n_test)
    return [f"{where}: {msg}" for msg in mask_collisions(model, n, int(exp.get("seed", 0)), info)]


def mask_collisions(model, n: int, seed: int, info=None) -> list[str]:
    """Problems with the turn-over masks of ``n`` examples: too few distinct masks.

    The number of distinct masks is the product over masked layers of C(units, kept)
    (:func:`memorization.masks.distinct_masks`, with the model's keep fraction). When the
    birthday bound says a collision among ``n`` examples is not negligible, the masks of
    every example id of the dataset are computed and checked exactly.
    """
    from .masks import MaskCollisionError, distinct_masks, keep_count

    units = list(getattr(model, "mask_units", []))
    if not units:
        return []
    keep = float(getattr(model, "keep_fraction", 0.5))
    try:
        log_distinct = sum(_log_choose(u, keep_count(u, keep)) for u in units)
    except ValueError as err:  # e.g. a layer of one unit
        return [f"turn-over masks impossible: {err}"]
    log_pairs = math.log(max(n, 2)) * 2 - math.log(2)
    if log_pairs - log_distinct < math.log(COLLISION_CHECK_ABOVE):
        return []  # the birthday bound: a collision is negligible
    distinct = distinct_masks(units, keep)
    if distinct < n:
        return [
            f"the masked layers (units {units}, keep fraction {keep}) allow only {distinct} "
            f"distinct turn-over masks for {n} examples; use more units per layer"
        ]
    total = info.n_train + info.n_test if info else n
    try:  # every example id of the dataset (0 .. N-1): a superset of each split's
        model.turnover_masks(seed, range(total))
    except MaskCollisionError as err:
        return [f"turn-over masks collide among the dataset's examples (units {units}): {err}"]
    return []


def _log_choose(n: int, k: int) -> float:
    """log C(n, k), without forming the (possibly huge) integer."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _check_figures(config: Mapping, experiments: Mapping) -> list[str]:
    from .figures import FIGURES

    errors = []
    for fig_name, options in (config.get("figures") or {}).items():
        fig = FIGURES.get(fig_name)
        if fig is None or not isinstance(options, Mapping):
            continue  # the schema has said so
        for option, exp_name, artifact in fig.needs(options):
            if exp_name not in experiments:
                errors.append(
                    f"figures.{fig_name}.{option}: experiment {exp_name!r} is not defined under "
                    f"experiments{_suggest(exp_name, experiments)} (defined: {sorted(experiments)})"
                )
                continue
            exp = experiments[exp_name]
            if not isinstance(exp, Mapping):
                continue
            for key in ARTIFACT_NEEDS.get(artifact, ()):
                if exp.get(key) is None:
                    errors.append(
                        f"figures.{fig_name}.{option}: experiment {exp_name!r} has no {key}, "
                        f"which {fig_name} needs for its {artifact}"
                    )
            if fig_name == "validation" and artifact == "scores" and option == "clean":
                wanted = max(options.get("replicates") or [1])
                if wanted > exp.get("replicates", 1):
                    errors.append(
                        f"figures.{fig_name}.replicates: {wanted} replicates asked for, but "
                        f"experiment {exp_name!r} has replicates: {exp.get('replicates', 1)}"
                    )
            if artifact == "gradstats" and exp.get("cosine_pairs", "probe") == "probe":
                if exp.get("probe_size") is None:
                    errors.append(
                        f"figures.{fig_name}.{option}: experiment {exp_name!r} has no probe_size, "
                        f"which {fig_name} needs for its probe cosine similarity (or set "
                        "cosine_pairs: batch)"
                    )
    return errors


def _check_device(config: Mapping) -> list[str]:
    if config.get("device") != "cuda":
        return []
    from .device import _cuda_device_count

    if _cuda_device_count() == 0:
        return [
            "device: 'cuda' asks for a GPU, but none is visible on this machine, where the "
            "jobs run (use device: auto or cpu, or run on a cluster profile whose nodes have GPUs)"
        ]
    return []


def check_config(config: Mapping, *, local: bool = False) -> list[str]:
    """Every problem of a workflow config, as messages naming the key.

    ``local``: the jobs run on this machine (then ``device: cuda`` needs a GPU here).
    """
    if not isinstance(config, Mapping):
        return [f"<top level>: expected a mapping, got {type(config).__name__}"]
    errors = _schema_errors(config)
    experiments = config.get("experiments") or {}
    if isinstance(experiments, Mapping):
        for name, exp in experiments.items():
            if isinstance(exp, Mapping):
                errors.extend(_check_experiment(str(name), exp))
        errors.extend(_check_figures(config, experiments))
    if local:
        errors.extend(_check_device(config))
    return list(dict.fromkeys(errors))


def validate_config(config: Mapping, *, local: bool = False, source: str | None = None) -> None:
    errors = check_config(config, local=local)
    if errors:
        where = f" ({source})" if source else ""
        raise ConfigError(
            f"invalid config{where}: {len(errors)} problem(s)\n  " + "\n  ".join(errors)
        )


# --- the parsed config ----------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowConfig:
    """A validated config: execution settings, typed experiments, figure options."""

    results: str
    data_root: str
    download: bool
    device: str
    threads: int
    checkpoint_every: int
    experiments: dict[str, Experiment]
    figures: dict[str, dict]

    @classmethod
    def from_config(cls, config: Mapping) -> WorkflowConfig:
        from .figures import FIGURES

        figures = {}
        for name, options in (config.get("figures") or {}).items():
            defaults = {k: v["default"] for k, v in FIGURES[name].options.items() if "default" in v}
            figures[name] = {**defaults, **options}
        return cls(
            results=str(config.get("results", "results")).rstrip("/") or ".",
            data_root=str(config.get("data_root", "data")),
            download=bool(config.get("download", False)),
            device=config.get("device", "auto"),
            threads=int(config.get("threads", 1)),
            checkpoint_every=int(config.get("checkpoint_every", 5)),
            experiments={
                str(n): Experiment.from_config(str(n), e) for n, e in config["experiments"].items()
            },
            figures=figures,
        )


# --- checking a config file from the command line --------------------------------------


def load_yaml(path: str | Path) -> dict:
    """Read a config file; a YAML syntax error names the file, line and column."""
    try:
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {err.problem or err}") from None


def _main(argv) -> int:
    """``python -m memorization.config FILE...``: check config files as the workflow does.

    Snakemake reads ``--configfile`` itself and reports a YAML syntax error without its
    file or line; this names both, then lists every problem of the config.
    """
    import sys

    status = 0
    for path in argv or ["config/config.yaml"]:
        try:
            cfg = coerce_config(load_yaml(path))
            validate_config(cfg, local=True, source=path)
        except (ConfigError, OSError) as err:
            print(err, file=sys.stderr)
            status = 1
        else:
            print(f"{path}: valid")
    return status


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
