"""The ``memorization`` command line: every command's help, checking, planning and
reading a finished run (claims, summary, the most memorized examples)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
import xarray as xr
import yaml
from typer.testing import CliRunner

from memorization.cli import app
from memorization.report.claims import README_END, README_START
from memorization.workflow.registry import STAGES
from memorization.workflow.schema import schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "config/schema/config.schema.yaml"
#: the commands the README and the workflow's messages name
COMMANDS = {"check", "claims", "summary", "top", "plan", "run", "schema", "stages"}

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], prog_name="memorization")


def flat(text: str) -> str:
    """Help text without its boxes and line breaks (rich wraps to the terminal)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def refused(result, *messages: str) -> str:
    """A clear refusal: exit status 1, each message, no traceback."""
    out = result.output
    assert result.exit_code == 1, out
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in out, out
    for message in messages:
        assert message in out, out
    return out


def _tiny():
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import test_workflow

    return test_workflow


# --- help ----------------------------------------------------------------------------------


def test_help_lists_and_describes_every_command():
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    commands = typer.main.get_command(app).commands
    assert COMMANDS <= set(commands)
    text = flat(result.output)
    assert "check, plan, run and read the workflow" in text
    for name, command in commands.items():
        assert name in text
        first = command.help.split("\n")[0]
        assert flat(first) in text, (name, first)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert f"Usage: memorization {name}" in text
    help_text = typer.main.get_command(app).commands[name].help
    assert flat(help_text.split("\n\n")[0]) in text  # its description


