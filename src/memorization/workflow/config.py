"""The workflow config as a whole: its top-level keys, reading it, and the typed result.

:data:`WORKFLOW_OPTIONS` are the top-level keys besides ``datasets``, ``experiments``
and ``figures`` (the execution settings and where results go). :func:`load_yaml`
reads a config file strictly (a syntax error or a key given twice names the file
and line). :func:`coerce_overrides` turns the strings ``--config`` and YAML 1.1
leave behind into numbers. :class:`WorkflowConfig` is the parsed config the rules use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from ..data.sources import dataset_info, dataset_spec
from ..data.spec import DatasetInfo, DatasetSpec
from ..infra.options import Option, resolve
from .execution import EXECUTION_OPTIONS, Execution
from .figures import FIGURES
from .specs import Experiment

__all__ = [
    "WORKFLOW_OPTIONS",
    "ConfigError",
    "WorkflowConfig",
    "coerce_overrides",
    "load_yaml",
]

#: the top-level keys besides datasets, experiments and figures
WORKFLOW_OPTIONS: dict[str, Option] = {
    "results": Option(
        "results",
        "folder of every artifact, log and figure of this config (give each config its own)",
        {"type": "string", "minLength": 1},
    ),
    **EXECUTION_OPTIONS,
    "replace_results": Option(
        False,
        "this config replaces another config's results in the same results folder (the old "
        "folder is moved aside to <results>.replaced-<time> first); false: such a config "
        "is refused",
        {"type": "boolean"},
    ),
}


class ConfigError(ValueError):
    """The workflow config is invalid; the message names every offending key."""


# --- reading ------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} is given twice (first on line {seen[key] + 1}): the second would "
                "silently replace the first",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a config file: a YAML syntax error or a duplicate key names file, line, column."""
    try:
        with open(path) as fh:
            data = yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: {err.problem or err}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a config is a mapping of keys, not a {type(data).__name__}")
    return data


# --- coercion ---------------------------------------------------------------------------


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


#: keys whose values are names, never numbers: ``turnover: ["4", "8"]`` names the
#: children of an ``nn.Sequential``
_NAMES_KEYS = frozenset({"turnover"})


def coerce_overrides(value):
    """Turn strings that are numbers, booleans, lists or null into them, in place.

    ``--config 'experiments={mnist_mlp: {epochs: 5}}'`` leaves ``'5'`` and PyYAML (YAML
    1.1) reads ``1e-3`` as a string; both become numbers. A float with an integral
    value stays a float here (``epochs: 1e3`` is then refused as not an integer,
    naming the key, rather than silently truncated).
    """
    if isinstance(value, dict):
        for key in list(value):
            if key not in _NAMES_KEYS:
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


# --- the parsed config ----------------------------------------------------------------------


def results_folder(value: str) -> str:
    """The results folder as given, ``~`` expanded, trailing slashes removed (``/`` stays)."""
    text = os.path.expanduser(str(value))
    return text.rstrip("/") or "/"


@dataclass(frozen=True)
class WorkflowConfig:
    """A validated config: execution settings, typed datasets and experiments, figures."""

    results: str
    execution: Execution
    datasets: Mapping[str, DatasetSpec]
    experiments: Mapping[str, Experiment]
    figures: Mapping[str, dict] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return self.execution.device

    @property
    def threads(self) -> int:
        return self.execution.threads

    @classmethod
    def from_config(cls, config: Mapping, infos: Mapping[str, DatasetInfo] | None = None):
        top = resolve(WORKFLOW_OPTIONS, config)
        execution = Execution.from_config(config)
        user = config.get("datasets") or {}
        experiments = config["experiments"]
        names = {e["dataset"] for e in experiments.values()}
        datasets = {n: dataset_spec(n, user) for n in sorted(names)}
        infos = dict(infos or {})
        for name, spec in datasets.items():
            if name not in infos:
                infos[name] = dataset_info(spec, execution.data_root)
        figures = {}
        for name, options in (config.get("figures") or {}).items():
            figures[name] = {**FIGURES[name].defaults(), **options}
        return cls(
            results=results_folder(top["results"]),
            execution=execution,
            datasets=datasets,
            experiments={
                str(n): Experiment.from_config(str(n), e, user, info=infos[e["dataset"]])
                for n, e in experiments.items()
            },
            figures=figures,
        )
