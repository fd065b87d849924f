"""The ``memorization`` command line: check a config, plan and run the workflow, read
a finished run (claims, headline numbers, the most memorized examples).

Every command has ``--help``. The commands that read results take the results folder
of the config that made them (``results`` by default, ``results/paper`` for
``config/paper.yaml``).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from .data.examples import write_examples
from .method.scoring import SCORE_FORMS
from .report.claims import readme_markers, update_readme
from .report.summary import summarize
from .report.top import load, ranked, table, write_grid
from .workflow.calibration import band_text
from .workflow.check import check
from .workflow.config import ConfigError, WorkflowConfig, coerce_overrides, load_yaml
from .workflow.plan import plan_seconds, planned_jobs
from .workflow.reference import render as render_reference
from .workflow.registry import STAGES
from .workflow.schema import schema

app = typer.Typer(
    help="Memorization scores with turn-over dropout: check, plan, run and read the workflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def plain_help(doc: str | None) -> str:
    """A docstring as ``--help`` shows it: paragraphs joined into lines (the terminal wraps
    them, never mid-sentence) and reStructuredText's double backticks dropped."""
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(doc or ""))
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    return text.replace("``", "")


def _command(name: str, **settings):
    """``app.command`` with the function's docstring as :func:`plain_help`."""

    def register(fn):
        return app.command(name, help=plain_help(fn.__doc__), **settings)(fn)

    return register


Results = Annotated[Path, typer.Argument(help="the results folder of a finished run")]
ROOT = Path(__file__).resolve().parents[2]


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


@_command("check")
def check_files(
    files: Annotated[list[Path], typer.Argument(help="config files")] = None,
) -> None:
    """Check config files as the workflow does, listing every problem by file:line or key."""
    status = 0
    for path in files or [Path("config/config.yaml")]:
        try:
            cfg = coerce_overrides(load_yaml(path))
        except ConfigError as err:
            typer.echo(str(err), err=True)
            status = 1
            continue
        errors, _ = check(cfg, local=True, data_files=True)
        if errors:
            typer.echo(f"{path}: {len(errors)} problem(s)\n  " + "\n  ".join(errors), err=True)
            status = 1
        else:
            typer.echo(f"{path}: valid")
    raise typer.Exit(status)


@_command("claims")
def claims(
    results: Results = Path("results"),
    readme: Annotated[Path | None, typer.Option(help="copy the table into this README")] = None,
    note: Annotated[str, typer.Option(help="a sentence added to the copied table")] = "",
    section: Annotated[
        str, typer.Option(help="the name of a second table's markers in the README")
    ] = "",
    compact: Annotated[
        bool, typer.Option(help="copy it without the statements and the evidence")
    ] = False,
) -> None:
    """Print the table of the paper's claims of a finished run (or copy it into a README)."""
    md = results / "claims.md"
    if not md.exists():
        _fail(f"{md} does not exist: build it with `snakemake --cores 2 {md}`")
    if readme is not None:
        try:
            update_readme(readme, md, note, section=section, compact=compact)
        except ValueError as err:
            end = readme_markers(section)[1]
            _fail(f"{err} (add the markers where the table goes; the end marker: {end})")
        typer.echo(f"{readme}: claims table updated from {md}")
    else:
        typer.echo(md.read_text())


@_command("summary")
def summary(results: Results = Path("results")) -> None:
    """Print the claims table and the headline numbers of every experiment of a run."""
    if not results.is_dir():
        _fail(f"{results} is not a folder of results (run the workflow first)")
    text = summarize(results)
    if not text.strip():
        _fail(
            f"{results} holds no results (no claims.md, no <experiment>/scores.nc): give the "
            "results folder of a finished run (the config's results:)"
        )
    typer.echo(text)


@_command("top")
def top(
    experiment: Annotated[str, typer.Argument(help="the experiment's name in the config")],
    results: Annotated[Path, typer.Option(help="the run's results folder")] = Path("results"),
    n: Annotated[int, typer.Option("-n", min=1, help="how many examples")] = 20,
    least: Annotated[bool, typer.Option(help="the least memorized instead")] = False,
    form: Annotated[str, typer.Option(help=f"score form: {', '.join(SCORE_FORMS)}")] = "loss",
    grid: Annotated[Path | None, typer.Option(help="write an image grid here (.png)")] = None,
) -> None:
    """List the most (or least) memorized training examples, with their labels (the given
    labels, after any corruption the config asked for, and their originals)."""
    if form not in SCORE_FORMS:
        _fail(f"--form: {form!r} is not a score form; the forms: {', '.join(SCORE_FORMS)}")
    try:
        scores, data = load(results, experiment)
    except FileNotFoundError as err:
        _fail(_missing_scores(err, results, experiment))
    rows = ranked(scores, n, least, form)
    typer.echo(table(scores, data, rows, form))
    if grid is not None:
        write_grid(scores, data, rows, grid, form)
        typer.echo(f"image grid: {grid}")


