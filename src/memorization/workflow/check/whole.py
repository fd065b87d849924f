"""The whole config's check: every problem at once, each naming its key."""

from __future__ import annotations

from collections.abc import Mapping

from ...data.sources.builtin import missing_data
from ...data.spec import DatasetInfo
from ..config import ConfigError
from .datasets import dataset_infos
from .experiment import _check_experiment
from .figures import _check_figures
from .host import _check_device, _check_memory, _check_precision, _check_results
from .schema_errors import _schema_errors


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
