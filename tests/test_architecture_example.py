"""ARCHITECTURE.md's worked example adds a stage with its own training by touching four
source files; applied to a copy of the workflow, it runs and draws its figure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "ARCHITECTURE.md").read_text()
BLOCK = r"<!-- (example(?:-insert|-append)?): (\S+)(?: before: (.*?))? -->\n```[a-z]*\n(.*?)```"


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


def test_the_worked_example_adds_a_stage_in_four_source_files(tmp_path):
    copy = tmp_path / "workflow"
    for part in ("src", "rules", "scripts", "config", "report", "envs"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Snakefile", copy / "Snakefile")
    touched = _apply(copy)
    assert len(touched) == 4, touched
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