def _missing_scores(err: Exception, results: Path, experiment: str) -> str:
    """Where an experiment's scores are, by the configs that define it, or ``err``."""
    found = []
    for path in sorted((ROOT / "config").glob("**/*.yaml")):
        try:
            cfg = load_yaml(path)
        except ConfigError:
            continue
        if experiment in (cfg.get("experiments") or {}):
            found.append((path.relative_to(ROOT), str(cfg.get("results", "results"))))
    here = [(p, r) for p, r in found if Path(r) != results]
    if not here:
        return str(err)
    lines = [f"{results / experiment / 'scores.nc'} does not exist; {experiment} is defined in:"]
    for path, folder in here:
        target = f"{folder}/{experiment}/scores.nc"
        lines.append(
            f"  {path} (results: {folder}): build it with `memorization run {target} "
            f"--configfile {path}`, then `memorization top {experiment} --results {folder}`"
        )
    return "\n".join(lines)


def _merge(base: dict, extra: dict) -> dict:
    """``extra`` merged into ``base`` key by key (nested mappings too), as ``--config`` is."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _config_of(configfile: Path | None, overrides: list[str] = ()) -> dict:
    path = configfile or ROOT / "config" / "config.yaml"
    try:
        cfg = load_yaml(path)
    except ConfigError as err:
        _fail(str(err))
    for item in overrides:
        key, _, value = item.partition("=")
        _merge(cfg, {key: yaml.safe_load(value)})
    return coerce_overrides(cfg)


def _snakemake_args(targets, configfile, cores, gpus, profile, overrides=()) -> list[str]:
    args = [*map(str, targets)]
    if configfile is not None:
        args.append(f"--configfile={configfile}")
    if overrides:
        args += ["--config", *overrides]
    if profile is not None:
        args.append(f"--profile={profile}")
    args.append(f"--cores={cores}")
    if gpus:
        args.append(f"--resources=gpu={gpus}")
    return args


@_command("plan")
def plan(
    targets: Annotated[list[str], typer.Argument(help="files to build (default: all)")] = None,
    configfile: Annotated[Path | None, typer.Option(help="the config file")] = None,
    config: Annotated[
        list[str], typer.Option(help="KEY=VALUE overrides, as snakemake --config")
    ] = None,
) -> None:
    """Estimate the time of the training jobs a run would do (from Snakemake's dry run)."""
    cfg = _config_of(configfile, config or [])
    errors, infos = check(cfg, local=False)
    if errors:
        _fail("invalid config:\n  " + "\n  ".join(errors))
    parsed = WorkflowConfig.from_config(cfg, infos)
    try:
        jobs = planned_jobs(_snakemake_args(targets or [], configfile, 1, 0, None, config or []))
    except RuntimeError as err:
        _fail(str(err))
    costs = plan_seconds(jobs, parsed)
    typer.echo(f"{len(jobs)} jobs planned, {costs['jobs']} of them train:")
    for stage_name, (count, gpu, cpu) in costs["by_stage"].items():
        typer.echo(
            f"  {stage_name:<18} {count:>3} job(s)  one GPU {_hours(gpu)}  "
            f"CPU ({parsed.threads} thread(s)) {_hours(cpu)}"
        )
    typer.echo(
        f"total, one after another: one GPU {_hours(costs['gpu'])}, CPU "
        f"{_hours(costs['cpu'])} (estimates of memorization.workflow.resources)"
    )
    typer.echo(band_text())


def _hours(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@_command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(help="files to build (default: all)")] = None,
    configfile: Annotated[Path | None, typer.Option(help="the config file")] = None,
    cores: Annotated[int, typer.Option(help="CPU cores Snakemake may use")] = 2,
    gpus: Annotated[int, typer.Option(help="GPUs of this machine (0: none)")] = 0,
    profile: Annotated[Path | None, typer.Option(help="a Snakemake profile")] = None,
) -> None:
    """Run the workflow: Snakemake with the arguments in an order it parses right (the
    targets first, ``--resources=gpu=N`` with its ``=``), in this folder.

    Other options are passed on to Snakemake after these (e.g. ``-n``)."""
    if configfile is not None and not configfile.is_file():
        _fail(f"config file {configfile} does not exist")
    args = _snakemake_args(targets or [], configfile, cores, gpus, profile) + list(ctx.args)
    args = ["--snakefile", str(ROOT / "Snakefile"), *args]
    typer.echo("snakemake " + " ".join(args))
    raise typer.Exit(subprocess.call([sys.executable, "-m", "snakemake", *args]))


