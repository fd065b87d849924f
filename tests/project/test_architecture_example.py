"""ARCHITECTURE.md's worked example adds a stage with its own training by touching eight
files (six by hand, two generated); applied to a copy of the repository, the structure,
schema and reference tests pass on it, and it runs and draws its figure."""

from __future__ import annotations

import filecmp
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import changed_files

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "ARCHITECTURE.md").read_text()
BLOCK = r"<!-- (example(?:-insert|-append)?): (\S+)(?: before: (.*?))? -->\n```[a-z]*\n(.*?)```"
RUN = r"<!-- example-run -->\n```[a-z]*\n(.*?)```"
#: what is copied: the workflow, and what the structure, schema and reference tests read
PARTS = ("src", "rules", "scripts", "config", "report", "envs", "profiles", "docs")
FILES = ("Snakefile", "pyproject.toml")
#: the tests that notice a file the example misses (the profile's entry, a stale schema
#: or reference, a figure's declaration or drawing), run on the copy
CHECKS = (
    "tests/project/test_structure.py",
    "tests/project/test_cli.py::test_schema_is_the_generated_file",
    "tests/project/test_docs.py::test_reference_is_what_the_generator_writes",
    "tests/project/test_docs.py::test_reference_lists_every_option",
    "tests/report/test_figures.py::test_every_declared_figure_is_drawn_and_every_drawing_declared",
)


def _apply(copy: Path) -> set[str]:
    touched = set()
    for kind, rel, anchor, code in re.findall(BLOCK, DOC, flags=re.S):
        target = copy / rel
        touched.add(rel)
        if kind == "example":
            assert not target.exists(), f"{rel} is meant to be a new file"
            target.write_text(code)
        elif kind == "example-append":
            target.write_text(target.read_text() + "\n\n" + code)
        else:
            text = target.read_text()
            at = text.index(anchor)
            line = text.rfind("\n", 0, at) + 1
            target.write_text(text[:line] + code + text[line:])
    return touched


def _generate(copy: Path, env: dict) -> None:
    """Run the example's commands for the generated files with the copy's library."""
    (block,) = re.findall(RUN, DOC, flags=re.S)
    for line in block.splitlines():
        program, *args = shlex.split(line)
        command = {
            "memorization": [sys.executable, "-m", "memorization"],
            "python": [sys.executable],
        }
        res = subprocess.run(
            [*command[program], *args], cwd=copy, capture_output=True, text=True, env=env
        )  # fmt: skip
        assert res.returncode == 0, (line, res.stderr[-3000:])


def _changed(copy: Path) -> set[str]:
    """The files of the copy that differ from (or are not in) the repository."""
    out = changed_files(copy, ROOT, PARTS)
    return out | {f for f in FILES if not filecmp.cmp(copy / f, ROOT / f, shallow=False)}


def test_the_worked_example_adds_a_stage_in_eight_files(tmp_path):
    copy = tmp_path / "workflow"
    for part in PARTS:
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in FILES:
        shutil.copy(ROOT / name, copy / name)
    for rel in ("tests/conftest.py", "tests/helpers.py", *{c.split("::")[0] for c in CHECKS}):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, copy / rel)
    by_hand = _apply(copy)
    assert len(by_hand) == 6, by_hand
    # the copy's library first on the path (the installed one is the repository's)
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    _generate(copy, env)
    changed = _changed(copy)
    assert changed == by_hand | {"config/schema/config.schema.yaml", "docs/reference.md"}
    assert len(changed) == 8, changed
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *CHECKS],
        cwd=copy, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    config = {
        "device": "cpu",
        "experiments": {
            "tiny": {"dataset": "digits", "model": "mlp", "hidden": 64, "seed": 0,
                     "epochs": 4, "lr": 0.1, "batch_size": 64, "subset_size": 100},
        },
        "figures": {"learning": {"experiment": "tiny"}},
    }  # fmt: skip
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config.yaml"],
        cwd=copy, capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert (copy / "results" / "learning.pdf").stat().st_size > 1000
    claims = json.loads((copy / "results" / "claims" / "learning.json").read_text())
    assert [c["key"] for c in claims] == ["easy_learnt_first"]
    assert claims[0]["effect"] > 0 and claims[0]["low"] <= claims[0]["effect"] <= claims[0]["high"]
    assert claims[0]["verdict"] in ("supported", "inconclusive", "not supported")
    import xarray as xr

    with xr.open_dataset(copy / "results" / "tiny" / "learning_time.nc") as ds:
        assert ds.attrs["kind"] == "learning_time"
        assert ds["learning_time"].attrs["long_name"].startswith("first epoch")
        assert int(ds["learning_time"].max()) <= 5 and len(ds["example"]) == 1437
