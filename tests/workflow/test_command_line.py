"""What Snakemake's command line asks of the Snakefile's parse: a real run records the
results folder's owner; a dry run, lint, list or report records nothing; a report alone
targets only what has been built."""

from __future__ import annotations

from types import SimpleNamespace

from memorization.workflow.command_line import executing, reporting, reports_only, runs_jobs


def _parsed(*argv: str):
    """Snakemake's own parse of a command line (its profiles applied)."""
    from snakemake.cli import parse_args

    return parse_args(["--cores", "1", "--workflow-profile", "none", *argv])[1]


def _workflow(main=True, dryrun=False):
    return SimpleNamespace(is_main_process=main, output_settings=SimpleNamespace(dryrun=dryrun))


def test_only_real_runs_record_the_owner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runs_jobs(_parsed("results/fig2.pdf"))
    assert runs_jobs(_parsed("--report-after-run", "--report", "r.html"))
    for argv in (
        ["-n"], ["-np"], ["--dry-run"], ["--lint"], ["--list"], ["--summary"], ["-D"],
        ["--report", "r.html"], ["--dag"], ["--unlock"], ["--list-changes", "code"],
    ):  # fmt: skip
        assert not runs_jobs(_parsed(*argv)), argv
    # a profile's dry run: the command line itself says nothing of it
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof/config.yaml").write_text("dryrun: true\n")
    assert not runs_jobs(_parsed("--profile", str(tmp_path / "prof")))
    # the Snakefile asks the workflow object while Snakemake's command line parses it
    here = {"__name__": "snakemake.cli", "executing": executing}
    exec("def args_to_api(args, workflow):\n    return executing(workflow)\n", here)
    assert here["args_to_api"](_parsed(), _workflow())
    assert not here["args_to_api"](_parsed("--lint"), _workflow())
    assert not here["args_to_api"](_parsed(), _workflow(dryrun=True))  # Snakemake's API: -n
    assert not here["args_to_api"](_parsed(), _workflow(main=False))  # a job's own process
    # Snakemake's API inside another program (this test): its command line is not Snakemake's
    assert not executing(_workflow())


def test_a_report_alone_targets_only_what_has_been_built():
    """``--report`` documents what exists; ``--report-after-run`` runs first (its targets
    are every figure, built or not); read from Snakemake's parse, profiles applied."""
    assert reports_only(_parsed("--report", "r.html"))
    assert not reports_only(_parsed("--report-after-run", "--report", "r.html"))
    assert not reports_only(_parsed("results/fig2.pdf"))
    here = {"__name__": "snakemake.cli", "reporting": reporting}
    exec("def args_to_api(args, workflow):\n    return reporting(workflow)\n", here)
    assert here["args_to_api"](_parsed("--report", "r.html"), _workflow())
    assert not here["args_to_api"](_parsed("--report", "r.html"), _workflow(main=False))
    assert not here["args_to_api"](_parsed(), _workflow())
    assert not reporting(_workflow())  # Snakemake inside another program
