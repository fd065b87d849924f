"""Every problem of a workflow config, by key, before any job runs.

:func:`check_config` checks a config against the generated JSON schema
(:mod:`.schema`) and against what a schema cannot express: datasets that exist and
can be read, sizes against each dataset, models that can be built with their
options, turn-over masks that are distinct for every example (and, for a model of
your own, the zero-gradient property on a small batch), figures naming experiments
that define what they draw, the results folder, and where jobs run locally the
device, the memory and the disk they need. It lists *every* problem at once, each
with its key path, and suggests the key meant when one is misspelled. A key the
schema refuses is not checked further (its value has the wrong type).
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from jsonschema import Draft202012Validator

from ..data.sources import dataset_info, dataset_spec
from ..data.sources.arrays import check_file_pixels
from ..data.sources.builtin import DATASETS, missing_data
from ..data.spec import DatasetError, DatasetInfo
from ..infra.device import cuda_device_count
from ..infra.options import resolve
from ..method.dry_run import dry_run
from ..method.masks import MaskCollisionError, distinct_masks, keep_count
from ..method.models import MODELS, external
from ..method.models.spec import ModelSpec, is_external, model_option_table
from ..method.optim import OptimSpec, recipe_problems
from ..method.precision import PRECISIONS, has_convolutions, supports
from ..report.figures import FIGURES
from ..report.figures.validation import GOAL_RUNS
from .config import ConfigError, results_folder
from .registry import STAGES
from .resources import host_bytes, model_cost
from .schema import schema
from .specs import EXPERIMENT_OPTIONS, STUDIES, Experiment, study_optim
from .stages import estimates

__all__ = [
    "ConfigError",
    "check",
    "check_config",
    "dataset_infos",
    "mask_collisions",
    "validate_config",
]

#: names of the results folder's own subfolders and files: not experiment names
RESERVED = ("data", "logs", "benchmarks", "claims", "validation", "figures")

#: a mask collision among n examples is checked exactly when the birthday bound
#: n² / (2 · distinct masks) exceeds this (else it is negligible and not computed)
COLLISION_CHECK_ABOVE = 1e-9


def _path(parts) -> str:
    return ".".join(str(p) for p in parts)


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# --- the schema ------------------------------------------------------------------------------


def _schema_errors(config: Mapping) -> tuple[list[str], set[tuple]]:
    """The schema's complaints, and the paths (up to the experiment, dataset or figure
    level) they concern: those are not checked further."""
    errors, bad = [], set()
    validator = Draft202012Validator(schema())
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        path = list(err.absolute_path)
        bad.add(tuple(path[:2]))
        errors.extend(_describe(err, path))
    return errors, bad


def _describe(err, path) -> list[str]:
    where = _path(path) or "<top level>"
    if err.validator == "additionalProperties":
        allowed = err.schema.get("properties", {})
        prefix = f"{where}." if path else ""
        out = []
        for key in sorted(set(err.instance) - set(allowed), key=str):
            hint = _suggest(key, allowed) or f"; known here: {', '.join(sorted(allowed))}"
            out.append(f"{prefix}{key}: unknown key{hint}")
        return out
    if err.validator == "type" and isinstance(err.instance, str):
        return [
            f"{where}: {err.instance!r} is a string, expected {err.validator_value} "
            "(quote nothing; write numbers as 0.001 or 1e-3)"
        ]
    if err.validator == "enum":
        hint = _suggest(err.instance, err.validator_value)
        return [f"{where}: {err.instance!r} is not one of {err.validator_value}{hint}"]
    if err.validator == "propertyNames":
        return [
            f"{where}: the name {err.instance!r} must start with a letter and hold only "
            "letters, digits, _ and -"
        ]
    return [f"{where}: {err.message}"]


# --- datasets --------------------------------------------------------------------------------


def dataset_infos(config: Mapping, bad: set[tuple] = frozenset()) -> tuple[dict, list[str]]:
    """Each dataset the experiments use: its info, or the problem reading it."""
    user = config.get("datasets") or {}
    root = config.get("data_root", "data")
    infos, errors = {}, []
    for name in user:
        if name in DATASETS:
            errors.append(f"datasets.{name}: is the name of a built-in dataset; choose another")
    used = {
        e.get("dataset")
        for e in (config.get("experiments") or {}).values()
        if isinstance(e, Mapping) and isinstance(e.get("dataset"), str)
    }
    for name in sorted(used):
        if name not in user and name not in DATASETS:
            continue  # the experiment check names it
        if ("datasets", name) in bad:
            continue
        where = f"datasets.{name}" if name in user else f"dataset {name!r}"
        try:
            spec = dataset_spec(name, user)
            infos[name] = dataset_info(spec, root)
            if spec.source == "arrays":  # NaN, inf or constant pixels, from a small file
                check_file_pixels(spec)
        except DatasetError as err:
            errors.append(f"{where}: {err}")
            continue
        if infos[name].n_test == 0:
            errors.append(
                f"{where}: the test split is empty (no example has split 'test'); the held-out "
                "accuracy needs test examples"
            )
    return infos, errors


# --- experiments -----------------------------------------------------------------------------


def _check_experiment(name: str, exp: Mapping, config: Mapping, infos) -> list[str]:
    """What the schema cannot say about one experiment (assumes it passed the schema)."""
    where = f"experiments.{name}"
    errors = _check_names(where, exp, config)
    if errors:
        return errors
    errors += _check_model_keys(where, exp)
    errors += _check_subsets_from(where, exp)
    info = infos.get(exp["dataset"])
    if info is None:
        return errors
    errors += _check_sizes(where, exp, info)
    errors += _check_recipe(where, exp, info)
    if not errors:
        errors += _check_model(where, exp, info)
    return errors


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
    known = estimates.estimate_names(oob)
    if name in known:
        return []
    hint = (
        " (the out-of-bag estimates need an oob_* key, e.g. oob_networks)"
        if name in estimates.OOB_NAMES
        else _suggest(name, known)
    )
    return [
        f"{where}.subsets_from: {name!r} is not an estimate of this experiment{hint}; "
        f"known: {', '.join(known)}"
    ]


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


def _check_sizes(where: str, exp: Mapping, info: DatasetInfo) -> list[str]:
    n_train, n_test, dataset = info.n_train, info.n_test, exp["dataset"]
    errors = []

    def over(key, value, limit, what):
        if _int(value) and value > limit:
            errors.append(f"{where}.{key}: {value} {what}")

    over(
        "corrupt",
        exp.get("corrupt", 0),
        n_train,
        f"exceeds the {n_train} training examples of {dataset}",
    )
    size = exp.get("subset_size")
    over(
        "subset_size",
        size,
        n_train // 2,
        f"is more than half of the {n_train} training examples of {dataset} (at most "
        f"{n_train // 2}), so the easy and difficult subsets would overlap",
    )
    over(
        "test_subset_size",
        exp.get("test_subset_size"),
        n_test // 2,
        f"is more than half of the {n_test} test examples of {dataset} (at most {n_test // 2})",
    )
    over(
        "batch_size",
        exp.get("batch_size"),
        n_train,
        f"is larger than the {n_train} training examples of {dataset}",
    )
    probe = exp.get("probe_size")
    if _int(probe) and size is None:
        errors.append(f"{where}.probe_size: needs subset_size to be set")
    elif _int(probe) and _int(size) and probe > size:
        errors.append(
            f"{where}.probe_size: {probe} is larger than the subsets (subset_size "
            f"{size}) it samples from"
        )
    levels = exp.get("corruption_levels") or []
    for level in levels:
        over(
            "corruption_levels",
            level,
            n_train,
            f"exceeds the {n_train} training examples of {dataset}",
        )
    if len(set(levels)) != len(levels):
        errors.append(f"{where}.corruption_levels: levels must be distinct, got {levels}")
    milestones = exp.get("milestones") or []
    if list(milestones) != sorted(set(milestones)):
        errors.append(f"{where}.milestones: must be increasing epochs, got {milestones!r}")
    errors += _check_truth(where, exp.get("truth"), n_train)
    return errors


def _check_recipe(where: str, exp: Mapping, info: DatasetInfo) -> list[str]:
    """The optimizer's options against each other, for the experiment's training and each
    plain study's (its own epochs and milestones), and no clipping for turn-over."""
    values = resolve(EXPERIMENT_OPTIONS, exp)
    optim = OptimSpec.from_config(values)
    errors = [f"{where}.{key}: {msg}" for key, msg in recipe_problems(optim, set(exp))]
    if optim.clip_norm is not None:
        errors.append(
            f"{where}.clip_norm: clipping by the global norm of the batch gradient makes every "
            "parameter's step depend on every example of the batch, so turn-over training "
            "(the scores) would train each example's muted sub-network on it; remove clip_norm"
        )
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

