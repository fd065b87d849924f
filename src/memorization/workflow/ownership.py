"""A results folder belongs to one config: another config is refused before it changes
an artifact there.

Before any job, :func:`claim_results` records in ``<results>/.owner.yaml`` what decides
each artifact of the folder (the hash of every stage's slice of each experiment, of each
dataset's spec and of each figure's options) and which config file(s) set it. A run of
another config (other config files) whose settings would change a recorded artifact (an
experiment's stage whose slice differs, a dataset or a figure with other options) is
refused, naming both configs and the fix: its own ``results:``. A config that only adds
experiments, stages (truth settings, say) or figures, or differs only in execution
settings (device, threads), is let through and its additions recorded as its own. The
config that set an entry changes it freely (as it always did: Snakemake reruns exactly
what the change decides). A changed dataset file is not a change of settings: the
fingerprint is left out.

``replace_results: true`` says that the new config replaces the old: the old folder is
first moved aside whole, to ``<results>.replaced-<UTC time>`` (one rename, nothing is
lost half-way), and the new config builds into an empty folder. Dry runs (``-n``, or a
profile's ``dryrun``), ``--lint``, ``--list``, ``--summary`` and ``--report`` read the
record and move and write nothing: :func:`memorization.workflow.command_line.executing`
asks Snakemake's own state (its ``workflow`` object and its parsed command line).
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import yaml

from ..infra.files import atomic_write
from .config import WorkflowConfig
from .provenance import slice_hash
from .registry import STAGES
from .slices import OptionsSlice

__all__ = [
    "OWNER_FILE",
    "claim_results",
    "conflicts",
    "results_settings",
]

#: the record of a results folder's owner, in the folder
OWNER_FILE = ".owner.yaml"


def _experiment_stages(exp) -> dict[str, str]:
    """Stage name -> hash of the slice(s) deciding its artifact(s) of ``exp``."""
    exp = replace(exp, dataset=replace(exp.dataset, fingerprint=None))
    out = {}
    for record in STAGES.values():
        if record.scope != "experiment" or record.slice is None:
            continue
        try:
            if record.wildcards:
                every = record.expand(exp) if record.expand else []
                params = [record.slice_of(exp, **w).params() for w in every]
            else:
                params = record.slice_of(exp).params()
        except ValueError:  # a stage this experiment does not have (no truth settings)
            continue
        out[record.name] = slice_hash({"slice": params})
    return out


def results_settings(config: WorkflowConfig) -> dict[str, dict]:
    """What decides the folder's artifacts: ``experiments`` (name -> stage -> hash),
    ``datasets`` and ``figures`` (name -> hash)."""
    return {
        "experiments": {n: _experiment_stages(e) for n, e in config.experiments.items()},
        "datasets": {
            n: slice_hash(replace(s, fingerprint=None).params()) for n, s in config.datasets.items()
        },
        "figures": {n: slice_hash(OptionsSlice(o).params()) for n, o in config.figures.items()},
    }


def _entries(settings: Mapping) -> dict[tuple[str, str], object]:
    return {
        (kind, name): value for kind, named in settings.items() for name, value in named.items()
    }


def conflicts(
    recorded: Mapping, settings: Mapping, configs: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """``(what, the config files that set it)`` of each recorded entry set by other config
    files that ``settings`` would change."""
    out = []
    owners = recorded.get("owners") or {}
    now = _entries(settings)
    for (kind, name), old in _entries(recorded.get("settings") or {}).items():
        owner = list(owners.get(kind, {}).get(name) or [])
        if (kind, name) not in now or owner == list(configs):
            continue
        new = now[(kind, name)]
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            changed = sorted(s for s in set(old) & set(new) if old[s] != new[s])
            if changed:
                out.append((f"{kind}.{name} ({', '.join(changed)})", owner))
        elif old != new:
            out.append((f"{kind}.{name}", owner))
    return out


def _read(path: Path) -> dict:
    try:
        record = yaml.safe_load(path.read_text()) or {}
        if not isinstance(record, dict) or not isinstance(record.get("settings", {}), dict):
            raise yaml.YAMLError("not a record of settings and owners")
        return record
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as err:
        print(
            f"{path} (the record of which config owns this results folder) cannot be read "
            f"({err}): delete it and run again",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


def _merged(recorded: Mapping, settings: Mapping, configs: Sequence[str]) -> dict:
    """The record with this config's settings: its entries set by these config files."""
    merged = {k: dict(v) for k, v in (recorded.get("settings") or {}).items()}
    owners = {k: dict(v) for k, v in (recorded.get("owners") or {}).items()}
    for kind, named in settings.items():
        for name, value in named.items():
            old = merged.setdefault(kind, {}).get(name)
            if isinstance(old, Mapping) and isinstance(value, Mapping):
                value = {**old, **value}
            merged[kind][name] = value
            owners.setdefault(kind, {})[name] = list(configs)
    return {"settings": merged, "owners": owners}


