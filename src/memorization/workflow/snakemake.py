"""The workflow's glue to Snakemake: what the rules take from the registry, and the one
adapter every ``script:`` job runs.

The rules in ``rules/*.smk`` stay explicit (one rule per stage, its inputs written
out), and take from :class:`Rules` their output path, log and benchmark, their
``params`` (the stage's config slice, the slices its inputs must have been made
from, the experiment's name) and their ``resources``. Every rule runs
``scripts/stage.py``, which calls :func:`run_from_snakemake`: the rule's name is the
stage's name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from .config import WorkflowConfig
from .context import StageContext
from .execution import Execution
from .registry import STAGES, Paths, Stage, stage
from .resources import mem_mb, runtime_minutes

__all__ = ["Rules", "check_code", "run_from_snakemake"]

log = logging.getLogger(__name__)


class Rules:
    """What each rule takes from the registry, for one parsed config."""

    def __init__(self, config: WorkflowConfig) -> None:
        self.config = config
        self.paths = Paths(config.results, config.experiments)

    def out(self, name: str, output: str | None = None) -> str:
        return self.paths.pattern(name, output)

    def _named(self, name: str, folder: str, suffix: str) -> str:
        path = stage(name).path.rsplit(".", 1)[0]
        return f"{self.config.results}/{folder}/{path}{suffix}"

    def log(self, name: str) -> str:
        return self._named(name, "logs", ".log")

    def benchmark(self, name: str) -> str:
        return self._named(name, "benchmarks", ".tsv")

    def slice_params(self, name: str, wildcards) -> dict:
        record = stage(name)
        if record.slice is None:
            return {}
        if record.scope == "dataset":
            return record.slice(self.config.datasets[wildcards.dataset]).params()
        exp = self.config.experiments[wildcards.exp]
        return record.slice_of(exp, **_ints(wildcards, record)).params()

    def expected(self, name: str, wildcards, inputs: Mapping[str, object]) -> dict:
        """For every input that is a stage's artifact, the slice it must have been made from."""
        out = {}
        exp = self.config.experiments.get(getattr(wildcards, "exp", None))
        for key in inputs:
            record = STAGES.get(key)
            if record is None or record.scope == "run":
                continue
            if record.scope == "dataset":
                out[key] = record.slice(exp.dataset).params()
            elif record.wildcards and not set(record.wildcards) <= set(wildcards.keys()):
                out[key] = [record.slice_of(exp, **w).params() for w in record.expand(exp)]
            else:
                out[key] = record.slice_of(exp, **_ints(wildcards, record)).params()
        return out

    def params(self, name: str, *inputs: str) -> dict:
        """``params:`` of an experiment's (or a dataset's) stage rule."""
        return {
            "slice": lambda wc: self.slice_params(name, wc),
            "expect": lambda wc: self.expected(name, wc, dict.fromkeys(inputs)),
            "experiment": lambda wc: getattr(wc, "exp", ""),
        }

    def resources(self, name: str) -> dict:
        """``resources:`` of a training rule: a GPU (unless ``device: cpu`` or the job
        only merges), its wall time and host memory estimated from its passes, and the
        CPUs a cluster gives it (the config's threads)."""
        record = stage(name)
        device, threads = self.config.device, self.config.threads

        def passes(wc):
            return record.passes(self.config.experiments[wc.exp])

        def gpu(wc):
            return 0 if device == "cpu" or not passes(wc) else 1

        def runtime(wc, attempt):
            exp = self.config.experiments[wc.exp]
            return runtime_minutes(passes(wc), exp, device=device, threads=threads, attempt=attempt)

        def memory(wc, attempt):
            exp = self.config.experiments[wc.exp]
            return mem_mb(passes(wc), exp, device=device, attempt=attempt)

        # cpus_per_task: the config's threads, not the job's `threads` (which --cores caps,
        # even in a cluster dry run)
        return {"gpu": gpu, "runtime": runtime, "mem_mb": memory, "cpus_per_task": threads}