#: the options that decide how many units each model's masked layers have
UNITS_OPTIONS = {
    "mlp": ("hidden", "keep_fraction"),
    "vgg11": ("width", "mask_groups", "masked_layers", "keep_fraction"),
    "cct": ("embed_dim", "heads", "tokenizer_channels", "mlp_ratio", "keep_fraction"),
    "external": ("mask_groups", "head_hidden", "turnover", "keep_fraction"),
}


def _family(model: str) -> str:
    return "external" if is_external(model) else model


def mask_collisions(model, n: int, seed: int, info: DatasetInfo | None = None) -> list[str]:
    """Problems with the turn-over masks of ``n`` examples: too few distinct masks.

    The number of distinct masks is the product over masked layers of C(units, kept)
    (with the model's keep fraction). When the birthday bound says a collision among
    ``n`` examples is not negligible, the masks of every example id of the dataset are
    computed and checked exactly.
    """
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


# --- figures ---------------------------------------------------------------------------------


def _check_figures(config: Mapping, experiments: Mapping, bad: set[tuple]) -> list[str]:
    errors = []
    for fig_name, options in (config.get("figures") or {}).items():
        fig = FIGURES.get(fig_name)
        if fig is None or not isinstance(options, Mapping) or ("figures", fig_name) in bad:
            continue  # the schema has said so
        for option, exp_name, artifact in fig.needs(options):
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