def test_python_m_memorization_is_the_command_line():
    res = subprocess.run(
        [sys.executable, "-m", "memorization", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    text = flat(res.stdout)
    for name in COMMANDS:
        assert name in text, name


# --- check ---------------------------------------------------------------------------------

EXPERIMENT = {"dataset": "digits", "model": "mlp", "hidden": 64, "seed": 0, "epochs": 1}
EXPERIMENT |= {"lr": 0.1, "batch_size": 64}


def _write(path: Path, text_or_config) -> Path:
    text = text_or_config if isinstance(text_or_config, str) else yaml.safe_dump(text_or_config)
    path.write_text(text)
    return path


def test_check_a_valid_config(tmp_path, monkeypatch):
    good = _write(tmp_path / "good.yaml", {"device": "cpu", "experiments": {"a": EXPERIMENT}})
    result = invoke("check", good)
    assert result.exit_code == 0, result.output
    assert result.output == f"{good}: valid\n"
    monkeypatch.chdir(ROOT)  # without a file: the embedded default
    result = invoke("check")
    assert result.exit_code == 0 and "config/config.yaml: valid" in result.output


def test_check_names_every_problem_by_its_key(tmp_path):
    bad = {"devcie": "cpu", "experiments": {"a": {**EXPERIMENT, "hiden": 8, "lr": 0}}}
    path = _write(tmp_path / "bad.yaml", bad)
    refused(
        invoke("check", path),
        f"{path}: 3 problem(s)",
        "devcie: unknown key (did you mean 'device'?)",
        "experiments.a.hiden: unknown key (did you mean 'hidden'?)",
        "experiments.a.lr: 0 is less than or equal to the minimum",
    )
    # each file on its own: a valid one next to an invalid one, status 1
    good = _write(tmp_path / "good.yaml", {"experiments": {"a": EXPERIMENT}})
    refused(invoke("check", good, path), f"{good}: valid", f"{path}: 3 problem(s)")


def test_check_names_file_and_line_of_a_yaml_error(tmp_path):
    syntax = _write(tmp_path / "syntax.yaml", "experiments:\n  a: {dataset: digits\n  b: 1\n")
    out = refused(invoke("check", syntax))
    assert re.search(rf"^{re.escape(str(syntax))}:\d+:\d+: ", out, re.M), out
    twice = _write(
        tmp_path / "twice.yaml",
        "experiments:\n  a:\n    dataset: digits\n    seed: 0\n    seed: 1\n",
    )
    refused(invoke("check", twice), f"{twice}:5:5: key 'seed' is given twice (first on line 4)")
    refused(invoke("check", tmp_path / "missing.yaml"), "cannot read the config file")


# --- schema and stages ---------------------------------------------------------------------


def test_schema_is_the_generated_file(tmp_path):
    result = invoke("schema")
    assert result.exit_code == 0
    assert result.output == SCHEMA_FILE.read_text(), "out of date: run memorization generate"
    assert yaml.safe_load(SCHEMA_FILE.read_text()) == schema()
    result = invoke("schema", "--write", tmp_path / "s.yaml")
    assert result.exit_code == 0 and f"{tmp_path / 's.yaml'}: written" in result.output
    assert (tmp_path / "s.yaml").read_text() == SCHEMA_FILE.read_text()


def test_generate_writes_what_is_stale_and_check_names_it(tmp_path, monkeypatch):
    """One command regenerates the schema and the option reference; --check only names
    what is out of date (run here on a stand-in checkout, not on the repository)."""
    from memorization import cli

    result = invoke("generate", "--check")  # the repository's own files are current
    assert result.exit_code == 0 and "current" in result.output, result.output
    (tmp_path / "Snakefile").write_text("")
    for rel in cli.GENERATED:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("stale\n")
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    result = invoke("generate", "--check")
    assert result.exit_code == 1
    assert "config/schema/config.schema.yaml, docs/reference.md" in result.output
    assert "memorization generate" in result.output
    assert (tmp_path / "docs/reference.md").read_text() == "stale\n"  # --check writes nothing
    result = invoke("generate")
    assert result.exit_code == 0 and "docs/reference.md: written" in result.output
    assert (tmp_path / "docs/reference.md").read_text() == (ROOT / "docs/reference.md").read_text()
    assert (tmp_path / "config/schema/config.schema.yaml").read_text() == SCHEMA_FILE.read_text()
    (tmp_path / "Snakefile").unlink()
    result = invoke("generate")
    assert result.exit_code == 1 and "not a checkout" in result.output


def test_stages_lists_every_stage():
    result = invoke("stages")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == list(STAGES)
    for line, record in zip(lines, STAGES.values(), strict=True):
        assert line.split()[1] == record.path
        assert (" trains " in line) == record.trains, line
        assert line.rstrip().endswith(record.doc), line


# --- plan and run --------------------------------------------------------------------------


def test_plan_lists_the_training_jobs_with_their_estimates(tmp_path, monkeypatch):
    from memorization.workflow.calibration import band_text
    from memorization.workflow.config import WorkflowConfig
    from memorization.workflow.plan import JOB_START_SECONDS
    from memorization.workflow.resources import compute_seconds

    tiny = _tiny().TINY
    config = {**tiny, "results": str(tmp_path / "results")}  # nothing built yet
    path = _write(tmp_path / "tiny.yaml", config)
    monkeypatch.chdir(ROOT)
    result = invoke("plan", "--configfile", path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # 4 experiments scored; test splits of the 3 whose dynamics are drawn; 2 sweep levels
    jobs = {"scores": 4, "scores_test": 3, "dynamics": 3, "gradstats": 1, "crosstrain": 1,
            "sweep": 2}  # fmt: skip
    assert re.fullmatch(rf"\d+ jobs planned, {sum(jobs.values())} of them train:", lines[0])
    rows = {}
    for line in lines[1:-2]:
        found = re.fullmatch(
            r"  (\w+) +(\d+) job\(s\)  one GPU (\d+) min  CPU \(1 thread\(s\)\) (\d+) min", line
        )
        assert found, line
        rows[found.group(1)] = [int(g) for g in found.groups()[1:]]
    assert {k: v[0] for k, v in rows.items()} == jobs
    # the estimates of the scores jobs: the resources' compute time of each, plus start-up
    parsed = WorkflowConfig.from_config(config)
    for column, device in ((1, "cuda"), (2, "cpu")):
        seconds = sum(
            compute_seconds(STAGES["scores"].passes(e), e, device=device, threads=1)
            + JOB_START_SECONDS
            for e in parsed.experiments.values()
        )
        assert rows["scores"][column] == round(seconds / 60), device
    assert lines[-2].startswith("total, one after another: one GPU ")
    assert lines[-1] == band_text()  # the measured error of the estimates


def test_plan_refuses_an_invalid_config(tmp_path):
    bad = _write(tmp_path / "bad.yaml", {"experiments": {"a": {**EXPERIMENT, "epochs": 0}}})
    refused(invoke("plan", "--configfile", bad), "invalid config", "experiments.a.epochs: 0")


@pytest.mark.workflow
def test_run_passes_its_arguments_to_snakemake_in_order(tmp_path):
    config = {"device": "cpu", "results": str(tmp_path / "results"), "figures": {}}
    path = _write(tmp_path / "tiny.yaml", {**config, "experiments": {"a": EXPERIMENT}})
    target = f"{tmp_path}/results/a/scores.nc"
    res = subprocess.run(
        [sys.executable, "-m", "memorization", "run", target, "--configfile", str(path), "-n"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # it runs the workflow of its own checkout from anywhere
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # options written with `=`, so that Snakemake 9 does not read the target as a config file
    command = next(line for line in out.splitlines() if line.startswith("snakemake "))
    assert {target, f"--configfile={path}", "--cores=2", "-n"} <= set(command.split()[1:])
    assert "rule scores:" in out and "rule dataset:" in out
    assert not (tmp_path / "results").exists()  # a dry run


# --- reading a finished run ----------------------------------------------------------------


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The results folder of the tiny workflow run (shared with test_workflow)."""
    return _tiny().build_tiny(tmp_path_factory) / "results"


@pytest.mark.workflow
def test_claims_prints_the_table(results, tmp_path):
    result = invoke("claims", results)
    assert result.exit_code == 0, result.output
    assert result.output.rstrip("\n") == (results / "claims.md").read_text().rstrip("\n")
    assert result.output.startswith("# The paper's claims on this run")
    readme = _write(tmp_path / "README.md", f"intro\n{README_START}\nold\n{README_END}\nrest\n")
    result = invoke("claims", results, "--readme", readme)
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "\nold\n" not in text and "| figure | claim |" in text and text.endswith("rest\n")
    assert text.startswith(f"intro\n{README_START}\n")
    plain = _write(tmp_path / "plain.md", "no markers\n")
    refused(invoke("claims", results, "--readme", plain), "has no claims markers", README_END)
    # a second table's section with no markers of its own: its end marker is named
    other = invoke("claims", results, "--readme", readme, "--section", "cifar", "--compact")
    refused(other, "has no claims markers", "<!-- claims:end cifar -->")


@pytest.mark.workflow
def test_summary_prints_claims_and_headline_numbers(results):
    result = invoke("summary", results)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("# The paper's claims on this run")
    for exp in ("clean", "noisy", "vgg", "cct"):
        assert f"== {exp}" in out, exp


@pytest.mark.workflow
def test_top_prints_the_most_memorized_examples_and_a_grid(results, tmp_path):
    from PIL import Image

    grid = tmp_path / "top.png"
    result = invoke("top", "noisy", "--results", results, "-n", "12", "--grid", grid)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["rank", "example", "label", "given", "unmuted", "muted",
                                "memorization"]  # fmt: skip
    rows = [line.split() for line in lines[1:13]]
    assert lines[13] == f"image grid: {grid}"
    with xr.open_dataset(results / "noisy/scores.nc", engine="netcdf4") as ds:
        order = np.argsort(-ds["memorization"].values, kind="stable")[:12]
        for rank, (row, pos) in enumerate(zip(rows, order, strict=True), 1):
            assert int(row[0]) == rank and int(row[1]) == int(ds["example"][pos])
            # class names of the digits (0-9): the label trained on and the true one
            assert row[2] == str(int(ds["label"][pos])), row
            assert row[3] == str(int(ds["true_label"][pos])), row
            assert float(row[6]) == pytest.approx(float(ds["memorization"][pos]), abs=1e-4)
    scores = [float(r[6]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert any(r[2] != r[3] for r in rows)  # random labels are among the most memorized
    # 12 examples, 10 a row: a 10 x 2 grid at 150 dpi, 1.1 x 1.35 inches an image
    with Image.open(grid) as img:
        assert img.format == "PNG" and img.size == (1650, 405)
    least = invoke("top", "noisy", "--results", results, "-n", "3", "--least")
    assert least.exit_code == 0 and len(least.output.splitlines()) == 4
    low = [float(line.split()[6]) for line in least.output.splitlines()[1:]]
    assert low == sorted(low) and low[-1] <= scores[-1]


@pytest.mark.workflow
def test_reading_commands_say_what_is_missing(results, tmp_path):
    missing = tmp_path / "nothing"
    refused(invoke("claims", missing), f"{missing}/claims.md does not exist")
    refused(invoke("summary", missing), f"{missing} is not a folder of results")
    refused(invoke("top", "clean", "--results", missing), f"{missing}/clean/scores.nc does not")
    refused(
        invoke("top", "nope", "--results", results),
        f"{results}/nope/scores.nc does not exist",
        "(experiments with scores here: cct, clean, noisy, vgg)",
    )


def test_an_unexpected_error_prints_one_line_not_a_traceback(monkeypatch, capsys, tmp_path):
    from memorization import cli

    def broken(results):
        raise IndexError("index 3 is out of bounds")

    monkeypatch.setattr(cli, "summarize", broken)
    monkeypatch.setattr(sys, "argv", ["memorization", "summary", str(tmp_path)])
    monkeypatch.delenv("MEMORIZATION_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error: IndexError: index 3 is out of bounds" in err and "Traceback" not in err
    monkeypatch.setenv("MEMORIZATION_DEBUG", "1")  # the traceback where asked for
    with pytest.raises(IndexError):
        cli.main()


def test_summary_averages_the_seeds_of_a_study(tmp_path):
    """A study run with several seeds (claim_seeds) has a seed dimension: the summary
    reports the mean, as the figures do."""
    import xarray as xr

    from memorization.report.summary import _mean_of_seeds

    ds = xr.Dataset({"accuracy": (("seed", "epoch"), [[0.2, 0.6], [0.4, 1.0]])})
    ds.attrs["kind"] = "dynamics"
    mean = _mean_of_seeds(ds)
    assert "seed" not in mean.dims and mean.attrs["kind"] == "dynamics"
    assert mean["accuracy"].values.tolist() == pytest.approx([0.3, 0.8])
    assert _mean_of_seeds(mean) is mean
