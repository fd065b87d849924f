"""What Snakemake's command line asks of the parse of this Snakefile: to run the jobs, or
only to plan, lint, list or report them.

Read from Snakemake's own state (its ``workflow`` object and the ``argparse`` namespace
its command line parsed, profiles applied), never from the raw ``sys.argv``.
"""

from __future__ import annotations

import sys

__all__ = ["executing", "reporting", "reports_only", "runs_jobs"]


#: Snakemake's parsed options (``argparse`` names) whose command runs no job: each is a
#: branch of its command line that lints, lists, reports, draws or cleans instead
_NO_JOBS = (
    "dryrun lint list_target_rules list_rules print_compilation containerize "
    "generate_unit_tests dag rulegraph filegraph d3dag unlock cleanup_metadata "
    "conda_cleanup_envs conda_create_envs_only list_conda_envs cleanup_shadow "
    "container_cleanup_images list_changes list_input_changes list_params_changes "
    "list_untracked summary detailed_summary archive delete_all_output delete_temp_output"
).split()


def runs_jobs(args) -> bool:
    """Whether Snakemake's parsed command line ``args`` (its ``argparse`` namespace,
    profiles applied) runs the workflow's jobs: not -n, --lint, --list, --summary, a
    report without ``--report-after-run``, ..."""
    if any(getattr(args, name, None) for name in _NO_JOBS):
        return False
    return not reports_only(args)


def reports_only(args) -> bool:
    """Whether ``args`` ask for a report of what has been built instead of a run
    (``--report`` without ``--report-after-run``)."""
    reporting = getattr(args, "report", None) or getattr(args, "reporter", None)
    return bool(reporting and not getattr(args, "report_after_run", False))


def _command_line():
    """The namespace Snakemake's command line parsed (its ``args_to_api`` is parsing this
    Snakefile), or None where Snakemake runs inside another program (its API)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "args_to_api" and (
            frame.f_globals.get("__name__") == "snakemake.cli"
        ):
            return frame.f_locals.get("args")
        frame = frame.f_back
    return None


def executing(workflow) -> bool:
    """Whether the Snakemake process parsing the Snakefile (its ``workflow`` object) runs
    the jobs: its main process, not a dry run (Snakemake's own ``--dry-run``, from the
    command line or a profile), and its command line runs jobs (:func:`runs_jobs`).
    False where Snakemake runs inside another program (its API) or a job's process."""
    if not workflow.is_main_process or workflow.output_settings.dryrun:
        return False
    args = _command_line()
    return args is not None and runs_jobs(args)


def reporting(workflow) -> bool:
    """Whether the Snakemake process parsing the Snakefile only writes a report
    (:func:`reports_only`): its targets are then what has been built, never a missing
    file. False in a job's process and where Snakemake runs inside another program."""
    if not workflow.is_main_process:
        return False
    args = _command_line()
    return args is not None and reports_only(args)
