"""The claims table names the estimate that drew an experiment's subsets, read from the
subsets artifacts its rule gives as inputs, never from files found beside the scores."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import xarray as xr
import yaml
from helpers import snakemake_command

from memorization.method.subsets import easy_difficult
from memorization.report.stages import claims
from memorization.workflow.context import StageContext
from memorization.workflow.stages.scores import subsets_schema


def _subsets(path, experiment: str, subsets_from: str | None) -> str:
    values = xr.DataArray(np.arange(10.0), dims="example", coords={"example": np.arange(10)})
    ctx = StageContext("subsets", str(path), experiment=experiment)
    extra = {"subsets_from": subsets_from} if subsets_from else {}
    ctx.write(easy_difficult(values, 3), subsets_schema(), **extra)
    return str(path)


def _claims(tmp_path, inputs: dict) -> str:
    out = tmp_path / "claims.md"
    ctx = StageContext(
        "claims", str(out), inputs=inputs, outputs={"json": str(tmp_path / "claims.json")}
    )
    claims(ctx)
    return out.read_text()


def test_the_claims_name_the_estimate_of_the_subsets_they_are_given(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    drawn = _subsets(tmp_path / "a" / "subsets.nc", "a", "cumulative_loss")
    own = _subsets(tmp_path / "b" / "subsets.nc", "b", None)  # the turn-over score's
    table = _claims(tmp_path, {"subsets": [drawn, own]})
    assert "Easy and difficult subsets drawn from the estimate" in table
    assert "a: cumulative_loss" in table and "b:" not in table


@pytest.mark.workflow
def test_a_run_with_subsets_from_names_the_estimate_in_its_claims(tmp_path):
    config = {
        "device": "cpu",
        "threads": 1,
        "experiments": {
            "a": {"dataset": "digits", "model": "mlp", "hidden": 64, "seed": 0, "epochs": 2,
                  "lr": 0.1, "batch_size": 64, "subset_size": 100,
                  "subsets_from": "cumulative_loss"},
        },
        "figures": {"fig3": {"experiment": "a"}},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    res = subprocess.run(
        snakemake_command("results/claims.md", "--cores", "1", "--configfile", "config.yaml"),
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    table = (tmp_path / "results" / "claims.md").read_text()
    assert (
        "Easy and difficult subsets drawn from the estimate (estimates.nc) a: cumulative_loss"
        in table
    )
    with xr.open_dataset(tmp_path / "results" / "a" / "subsets.nc") as ds:
        assert ds.attrs["subsets_from"] == "cumulative_loss"