def _write(path: Path, record: Mapping) -> None:
    text = (
        "# Which config owns this results folder (written before every run; read by the\n"
        "# next): another config that would change these artifacts is refused.\n"
        + yaml.safe_dump(dict(record), sort_keys=True)
    )
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _move_aside(folder: Path) -> Path | str:
    """Rename the whole folder to ``<folder>.replaced-<UTC time>`` (or say why not)."""
    here = Path.cwd().resolve()
    real = folder.resolve()
    if real == here or real in here.parents:
        return f"replace_results cannot move {folder} aside: it holds the working directory"
    nested = sorted(folder.glob(f"*/**/{OWNER_FILE}"))
    if nested:
        return (
            f"replace_results cannot move {folder} aside: it holds another config's results "
            f"folder ({nested[0].parent})"
        )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder.with_name(f"{folder.name}.replaced-{stamp}")
    try:
        os.rename(folder, target)
    except OSError as err:
        return f"replace_results could not move {folder} to {target}: {err}"
    return target


def claim_results(
    config: WorkflowConfig,
    configfiles: Sequence[str],
    *,
    replace_results: bool = False,
    write: bool = True,
) -> None:
    """Refuse (exit 1, every conflict printed) a config that would change another
    config's artifacts in its results folder; else record it (``write``: a real run)."""
    folder = Path(config.results)
    path = folder / OWNER_FILE
    configs = [str(Path(f).resolve()) for f in configfiles] or ["(the embedded default)"]
    recorded = _read(path)
    settings = results_settings(config)
    found = conflicts(recorded, settings, configs)
    if found and replace_results:
        if write:
            moved = _move_aside(folder)
            if isinstance(moved, str):
                _refuse([moved + ": give this config its own results: instead"], configs)
            print(f"replace_results: the old results are kept in {moved}", file=sys.stderr)
            recorded = {}
        else:
            print(
                f"replace_results: a run (not this one) first moves {folder} aside to "
                f"{folder}.replaced-<time>",
                file=sys.stderr,
            )
    elif found:
        _refuse(_problems(found, config.results, configs), configs)
    if write:
        _write(path, _merged(recorded, settings, configs))


def _problems(found, results: str, configs: Sequence[str]) -> list[str]:
    this = " + ".join(configs)
    lines = [
        f"results: {results}/ holds the artifacts of another config; this config ({this}) "
        "would change them:"
    ]
    for what, owner in found:
        lines.append(f"  {what}: set by {' + '.join(owner) or 'another config'}")
    lines.append(
        "give this config its own results: folder (e.g. results: "
        f"{results}_{Path(configs[0]).stem}), or set replace_results: true (--config "
        f"replace_results=true) to replace the old results (moved aside to "
        f"{results}.replaced-<time> first)"
    )
    return lines


def _refuse(problems: Sequence[str], configs: Sequence[str]) -> None:
    print(f"invalid config ({', '.join(configs)}): results folder taken", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    raise SystemExit(1)
