"""What the Snakefile runs before any job: the whole config checked, problems printed.

:func:`check_before_jobs` re-reads every ``--configfile`` strictly (a key given twice
is refused with its line), checks the config (:func:`~.check.check_config`), and
looks at the targets on the command line: a figure asked for under another config's
results folder (``results/fig6.pdf`` where the config writes ``results/paper``) is
named with the path it has. Any problem is printed without a traceback and the
Snakefile stops (exit status 1) before Snakemake plans a job. A check that passed is
kept (``cache=``, :mod:`.check_cache`) and not redone while nothing it reads changed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from ..data.sources.builtin import missing_data
from ..data.spec import DatasetInfo
from .check_cache import check_key, read_cached, write_cached
from .config import ConfigError, load_yaml, results_folder

__all__ = ["check_before_jobs", "target_hints"]

_OUTPUT_SUFFIXES = (".pdf", ".nc", ".md", ".json", ".html")


def target_hints(argv: Sequence[str], results: str, figures: Sequence[str]) -> list[str]:
    """Targets on the command line that lie under another results folder than this
    config's, with the path they have under this config's."""
    hints = []
    root = PurePosixPath(results)
    for token in argv[1:]:
        if token.startswith("-") or "=" in token or not token.endswith(_OUTPUT_SUFFIXES):
            continue
        path = PurePosixPath(token)
        if root == path.parent or root in path.parents:
            continue
        name = path.name
        if path.stem in figures or name in ("claims.md", "claims.json"):
            hints.append(
                f"{token}: not a file this config makes (its results folder is {results}/); "
                f"the target is {root / name}"
            )
    return hints


def check_before_jobs(
    config: Mapping,
    *,
    configfiles: Sequence[str] = (),
    overrides: Mapping | None = None,
    local: bool = True,
    argv: Sequence[str] | None = None,
    cache: str | None = None,
    data_files: bool = False,
) -> dict[str, DatasetInfo]:
    """Check everything before any job; print every problem and exit 1 if any.

    Returns each used dataset's info (its sizes, shape and classes), read once.
    ``cache``: the file that keeps a passed check (none: always check).
    ``data_files``: the built-in torchvision datasets' files must be under ``data_root``
    unless ``download`` is true (a run that executes jobs; a dry run plans without them).
    Looked at every time, never kept in ``cache``: it costs a few file lookups.
    """
    problems = []
    for path in configfiles:
        try:
            load_yaml(path)
        except ConfigError as err:
            problems.append(str(err))
    key = check_key(config, configfiles, local=local) if cache else None
    infos = read_cached(cache, key) if cache and not problems else None
    if infos is None:
        from .check import check  # heavy: the models and torch; a kept check needs neither

        errors, infos = check(config, local=local)
        problems += errors
        if cache and not problems:
            write_cached(cache, key, infos)
    if data_files and not problems and not config.get("download", False):
        problems += missing_data(config, infos)
    if not problems:
        figures = list(config.get("figures") or {})
        results = results_folder(config.get("results", "results"))
        problems += target_hints(sys.argv if argv is None else argv, results, figures)
    if problems:
        source = ", ".join(configfiles) or "config/config.yaml"
        if overrides:
            source += " with --config " + " ".join(f"{k}=..." for k in overrides)
        print(f"invalid config ({source}): {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print("(`memorization check FILE` lists the same without Snakemake)", file=sys.stderr)
        raise SystemExit(1)
    return infos
