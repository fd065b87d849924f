"""``memorization plan``'s CPU estimates stay within their stated band of measured job
times: the estimates are recomputed (nothing is timed here) and compared with the
seconds recorded in :mod:`memorization.workflow.calibration`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from memorization.data.examples import write_examples
from memorization.workflow.calibration import BAND, MEASURED, band_text
from memorization.workflow.check import check
from memorization.workflow.config import WorkflowConfig, load_yaml
from memorization.workflow.plan import JOB_START_SECONDS
from memorization.workflow.registry import STAGES
from memorization.workflow.resources import compute_seconds

ROOT = Path(__file__).resolve().parents[2]
STATED = 2.0
"""The factor the estimate of every recorded job stays within, either way."""


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("examples")
    write_examples(folder)
    return folder


def _ratio(measurement, examples: Path) -> float:
    config = load_yaml(str(ROOT / measurement.configfile))
    for entry in config.get("datasets", {}).values():
        entry["path"] = str(examples / Path(entry["path"]).name)
    errors, infos = check(config)
    assert not errors, errors
    parsed = WorkflowConfig.from_config(config, infos)
    exp = parsed.experiments[measurement.experiment]
    passes = STAGES[measurement.stage].passes(exp)
    seconds = compute_seconds(passes, exp, device="cpu", threads=parsed.threads)
    return (seconds + JOB_START_SECONDS) / measurement.seconds


def test_the_estimates_of_measured_jobs_stay_in_the_stated_band(examples):
    ratios = {m.experiment: _ratio(m, examples) for m in MEASURED}
    low, high = BAND
    for name, ratio in ratios.items():
        assert 1 / STATED <= ratio <= STATED, (name, ratio)
    # the band plan prints is the one of today's estimates (rounded out to a tenth)
    assert math.floor(round(min(ratios.values()) * 10, 2)) / 10 == low, ratios
    assert math.ceil(round(max(ratios.values()) * 10, 2)) / 10 == high, ratios


def test_plan_says_its_band_and_on_what_hardware():
    text = band_text()
    assert f"{BAND[0]:.1f}-{BAND[1]:.1f}x" in text
    assert f"{len(MEASURED)} training jobs" in text and "AMD EPYC" in text