def _ints(wildcards, record: Stage) -> dict:
    return {k: int(getattr(wildcards, k)) for k in record.wildcards}


# --- the script adapter ----------------------------------------------------------------------


def check_code(workflow_src: str | os.PathLike) -> None:
    """Refuse to run a job with another checkout's library than its workflow's own."""
    running = Path(__file__).resolve().parents[1]  # the package this module belongs to
    own = Path(workflow_src).resolve() / "memorization"
    if running != own:
        print(
            f"this job imported the memorization library from {running}, but its workflow's "
            f"own library is {own}: a virtual environment with another checkout installed "
            "(pip install -e) comes first on the path. Run the workflow with that checkout, or "
            f"reinstall this one (pip install -e {own.parents[1]})",
            file=sys.stderr,
        )
        raise SystemExit(1)


def context(smk) -> StageContext:
    """The :class:`StageContext` of a Snakemake ``script:`` job."""
    outputs = dict(smk.output.items())
    params = dict(smk.params.items())
    return StageContext(
        stage=smk.rule,
        output=outputs.pop("output"),
        params=params.get("slice", {}),
        inputs={k: v if isinstance(v, str) else list(v) for k, v in smk.input.items()},
        expect=params.get("expect", {}),
        experiment=params.get("experiment", ""),
        execution=Execution.from_config(smk.config),
        outputs=outputs,
    )


@contextlib.contextmanager
def _logging_to(path: str | None):
    """Send logging, stdout and stderr (progress bars) to the rule's log file."""
    if not path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        yield sys.stderr
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.stderr
    # append: a resumed run keeps the log of the run that was killed
    with open(path, "a", buffering=1) as fh:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        root = logging.getLogger()
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        # warnings (e.g. a resumed checkpoint made with other threads) reach the terminal too
        loud = logging.StreamHandler(terminal)
        loud.setLevel(logging.WARNING)
        loud.setFormatter(logging.Formatter(f"{Path(path).stem}: warning: %(message)s"))
        root.addHandler(handler)
        root.addHandler(loud)
        root.setLevel(logging.INFO)
        try:
            yield terminal
        finally:
            root.removeHandler(handler)
            root.removeHandler(loud)
            sys.stdout, sys.stderr = old_out, old_err


def run_from_snakemake(smk) -> None:
    """Run the stage named by the rule, with a ``script:`` job's input/output/params.

    A failure prints one line naming the stage, the problem and the log to the
    terminal and exits with status 1; the traceback goes to the log. A signal
    (SIGTERM, SIGINT) ends the job as it would have, after its checkpoint.
    """
    log_path = smk.log[0] if len(smk.log) else None
    with _logging_to(log_path) as terminal:
        log.info("stage %s started (pid %d)", smk.rule, os.getpid())
        ctx = context(smk)
        if ctx.execution.threads > smk.threads:
            _warn_threads(smk.threads, ctx.execution.threads)
        try:
            stage(smk.rule).run(ctx)
        except (KeyboardInterrupt, SystemExit) as stop:
            log.info("stage stopped (%s); rerun to resume", type(stop).__name__)
            print(f"{smk.rule} stopped ({type(stop).__name__}); run again to resume", file=terminal)
            if isinstance(stop, KeyboardInterrupt):  # the status of SIGINT, no traceback
                raise SystemExit(130) from None
            raise
        except Exception as err:  # noqa: BLE001 - every failure: its message, not a traceback
            log.info("stage failed:\n%s", traceback.format_exc())
            where = f" (traceback in {log_path})" if log_path else ""
            print(f"{smk.rule} failed: {err}{where}", file=terminal)
            raise SystemExit(1) from None


def _warn_threads(given: int, wanted: int) -> None:
    log.warning(
        "Snakemake gave this job %d thread(s) (--cores caps it) but the config asks for "
        "threads: %d; using %d so that the results do not depend on --cores",
        given,
        wanted,
        wanted,
    )
