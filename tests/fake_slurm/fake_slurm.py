"""A fake SLURM for tests: sbatch, srun, squeue, sacct, scontrol and sinfo on one machine.

Each command of this folder is a two-line shell script that runs this file with its
own name. Every call is appended to ``$FAKE_SLURM_STATE/calls.jsonl`` (command and
arguments). ``sbatch`` runs the ``--wrap`` command to completion before it answers
with the job id (so the executor plugin finds every job finished at its first status
query), in the ``-D`` folder, with ``--output`` as its log and the ``SLURM_*``
variables a job sees; ``squeue``/``sacct`` report the jobs' states by job name;
``srun`` drops its options and runs the command.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_STATE", "/tmp/fake_slurm"))


@contextmanager
def _locked():
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _record(command: str, argv: list[str]) -> None:
    with _locked(), open(STATE / "calls.jsonl", "a") as fh:
        fh.write(json.dumps({"command": command, "argv": argv}) + "\n")


def _options(argv: list[str]) -> dict[str, str]:
    """``--key value``, ``--key=value`` and ``-k value`` pairs; flags map to ''."""
    out: dict[str, str] = {}
    takes_value = {
        *("--job-name", "--output", "--comment", "-A", "-p", "-t", "--mem", "-D", "-C"),
        *("--name", "--clusters", "--starttime", "--endtime", "-j", "-o", "-u"),
    }
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            out[key] = value
        elif arg in takes_value and i + 1 < len(argv):
            out[arg] = argv[i + 1]
            i += 1
        else:
            out[arg] = ""
        i += 1
    return out


def _jobs() -> dict[str, dict]:
    jobs = {}
    for path in sorted((STATE / "jobs").glob("*.json")):
        jobs[path.stem] = json.loads(path.read_text())
    return jobs


def _set_job(job_id: str, **fields) -> None:
    path = STATE / "jobs" / f"{job_id}.json"
    with _locked():
        job = json.loads(path.read_text()) if path.exists() else {}
        job.update(fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(job))


def _new_job_id() -> str:
    with _locked():
        counter = STATE / "last_job_id"
        job_id = int(counter.read_text()) + 1 if counter.exists() else 1000
        counter.write_text(str(job_id))
    return str(job_id)


def sbatch(argv: list[str]) -> int:
    opts = _options(argv)
    if "--wrap" not in opts:
        print("fake sbatch: only --wrap jobs are supported", file=sys.stderr)
        return 1
    job_id = _new_job_id()
    name = opts.get("--job-name", "")
    _set_job(job_id, name=name, state="RUNNING")
    env = dict(os.environ)
    env.update(
        SLURM_JOB_ID=job_id,
        SLURM_JOBID=job_id,
        SLURM_JOB_NAME=name,
        SLURM_CPUS_PER_TASK=opts.get("--cpus-per-task", "1"),
    )
    if opts.get("--gpus"):
        env["SLURM_GPUS"] = opts["--gpus"]
    log = Path(opts.get("--output", f"slurm-{job_id}.out").replace("%j", job_id))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        rc = subprocess.call(
            ["/bin/sh", "-c", opts["--wrap"]],
            cwd=opts.get("-D") or None,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    _set_job(job_id, state="COMPLETED" if rc == 0 else "FAILED", exit_code=rc)
    print(job_id)
    return 0


def _states_by_name(argv: list[str]) -> int:
    opts = _options(argv)
    name = opts.get("--name")
    for job_id, job in _jobs().items():
        if name is None or job["name"] == name:
            print(f"{job_id}|{job['state']}")
    return 0


def squeue(argv: list[str]) -> int:
    return _states_by_name(argv)


def sacct(argv: list[str]) -> int:
    opts = _options(argv)
    if "--name" in opts:  # the plugin's status query
        return _states_by_name(argv)
    if "-j" in opts and "--format" not in opts:  # the node of a failed job
        print("fakenode")
    return 0  # anything else (the account guess): no answer


def scontrol(argv: list[str]) -> int:
    if argv[:2] == ["show", "config"]:
        print("MinJobAge               = 300 sec")
        print("MaxArraySize            = 1001")
    return 0


def sinfo(argv: list[str]) -> int:
    print("PARTITION")
    print("cpu*")
    print("gpu")
    return 0


def srun(argv: list[str]) -> int:
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 1
    command = argv[i:]
    if not command:
        print("fake srun: no command", file=sys.stderr)
        return 1
    os.execvp(command[0], command)


COMMANDS = {f.__name__: f for f in (sbatch, squeue, sacct, scontrol, sinfo, srun)}


def main() -> int:
    command, argv = sys.argv[1], sys.argv[2:]
    _record(command, argv)
    return COMMANDS[command](argv)


if __name__ == "__main__":
    sys.exit(main())