@_command("schema")
def show_schema(
    write: Annotated[Path | None, typer.Option(help="write it to this file")] = None,
) -> None:
    """Print the config's JSON schema (generated from the declared options)."""
    text = schema_text()
    if write is None:
        typer.echo(text, nl=False)  # byte for byte what --write writes
    else:
        write.write_text(text)
        typer.echo(f"{write}: written")


def schema_text() -> str:
    header = "# Generated by `memorization generate`: do not edit; the options are declared in\n"
    header += "# the library (memorization.workflow.schema)\n"
    return header + yaml.safe_dump(schema(), sort_keys=False, width=100)


#: the files generated from the declared options: path under the workflow -> its text
GENERATED = {
    "config/schema/config.schema.yaml": schema_text,
    "docs/reference.md": render_reference,
}


@_command("generate")
def generate(
    check: Annotated[bool, typer.Option(help="only say which files are out of date")] = False,
) -> None:
    """Write the files generated from the options the library declares: the config's JSON
    schema and the option reference (docs/reference.md). Run it after adding or changing
    an option (a figure's, a dataset source's, a model's)."""
    if not (ROOT / "Snakefile").exists():
        _fail(f"{ROOT} is not a checkout of the workflow: run generate from a clone")
    stale = []
    for rel, text_of in GENERATED.items():
        path, text = ROOT / rel, text_of()
        if path.exists() and path.read_text() == text:
            continue
        stale.append(rel)
        if not check:
            path.write_text(text)
            typer.echo(f"{rel}: written")
    if check and stale:
        _fail(f"out of date: {', '.join(stale)}; run: memorization generate")
    if not stale:
        typer.echo("generated files are current")


@_command("examples")
def examples(
    folder: Annotated[Path, typer.Option(help="where to write them")] = ROOT / "data" / "examples",
) -> None:
    """Write the example datasets of config/examples/ (MNIST digits as an arrays file and
    as an image folder)."""
    try:
        written = write_examples(folder)
    except OSError as err:
        _fail(f"--folder {folder}: cannot write the examples there ({err.strerror or err})")
    typer.echo(f"{folder}: " + (", ".join(p.name for p in written) or "already there"))


@_command("stages")
def stages() -> None:
    """List the workflow's stages: name (= rule), artifact path, whether it trains."""
    for record in STAGES.values():
        flag = "trains" if record.trains else ""
        typer.echo(f"{record.name:<17} {record.path:<36} {flag:<6}  {record.doc}")


@_command("stage")
def run_one_stage(
    name: Annotated[str, typer.Argument(help="the stage (memorization stages lists them)")],
    experiment: Annotated[str, typer.Argument(help="the experiment (for a dataset: one using it)")],
    configfile: Annotated[Path | None, typer.Option(help="the config file")] = None,
    config: Annotated[
        list[str], typer.Option(help="KEY=VALUE overrides, as snakemake --config")
    ] = None,
    wildcard: Annotated[
        list[str], typer.Option(help="NAME=N for a stage of many jobs (rep, shard, level)")
    ] = None,
    debugger: Annotated[
        bool, typer.Option("--pdb", help="on an error, stop in the debugger where it was raised")
    ] = False,
) -> None:
    """Run one stage of one experiment in this process, outside Snakemake, as its job would
    run: the same inputs, output, params and execution settings, read from the config,
    the registry and the paths. For a debugger or a profiler; its inputs must exist."""
    from .workflow.debug import check_inputs, run_stage, stage_job  # heavy: Snakemake's API

    overrides = {k: yaml.safe_load(v) for k, _, v in (c.partition("=") for c in config or [])}
    given = dict(item.partition("=")[::2] for item in wildcard or [])
    files = [str(configfile)] if configfile is not None else []
    try:
        job = stage_job(name, experiment, configfiles=files, overrides=overrides, wildcards=given)
        check_inputs(job)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"stage {name} of {experiment}: {dict(job.input)} -> {job.output['output']}")
    try:
        run_stage(job)
    except Exception as err:
        if not debugger:
            raise
        import pdb  # optional: only with --pdb

        pdb.post_mortem(err.__traceback__)
        raise typer.Exit(1) from None
    typer.echo(f"{job.output['output']}: written")


def main() -> None:
    """Run the command line; an unexpected error prints one line (and where to see the
    traceback: ``MEMORIZATION_DEBUG=1``), not a Python traceback."""
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C: what was running has said what it kept
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the last resort of a command line
        if os.environ.get("MEMORIZATION_DEBUG"):
            raise
        typer.echo(
            f"error: {type(err).__name__}: {err}\n(set MEMORIZATION_DEBUG=1 to see the traceback; "
            "please report it if the message does not say what to change)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
