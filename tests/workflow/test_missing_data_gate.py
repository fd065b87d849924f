"""A built-in torchvision dataset absent from ``data_root`` with ``download: false``:
a run that executes jobs is refused before any job, while a dry run still plans."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, snakemake_command

from memorization.data.sources.builtin import missing_data

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _config(tmp_path: Path) -> dict:
    (tmp_path / "empty").mkdir(exist_ok=True)
    exp = {"dataset": "mnist", "model": "mlp", "hidden": 64, "seed": 0, "epochs": 1}
    exp |= {"lr": 0.1, "batch_size": 64}
    return {
        "results": str(tmp_path / "results"),
        "data_root": str(tmp_path / "empty"),
        "download": False,
        "device": "cpu",
        "threads": 1,
        "experiments": {"m": exp},
    }


def _snakemake(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path)))
    cmd = snakemake_command("--directory", str(tmp_path), "--configfile", str(cfg), *args)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=600)


def test_missing_data_names_only_builtin_datasets_without_their_files(tmp_path):
    cfg = {"data_root": str(tmp_path), "datasets": {"own": {"source": "arrays"}}}
    found = missing_data(cfg, ["mnist", "own", "digits"])  # digits: scikit-learn's, no files
    assert len(found) == 1, found
    assert found[0].startswith("dataset 'mnist' is not under data_root=")
    assert str(tmp_path) in found[0] and "download: true" in found[0]


@pytest.mark.workflow
def test_a_real_run_is_refused_before_any_job_and_a_dry_run_plans(tmp_path):
    dry = _snakemake(tmp_path, "-n", "--cores", "1")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "scores" in dry.stdout + dry.stderr  # it planned the training jobs
    run = _snakemake(tmp_path, "--cores", "1")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    assert "dataset 'mnist' is not under data_root=" in out, out[-3000:]
    assert str(tmp_path / "empty") in out and "set download: true" in out
    assert "rule dataset" not in out and "jobid" not in out  # no job started
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert written == [], written
