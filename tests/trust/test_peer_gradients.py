"""Peers without per-example gradient records (``peer_gradients: false``): the plain runs
record losses and correctness only, every peer but TracIn, and every consumer copes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from memorization.data.tensors import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import SCORE_FORMS
from memorization.report.figures.validation import claims as validation_claims
from memorization.trust.peers import (
    GRADIENT_PEER_NAMES,
    PEER_NAMES,
    peer_estimates,
    peers_over_runs,
    record_plain_run,
)
from memorization.trust.validation import Runs, estimator_table
from memorization.workflow.artifacts import open_artifact
from memorization.workflow.check import ConfigError, check_config, validate_config
from memorization.workflow.context import StageContext
from memorization.workflow.execution import Execution
from memorization.workflow.provenance import slice_hash
from memorization.workflow.registry import STAGES
from memorization.workflow.resources import compute_seconds
from memorization.workflow.slices import StudySlice
from memorization.workflow.specs import Experiment
from memorization.workflow.stages import estimates as est
from memorization.workflow.stages import trust
from memorization.workflow.stages.scores import subsets_slice

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
BASE = DEFAULT["experiments"]["mnist_mlp"]
N = 40
LOSS_PEERS = [name for name in PEER_NAMES if name not in GRADIENT_PEER_NAMES]
MODEL = ModelSpec.from_config("mlp", {"hidden": 16}).with_classes(3)
OPT = OptimSpec(epochs=3, lr=0.3, batch_size=16)


@pytest.fixture(scope="module")
def tiny() -> TensorSplit:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 1, 1, 6, generator=g)
    return TensorSplit(x, torch.randint(0, 3, (N,), generator=g), np.arange(100, 100 + N))


def test_tracin_is_the_only_gradient_peer():
    assert GRADIENT_PEER_NAMES == ("tracin_self_influence",)
    assert "cumulative_loss" in LOSS_PEERS and len(LOSS_PEERS) == len(PEER_NAMES) - 1


# --- the records and the peers ----------------------------------------------------------------


def test_records_without_gradients_hold_no_gradient_norms(tiny):
    net = MODEL.build((1, 1, 6), turnover=False, seed=0)
    records = record_plain_run(net, tiny, OPT, seed=0, gradients=False)
    assert "grad_sq_norm" not in records
    assert records["loss"].shape == (3, N) and records["correct"].shape == (3, N)
    assert records.attrs["loss_record_seconds"] == records.attrs["record_seconds"]


@pytest.mark.parametrize("runs", [1, 2])
def test_loss_peers_are_exactly_those_of_the_gradient_records(tiny, runs):
    """Same seeds, same training: every loss-based peer and record is bit-identical; TracIn
    and the gradient norms are absent and the attributes say so."""
    full = peers_over_runs(MODEL, tiny, OPT, 7, runs=runs)
    lean = peers_over_runs(MODEL, tiny, OPT, 7, runs=runs, gradients=False)
    for name in (*LOSS_PEERS, "loss", "correct", "accuracy", "lr"):
        np.testing.assert_array_equal(lean[name].values, full[name].values, err_msg=name)
    assert "tracin_self_influence" in full and "grad_sq_norm" in full
    assert "tracin_self_influence" not in lean and "grad_sq_norm" not in lean
    assert list(lean.attrs["estimators"]) == LOSS_PEERS
    assert lean.attrs["peer_gradients"] == 0
    assert list(lean.attrs["peers_without_gradients"]) == ["tracin_self_influence"]
    # the default artifact is as it always was: no attribute of the option
    assert "peer_gradients" not in full.attrs and "peers_without_gradients" not in full.attrs
    assert list(full.attrs["estimators"]) == list(PEER_NAMES)


# --- the slice, the passes and the plan ---------------------------------------------------------


def test_the_option_enters_the_peers_slice_only_when_false():
    default = Experiment.from_config("a", BASE)
    given = Experiment.from_config("a", {**BASE, "peer_gradients": True})
    lean = Experiment.from_config("a", {**BASE, "peer_gradients": False})
    assert default.peer_gradients and given.peer_gradients and not lean.peer_gradients
    peers = STAGES["peers"]
    before = StudySlice(default.dataset, default.labels, default.model, default.optim).params()
    assert peers.slice_of(default).params() == before  # the slice made before the option
    assert peers.slice_of(given).params() == before
    assert "gradients" not in before
    params = peers.slice_of(lean).params()
    assert params["gradients"] is False
    assert StudySlice.from_params(params).gradients is False
    assert slice_hash(params) != slice_hash(before)
    # the estimates (which collect the peers) follow; the turn-over scores do not
    for stage in ("estimates",):
        assert slice_hash(STAGES[stage].slice_of(default).params()) != slice_hash(
            STAGES[stage].slice_of(lean).params()
        )
    assert STAGES["scores"].slice_of(default).params() == STAGES["scores"].slice_of(lean).params()
    # subsets drawn from a peer depend on it; the turn-over subsets do not
    drawn = {**BASE, "subset_size": 100, "subsets_from": "cumulative_loss"}
    a = subsets_slice(Experiment.from_config("a", drawn)).params()
    b = subsets_slice(Experiment.from_config("a", {**drawn, "peer_gradients": False})).params()
    assert slice_hash(a) != slice_hash(b)
    plain = {**BASE, "subset_size": 100}
    assert (
        subsets_slice(Experiment.from_config("a", plain)).params()
        == subsets_slice(Experiment.from_config("a", {**plain, "peer_gradients": False})).params()
    )


def test_passes_and_plan_charge_no_gradient_records_when_false():
    default = Experiment.from_config("a", {**BASE, "peer_runs": 2})
    lean = Experiment.from_config("a", {**BASE, "peer_runs": 2, "peer_gradients": False})
    full, cheap = trust.peers_passes(default), trust.peers_passes(lean)
    assert len(full) == len(cheap) == 4
    assert any(p.per_example for p in full) and not any(p.per_example for p in cheap)
    assert full[0] == cheap[0]  # the same plain training
    assert cheap[1].cost == 1.0 and full[1].cost > 3.0  # a forward pass, not the gradients
    slow = compute_seconds(full, default, device="cpu", threads=2)
    fast = compute_seconds(cheap, lean, device="cpu", threads=2)
    assert fast < slow


# --- the artifact, the estimates, the validation --------------------------------------------------


def _peers_stage(tmp_path, monkeypatch, tiny, exp: Experiment, name: str) -> xr.Dataset:
    """The peers stage of ``exp`` on the tiny split (its data loading replaced)."""
    data = xr.Dataset(coords={"class": np.arange(3)})
    monkeypatch.setattr(trust, "load_split", lambda ctx, model=None: (data, None, tiny))
    out = tmp_path / f"{name}.nc"
    ctx = StageContext(
        "peers",
        str(out),
        params=STAGES["peers"].slice_of(exp).params(),
        execution=Execution(device="cpu", threads=1),
    )
    trust.peers(ctx)
    return open_artifact(out, "peers")


def test_the_peers_artifact_and_the_estimates_lack_tracin(tmp_path, monkeypatch, tiny):
    small = {**BASE, "hidden": 16, "epochs": 3, "lr": 0.3, "batch_size": 16}
    lean_exp = Experiment.from_config("a", {**small, "peer_gradients": False})
    lean = _peers_stage(tmp_path, monkeypatch, tiny, lean_exp, "lean")
    full = _peers_stage(tmp_path, monkeypatch, tiny, Experiment.from_config("a", small), "full")
    assert "tracin_self_influence" not in lean and "grad_sq_norm" not in lean
    assert lean.attrs["peer_gradients"] == 0
    assert "tracin_self_influence" in lean.attrs["peers_without_gradients"]
    assert "peer_gradients" not in full.attrs and "tracin_self_influence" in full
    for name in LOSS_PEERS:
        np.testing.assert_array_equal(lean[name].values, full[name].values, err_msg=name)
        assert lean[name].attrs["long_name"] == full[name].attrs["long_name"]
    # the estimates collect the peers that are there
    scores = xr.Dataset(
        {"memorization": ("example", np.linspace(0, 1, N), {"long_name": "m", "units": "1"})},
        coords={"example": tiny.examples},
        attrs={"train_seconds": 1.0},
    )
    out = est.collect_estimates(scores, lean)
    assert "tracin_self_influence" not in out
    assert [n for n in out.data_vars if out[n].attrs["family"] == "peer"] == LOSS_PEERS
    assert set(out.data_vars) <= set(est.estimate_names(peer_gradients=False))
    # without a measured plain run: the operation counts; each peer pays the records it
    # reads, so the gradient records (where they were made) are charged to TracIn alone
    lean.attrs.pop("train_seconds_per_run")
    full.attrs.pop("train_seconds_per_run")
    cheap = est.collect_estimates(scores, lean)["cumulative_loss"].attrs
    counted = est.collect_estimates(scores, full)
    same = counted["cumulative_loss"].attrs
    assert cheap["cost_basis"] == same["cost_basis"] == "operations"
    assert cheap["cost_runs"] == same["cost_runs"] == pytest.approx((3 + 1) / 3, rel=1e-3)
    assert counted["tracin_self_influence"].attrs["cost_runs"] > 2


def test_validation_and_its_claims_without_tracin():
    rng = np.random.default_rng(0)
    n = 200
    mem = np.where(rng.random(n) < 0.15, rng.uniform(0.3, 1, n), rng.uniform(-0.05, 0.2, n))
    examples = np.arange(n)
    label = examples % 10
    scores = xr.Dataset(
        {
            "label": ("example", label),
            "mislabeled": ("example", np.zeros(n, bool)),
            "pred_unmuted": (("replicate", "example"), label[None]),
            "replicate_seconds": ("replicate", [10.0]),
        },
        coords={"example": examples, "replicate": [0]},
    )
    for var in SCORE_FORMS.values():
        scores[f"{var}_by_replicate"] = (("replicate", "example"), mem[None])
        scores[var] = ("example", mem)
    peers = xr.Dataset(
        {name: ("example", mem + rng.normal(0, 0.3, n)) for name in LOSS_PEERS},
        coords={"example": examples},
        attrs={"seconds": 5.0, "peer_gradients": 0},
    )
    peers["correct"] = (("epoch", "example"), np.ones((2, n), bool))
    truth = xr.Dataset(
        {"memorization": ("example", mem), "memorization_half": (("half", "example"), [mem, mem])},
        coords={"example": examples},
        attrs={"n_models_merged": 40, "fraction": 0.7, "seconds": 60.0},
    )
    table = estimator_table(clean=[Runs("e", scores, peers, truth, architecture="mlp")])
    names = list(table["estimator"].values)
    assert "tracin_self_influence" not in names and set(LOSS_PEERS) <= set(names)
    claims = {c.key: c for c in validation_claims({"validation": table}, {})}
    assert claims["turnover_beats_tracin"].verdict == "not measured"
    assert claims["estimate_at_least_peers"].verdict != "not measured"


# --- the config check -------------------------------------------------------------------------


def test_subsets_from_tracin_without_gradient_records_is_refused():
    cfg = copy.deepcopy(DEFAULT)
    exp = cfg["experiments"]["mnist_mlp"]
    exp.update(subsets_from="tracin_self_influence", peer_gradients=False)
    errors = check_config(cfg)
    assert any(
        e.startswith("experiments.mnist_mlp.subsets_from:")
        and "peer_gradients: false" in e
        and "cumulative_loss" in e
        for e in errors
    ), errors
    with pytest.raises(ConfigError, match="peer_gradients"):
        validate_config(cfg)
    exp["subsets_from"] = "cumulative_loss"  # a peer of losses alone: fine
    assert check_config(cfg) == []
    exp.update(subsets_from="tracin_self_influence", peer_gradients=True)
    assert check_config(cfg) == []
    cfg["experiments"]["mnist_mlp"]["peer_gradients"] = "no"  # the schema: a boolean
    assert check_config(cfg)


def test_peer_estimates_default_to_the_gradient_records(tiny):
    est_ = peer_estimates(MODEL, tiny, OPT, 0)
    assert "grad_sq_norm" in est_ and set(PEER_NAMES) <= set(est_.data_vars)
