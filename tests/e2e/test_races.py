"""Two runs at once (``--nolock``) that both need the same missing file: both succeed and the
file stays, because temporary names are unique per writer and no writer removes another
live writer's temporary file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import xarray as xr
import yaml
from helpers import snakemake_command

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[2]


def test_two_nolock_runs_building_the_same_file_both_succeed(tmp_path):
    config = {
        "device": "cpu",
        "experiments": {
            "a": {
                "dataset": "digits",
                "model": "mlp",
                "hidden": 32,
                "seed": 0,
                "epochs": 1,
                "lr": 0.1,
                "batch_size": 64,
            },
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = snakemake_command(
        "--directory",
        str(tmp_path),
        "--configfile",
        str(tmp_path / "config.yaml"),
        "--cores",
        "1",
        "--nolock",
        "results/a/labels.nc",
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = [
        subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    for name in ("data/digits.nc", "a/labels.nc"):
        path = tmp_path / "results" / name
        with xr.open_dataset(path) as ds:
            assert ds.attrs["kind"] in ("dataset", "labels") and ds.sizes["example"] > 0
    leftovers = list((tmp_path / "results").rglob("*.part"))
    assert leftovers == []
