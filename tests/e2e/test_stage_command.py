"""`memorization stage NAME EXP`: one stage outside Snakemake, as its job would run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml
from helpers import snakemake_command

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
TINY = {
    "device": "cpu",
    "threads": 1,
    "experiments": {
        "e": {"dataset": "digits", "model": "mlp", "hidden": 128, "corrupt": 40, "seed": 3,
              "epochs": 1, "lr": 0.1, "batch_size": 64, "subset_size": 20},
    },
}  # fmt: skip


def _run(cmd, cwd):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == 0, f"{cmd} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _stage(cwd, *args):
    cmd = [sys.executable, "-m", "memorization", "stage", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)


@pytest.mark.workflow
def test_the_labels_stage_writes_what_snakemake_writes(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    made = tmp_path / "results" / "e" / "labels.nc"
    config = str(tmp_path / "config.yaml")
    sm = snakemake_command("--directory", str(tmp_path), "--configfile", config, "--cores", "1")
    _run([*sm[:-4], str(made.relative_to(tmp_path)), *sm[-4:]], ROOT)
    with xr.open_dataset(made) as ds:
        by_snakemake = ds.load()
    made.unlink()

    res = _stage(tmp_path, "labels", "e", "--configfile", "config.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "results/e/labels.nc: written" in res.stdout
    with xr.open_dataset(made) as ds:
        by_command = ds.load()
    xr.testing.assert_identical(by_command.drop_attrs(), by_snakemake.drop_attrs())
    for key in ("config", "config_hash", "experiment", "threads", "device", "source_hash"):
        assert by_command.attrs[key] == by_snakemake.attrs[key], key
    # the artifact is the one Snakemake would have made: nothing is left to do
    res = _run([*sm[:-4], str(made.relative_to(tmp_path)), "-n", *sm[-4:]], ROOT)
    assert "Nothing to be done" in res.stdout + res.stderr


@pytest.mark.workflow
def test_unknown_stage_experiment_and_missing_inputs_are_named(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY))
    res = _stage(tmp_path, "labelz", "e", "--configfile", "config.yaml")
    assert res.returncode == 1 and "unknown stage 'labelz'" in res.stderr
    res = _stage(tmp_path, "labels", "nope", "--configfile", "config.yaml")
    assert res.returncode == 1 and "unknown experiment 'nope'" in res.stderr
    res = _stage(tmp_path, "labels", "e", "--configfile", "config.yaml")
    assert res.returncode == 1 and "results/data/digits.nc, not made yet" in res.stderr
    res = _stage(tmp_path, "scores_replicate", "e", "--configfile", "config.yaml")
    assert res.returncode == 1 and "--wildcard rep=N" in res.stderr