# --- where the jobs run ----------------------------------------------------------------------


def _check_results(config: Mapping) -> list[str]:
    raw = config.get("results", "results")
    if not isinstance(raw, str) or not raw:
        return []
    folder = Path(results_folder(raw))
    if folder == Path("/"):
        return ["results: '/' is the filesystem root; give the results a folder of their own"]
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                return [
                    f"results: {raw!r} lies inside {str(parent)!r}, which is a file, not a folder"
                ]
            if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_in(parent):
                return [
                    f"results: {raw!r} cannot be created or written ({str(parent)!r} is not "
                    "writable); set results: to a folder you can write"
                ]
            break
    return []


def _can_create_in(folder: Path) -> bool:
    """Whether a folder can be made in ``folder`` (tried: permissions alone say yes for
    root, and for /proc or a read-only mount)."""
    import tempfile  # only for this probe

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".memorization-check-", dir=folder))
    except OSError:
        return False
    return True


def _check_memory(config: Mapping, infos: Mapping, valid: list[str]) -> list[str]:
    """Refuse an experiment whose turn-over training cannot fit in this machine's memory."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    device = "cpu" if config.get("device") == "cpu" or cuda_device_count() == 0 else "cuda"
    errors = []
    for name in valid:
        exp = config["experiments"][name]
        parsed = Experiment.from_config(
            name, exp, config.get("datasets"), info=infos[exp["dataset"]]
        )
        need = host_bytes(STAGES["scores_replicate"].passes(parsed), parsed, device=device)
        if need > total:
            errors.append(
                f"experiments.{name}: its training needs about {need / 2**30:.0f} GiB of memory "
                f"(the model: {model_cost(parsed).params:,} parameters), more than the "
                f"{total / 2**30:.0f} GiB of this machine, where the jobs run; make the model "
                "smaller or run on a cluster profile"
            )
    return errors


def _check_device(config: Mapping) -> list[str]:
    if config.get("device") != "cuda" or cuda_device_count() > 0:
        return []
    return [
        "device: 'cuda' asks for a GPU, but none is visible on this machine, where the jobs "
        "run (use device: auto or cpu, or run on a cluster profile whose nodes have GPUs)"
    ]


def _check_precision(config: Mapping, experiments: Mapping) -> list[str]:
    """Refuse a ``precision`` the device the jobs run on here cannot compute natively."""
    device = "cpu" if config.get("device") == "cpu" or cuda_device_count() == 0 else "cuda"
    errors = []
    for name, exp in experiments.items():
        wanted = exp.get("precision", "fp32") if isinstance(exp, Mapping) else "fp32"
        if wanted not in PRECISIONS or supports(wanted, device):
            continue
        if device == "cpu":
            what = f"this CPU, where the jobs run, has no {wanted} kernels (it would emulate them)"
        else:
            what = f"the GPU the jobs run on ({torch.cuda.get_device_name(0)}) has no {wanted}"
        alt = " or bf16" if wanted == "fp16" and supports("bf16", device) else ""
        errors.append(
            f"experiments.{name}.precision: {wanted}: {what}; use fp32{alt}, or run where "
            f"{wanted} is native"
        )
    return errors


def check_config(config: Mapping, *, local: bool = False) -> list[str]:
    """Every problem of a workflow config, as messages naming the key.

    ``local``: the jobs run on this machine (then the device, memory and disk they
    need are checked against it).
    """
    return check(config, local=local)[0]


#: the top-level keys that hold a mapping of named entries
_SECTIONS = ("datasets", "experiments", "figures")


def check(
    config: Mapping, *, local: bool = False, data_files: bool = False
) -> tuple[list[str], dict[str, DatasetInfo]]:
    """:func:`check_config`'s problems, and the info of every dataset that could be read.

    ``data_files``: the built-in torchvision datasets' files must be under ``data_root``
    unless ``download`` is true (``memorization check``; a dry run plans without them)."""
    if not isinstance(config, Mapping):
        return [f"<top level>: expected a mapping, got {type(config).__name__}"], {}
    errors, bad = _schema_errors(config)
    # a section of the wrong type (the schema has said so) is not checked further
    config = {
        k: {} if k in _SECTIONS and not isinstance(v, Mapping) else v for k, v in config.items()
    }
    infos, dataset_errors = dataset_infos(config, bad)
    errors += dataset_errors
    experiments = config.get("experiments")
    experiments = experiments if isinstance(experiments, Mapping) else {}
    valid = []
    for name, exp in experiments.items():
        if isinstance(exp, Mapping) and ("experiments", name) not in bad:
            found = _check_experiment(str(name), exp, config, infos)
            errors += found
            if not found and exp.get("dataset") in infos:
                valid.append(name)
    errors += _check_figures(config, experiments, bad)
    errors += _check_results(config)
    if data_files and not config.get("download", False):
        errors += missing_data(config, infos)
    if local:
        errors += _check_device(config)
        errors += _check_precision(config, experiments)
        if not bad:
            errors += _check_memory(config, infos, valid)
    return list(dict.fromkeys(errors)), infos


def validate_config(config: Mapping, *, local: bool = False, source: str | None = None) -> None:
    """Raise :class:`ConfigError` listing every problem of ``config`` (``source``: where
    it came from, for the message)."""
    errors = check_config(config, local=local)
    if errors:
        where = f" ({source})" if source else ""
        raise ConfigError(
            f"invalid config{where}: {len(errors)} problem(s)\n  " + "\n  ".join(errors)
        )
