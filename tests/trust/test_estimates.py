"""Every estimate of an experiment in one file (estimates.nc), fair peers over R plain runs,
a peer as one record, and subsets drawn from any estimate (subsets_from)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from memorization.data.tensors import TensorSplit
from memorization.infra.clock import CPU_CLOCK, WALL_CLOCK
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import SCORE_FORMS
from memorization.method.subsets import easy_difficult
from memorization.trust.peers import (
    PEER_NAMES,
    PEERS,
    peer_estimates,
    peer_seeds,
    peers_over_runs,
)
from memorization.trust.replicates import replicate_seed
from memorization.trust.truth import model_seeds
from memorization.workflow.artifacts import open_artifact
from memorization.workflow.check import ConfigError, check_config, validate_config
from memorization.workflow.context import StageContext
from memorization.workflow.provenance import slice_hash
from memorization.workflow.registry import STAGES
from memorization.workflow.slices import SubsetsSlice
from memorization.workflow.specs import Experiment
from memorization.workflow.stages import estimates as est
from memorization.workflow.stages.scores import scores_slice, subsets, subsets_slice

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
N = 40


@pytest.fixture(scope="module")
def tiny() -> TensorSplit:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 1, 1, 6, generator=g)
    return TensorSplit(x, torch.randint(0, 3, (N,), generator=g), np.arange(100, 100 + N))


MODEL = ModelSpec.from_config("mlp", {"hidden": 16}).with_classes(3)
OPT = OptimSpec(epochs=3, lr=0.3, batch_size=16)


# --- fair peers ---------------------------------------------------------------------------


def test_peers_over_runs_are_the_mean_of_single_runs_with_those_seeds(tiny):
    seeds = peer_seeds(7, 3)
    averaged = peers_over_runs(MODEL, tiny, OPT, 7, runs=3)
    singles = [peer_estimates(MODEL, tiny, OPT, s) for s in seeds]
    for name in PEER_NAMES:
        mean = np.mean([s[name].values.astype(np.float64) for s in singles], axis=0)
        np.testing.assert_allclose(averaged[name].values, mean, rtol=1e-12, err_msg=name)
    assert averaged["run_seed"].values.tolist() == seeds
    assert averaged.attrs["peer_runs"] == 3
    # the measured seconds of one plain training: the runs' mean, records not counted
    per_run = averaged["run_train_seconds"].values
    assert averaged.attrs["train_seconds_per_run"] == pytest.approx(per_run.mean(), abs=1e-3)
    assert (per_run > 0).all()
    # one run: the experiment's own seed, as before (the default artifact is unchanged)
    one = peers_over_runs(MODEL, tiny, OPT, 7, runs=1)
    np.testing.assert_array_equal(
        one["cumulative_loss"].values, peer_estimates(MODEL, tiny, OPT, 7)["cumulative_loss"]
    )
    assert "run" not in one.dims and one.attrs["train_seconds_per_run"] > 0


def test_peer_seeds_are_disjoint_from_turnover_replicates_and_truth_models():
    for seed in (0, 1, 12345):
        peers = set(peer_seeds(seed, 16))
        assert len(peers) == 16
        assert not peers & {replicate_seed(seed, r) for r in range(64)}
        assert not peers & set(model_seeds(200, seed).tolist())


def test_peer_runs_are_recorded_in_the_slice_only_when_not_one():
    base = DEFAULT["experiments"]["mnist_mlp"]
    one = STAGES["peers"].slice_of(Experiment.from_config("a", base)).params()
    four = Experiment.from_config("a", {**base, "peer_runs": 4})
    assert "seeds" not in one
    assert STAGES["peers"].slice_of(four).params()["seeds"] == 4
    passes = STAGES["peers"].passes
    assert len(passes(four)) == 4 * len(passes(Experiment.from_config("a", base)))


# --- a peer as one record ------------------------------------------------------------------


RECORD = """    Peer(
        "loss_spread",
        lambda r: r["loss"].values.std(0),
        "spread of the end-of-epoch training loss over the epochs",
        "nats",
        "tab:gray",
    ),
"""


def test_adding_one_peer_record_is_enough(tmp_path):
    """A copy of the package with one more record: the schema, the table, the figure's
    colours and estimates.nc list it, with nothing else edited."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__"))
    peers_py = src / "memorization/trust/peer_records.py"
    text = peers_py.read_text()
    end = text.index(")\n\n#: the peers' names")
    peers_py.write_text(text[:end] + RECORD + text[end:])
    script = """
import numpy as np, xarray as xr
from memorization.trust.peers import PEER_NAMES, estimators_from_records
from memorization.workflow.registry import STAGES
from memorization.report.figures.validation import PEER_COLORS
from memorization.trust.validation import Runs, _candidates
from memorization.workflow.stages.estimates import collect_estimates, estimate_names
assert PEER_NAMES[-1] == "loss_spread", PEER_NAMES
var = STAGES["peers"].schema.required["loss_spread"]
assert (var.long_name, var.units) == (
    "spread of the end-of-epoch training loss over the epochs", "nats")
assert PEER_COLORS["loss_spread"] == "tab:gray"
loss = np.arange(12.0).reshape(3, 4) ** 2
rec = xr.Dataset({"loss": (("epoch", "example"), loss),
                  "correct": (("epoch", "example"), loss > 5),
                  "grad_sq_norm": (("epoch", "example"), loss),
                  "lr": ("epoch", [0.1, 0.1, 0.1])}, coords={"example": np.arange(4)})
peers = estimators_from_records(rec)
assert np.allclose(peers["loss_spread"].values, loss.std(0))
names = [c[0] for c in _candidates(Runs("e", peers=peers), (1,))]
assert "loss_spread" in names, names
scores = xr.Dataset({"memorization": ("example", np.zeros(4))}, coords={"example": np.arange(4)})
out = collect_estimates(scores, peers)
assert out["loss_spread"].attrs["family"] == "peer"
assert "loss_spread" in estimate_names()
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": str(src)}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "ok"


def test_peer_records_are_complete_and_oriented(tiny):
    names = [p.name for p in PEERS]
    assert tuple(names) == PEER_NAMES and len(set(names)) == len(names)
    schema = STAGES["peers"].schema.required
    for peer in PEERS:
        assert schema[peer.name].long_name == peer.long_name
        assert schema[peer.name].units == peer.units
    # higher = more memorized: an example the run never fits has the highest CSL, final
    # loss and self-influence of all
    y = tiny.y.clone()
    y[0] = (y[0] + 1) % 3
    x = tiny.x.clone()
    x[0] = x[1]  # a copy of example 1 with another label: it cannot be fitted
    out = peer_estimates(MODEL, TensorSplit(x, y, tiny.examples), OPT, 0)
    for name in ("cumulative_loss", "final_loss", "tracin_self_influence"):
        assert out[name].values[0] > np.median(out[name].values), name


# --- estimates.nc ----------------------------------------------------------------------------


def _scores(examples, seconds=12.0, replicates=1, setup=30.0) -> xr.Dataset:
    """Scores whose training took ``seconds`` (summed over the replicates) in jobs that
    took ``setup`` seconds more (loading the data, the zero-gradient check, ...)."""
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            var: ("example", rng.normal(size=len(examples)), {"long_name": var, "units": "1"})
            for var in SCORE_FORMS.values()
        },
        coords={"example": examples},
    )
    if replicates > 1:
        job = (seconds + setup) / replicates
        ds["replicate_seconds"] = ("replicate", np.full(replicates, job))
    ds.attrs.update(seconds=seconds + setup, train_seconds=seconds, replicates=replicates)
    ds.attrs["clock"] = CPU_CLOCK  # as a job on a CPU times its training
    return ds


def _oob(examples) -> xr.Dataset:
    n = len(examples)
    ds = xr.Dataset(
        {
            name: (
                "example",
                np.linspace(0, 1, n),
                {"long_name": name, "units": "1", "family": "oob", "cost_runs": 4.0},
            )
            for name in est.OOB_NAMES
        },
        coords={"example": examples},
    )
    ds["n_in"] = ("example", np.full(n, 4), {"long_name": "networks", "units": ""})
    ds.attrs.update(train_seconds=9.0, seconds=40.0, clock=CPU_CLOCK)  # seconds: set-up too
    return ds


def test_estimates_hold_every_estimator_with_family_and_measured_cost(tiny):
    peers = peers_over_runs(MODEL, tiny, OPT, 3, runs=2)
    plain = peers.attrs["train_seconds_per_run"]
    examples = tiny.examples[::-1]  # another order than the peers': aligned by id
    out = est.collect_estimates(_scores(examples, 12.0, replicates=4), peers, _oob(examples))
    expected = [*est.TURNOVER, *PEER_NAMES, *est.OOB_NAMES]
    assert list(out.data_vars) == expected  # n_in (no family) is left out
    for name in expected:
        attrs = out[name].attrs
        assert attrs["long_name"] and attrs["cost_basis"] == "training_seconds", name
        assert out[name].dims == ("example",)
    assert {out[n].attrs["family"] for n in est.TURNOVER} == {"turnover"}
    assert {out[n].attrs["family"] for n in PEER_NAMES} == {"peer"}
    assert {out[n].attrs["family"] for n in est.OOB_NAMES} == {"oob"}
    # measured: the artifact's training seconds over one plain run's
    assert out["turnover_loss"].attrs["cost_runs"] == pytest.approx(12.0 / plain, rel=1e-3)
    assert out["oob_loss"].attrs["cost_runs"] == pytest.approx(9.0 / plain, rel=1e-3)
    records = peers.attrs["record_seconds_per_run"]
    assert out["tracin_self_influence"].attrs["cost_runs"] == pytest.approx(
        2 * (plain + records) / plain, rel=1e-3
    )
    # the peers of losses alone pay a measured forward pass per epoch, not the gradients
    losses = peers.attrs["loss_record_seconds_per_run"]
    assert 0 <= losses <= records
    assert out["cumulative_loss"].attrs["cost_runs"] == pytest.approx(
        2 * (plain + losses) / plain, rel=1e-3
    )
    # values follow the example ids
    single = peers["cumulative_loss"].reindex(example=examples).values
    np.testing.assert_allclose(out["cumulative_loss"].values, single)


def test_without_a_measured_plain_run_costs_come_from_the_operation_counts(tiny):
    peers = peer_estimates(MODEL, tiny, OPT, 0)
    peers.attrs.pop("train_seconds", None)
    out = est.collect_estimates(_scores(tiny.examples, replicates=2), peers, _oob(tiny.examples))
    assert {v.attrs["cost_basis"] for v in out.data_vars.values()} == {"operations"}
    assert out["turnover_loss"].attrs["cost_runs"] == pytest.approx(2 * (1 + 2 / 3), rel=1e-2)
    assert out["oob_loss"].attrs["cost_runs"] == 4.0  # the out-of-bag artifact's own


def _peers(examples, **seconds) -> xr.Dataset:
    """A peers artifact whose recorded seconds are ``seconds``."""
    values = np.linspace(0, 1, len(examples))
    return xr.Dataset(
        {name: ("example", values) for name in PEER_NAMES},
        coords={"example": examples},
        attrs={"clock": CPU_CLOCK, **seconds},
    )


def test_measured_costs_count_training_seconds_on_both_sides(tiny):
    """The turn-over jobs' and the out-of-bag job's set-up (data, zero-gradient check) is
    not counted, as one plain run's seconds count its training alone."""
    peers = _peers(tiny.examples, train_seconds_per_run=2.0, record_seconds_per_run=0.5)
    peers.attrs.update(peer_runs=2, seconds=100.0)  # the peers job, set-up included
    scores = _scores(tiny.examples, 12.0, replicates=4, setup=88.0)
    out = est.collect_estimates(scores, peers, _oob(tiny.examples))
    assert {v.attrs["cost_basis"] for v in out.data_vars.values()} == {"training_seconds"}
    assert out["turnover_loss"].attrs["cost_runs"] == 6.0  # 12 s / 2 s, not 100 s / 2 s
    assert out["oob_loss"].attrs["cost_runs"] == 4.5  # 9 s, not the job's 40 s
    assert out["cumulative_loss"].attrs["cost_runs"] == 2 * (2.0 + 0.5) / 2.0
    # each peer pays the records it reads: TracIn the gradient records, the peers of
    # losses alone a forward pass per epoch (where the artifact measured it)
    peers.attrs["loss_record_seconds_per_run"] = 0.25
    fair = est.collect_estimates(scores, peers)
    assert fair["tracin_self_influence"].attrs["cost_runs"] == 2 * (2.0 + 0.5) / 2.0
    for name in ("cumulative_loss", "final_loss", "slow_learning", "forgetting_events"):
        assert fair[name].attrs["cost_runs"] == 2 * (2.0 + 0.25) / 2.0, name
    # scores that did not record their training seconds: not a measured cost of another kind
    del scores.attrs["train_seconds"]
    old = est.collect_estimates(scores, peers)
    assert old["turnover_loss"].attrs["cost_basis"] == "operations"
    assert old["turnover_loss"].attrs["cost_runs"] == pytest.approx(4 * (1 + 2 / 3), rel=1e-2)
    assert old["cumulative_loss"].attrs["cost_basis"] == "training_seconds"


def test_seconds_on_different_clocks_are_not_a_cost(tiny):
    """A turn-over artifact timed on the wall clock (an older one, or a GPU job) against
    plain runs timed on a CPU's clock: no ratio of the two, the operation count instead."""
    peers = _peers(tiny.examples, train_seconds_per_run=2.0, record_seconds_per_run=0.5)
    scores = _scores(tiny.examples, 12.0, replicates=4)
    scores.attrs["clock"] = WALL_CLOCK
    out = est.collect_estimates(scores, peers, _oob(tiny.examples))
    assert out["turnover_loss"].attrs["cost_basis"] == "operations"
    assert out["turnover_loss"].attrs["cost_runs"] == pytest.approx(4 * (1 + 2 / 3), rel=1e-2)
    assert out["oob_loss"].attrs["cost_basis"] == "training_seconds"  # the same clock
    assert out["oob_loss"].attrs["cost_runs"] == 4.5


def test_replicates_record_the_sum_of_their_training_seconds(tmp_path, tiny):
    """The merged scores' ``train_seconds`` (what the turn-over cost counts) is the sum of
    the replicate jobs' training seconds, not of their whole jobs' seconds."""
    from memorization.method.scoring import score_split
    from memorization.workflow.stages.scores import SCORES, scores

    exp = Experiment.from_config("a", {**DEFAULT["experiments"]["mnist_mlp"], "replicates": 2})
    paths = []
    for rep, (job, trained) in enumerate([(30.0, 2.5), (40.0, 3.25)]):
        run = score_split(MODEL, tiny, OPT, replicate_seed(exp.seed, rep), progress=False)
        path = str(tmp_path / f"scores_r{rep}.nc")
        ctx = StageContext("scores_replicate", path, params=scores_slice(exp, rep).params())
        ctx.write(run, SCORES, split="train", seconds=job, train_seconds=trained, clock=CPU_CLOCK)
        paths.append(path)
    out = tmp_path / "scores.nc"
    ctx = StageContext(
        "scores", str(out), params=scores_slice(exp).params(), inputs={"scores_replicate": paths}
    )
    scores(ctx)
    merged = open_artifact(out, "scores")
    assert merged.attrs["train_seconds"] == 5.75 and merged.attrs["seconds"] == 70.0
    assert merged.attrs["clock"] == CPU_CLOCK
    # each replicate's compute, the share of the cost fewer replicates take
    np.testing.assert_array_equal(merged["replicate_seconds"].values, [2.5, 3.25])
    peers = _peers(tiny.examples, train_seconds_per_run=2.3)
    cost = est.collect_estimates(merged, peers)["turnover_loss"].attrs
    assert (cost["cost_runs"], cost["cost_basis"]) == (2.5, "training_seconds")


def test_estimates_refuse_peers_of_other_examples(tiny):
    peers = peer_estimates(MODEL, tiny, OPT, 0)
    with pytest.raises(ValueError, match="peers.nc covers other examples"):
        est.collect_estimates(_scores(tiny.examples[:-1]), peers)


def test_the_estimates_stage_trains_nothing_and_reads_oob_only_when_asked():
    record = STAGES["estimates"]
    assert not record.trains and record.passes is None
    base = DEFAULT["experiments"]["mnist_mlp"]
    plain = Experiment.from_config("a", base)
    asked = Experiment.from_config("a", {**base, "oob_networks": 4})
    assert est.oob_options(plain) is None
    assert est.oob_options(asked)["oob_networks"] == 4
    assert "oob" not in record.slice_of(plain).params()
    assert record.slice_of(asked).params()["oob"]["oob_networks"] == 4


# --- subsets from any estimate ------------------------------------------------------------------


def _write_estimates(path: Path, exp: Experiment, values: dict) -> None:
    """An estimates artifact with the provenance the experiment's subsets expect."""
    examples = np.arange(10)
    ds = xr.Dataset(
        {
            k: ("example", v, {"long_name": k, "units": "1", "family": "peer"})
            for k, v in values.items()
        },
        coords={"example": examples},
    )
    ctx = StageContext("estimates", str(path), params=est.estimates_slice(exp).params())
    ctx.write(ds, est.ESTIMATES)


def test_subsets_from_draws_the_subsets_from_the_named_estimate(tmp_path):
    base = {**DEFAULT["experiments"]["mnist_mlp"], "subset_size": 3}
    exp = Experiment.from_config("a", {**base, "subsets_from": "cumulative_loss"})
    csl = np.array([5.0, 0.1, 9.0, 3.0, 0.2, 7.0, 0.3, 4.0, 8.0, 2.0])
    tracin = csl[::-1].copy()  # the other order: the subsets must follow the named one
    _write_estimates(
        tmp_path / "estimates.nc", exp, {"cumulative_loss": csl, "tracin_self_influence": tracin}
    )
    out = tmp_path / "subsets.nc"
    ctx = StageContext(
        "subsets",
        str(out),
        params=subsets_slice(exp).params(),
        inputs={"scores": "unused.nc", "estimates": str(tmp_path / "estimates.nc")},
        expect={"estimates": est.estimates_slice(exp).params()},
    )
    subsets(ctx)
    ds = open_artifact(out, "subsets")
    assert np.flatnonzero(ds["difficult"].values).tolist() == [2, 5, 8]  # highest CSL
    assert np.flatnonzero(ds["easy"].values).tolist() == [1, 4, 6]  # lowest
    assert ds.attrs["subsets_from"] == "cumulative_loss"
    assert "cumulative_loss" in ds["memorization"].attrs["long_name"]


def test_subsets_from_refuses_estimates_of_another_config(tmp_path):
    base = {**DEFAULT["experiments"]["mnist_mlp"], "subset_size": 3}
    exp = Experiment.from_config("a", {**base, "subsets_from": "cumulative_loss"})
    other = Experiment.from_config("a", {**base, "subsets_from": "cumulative_loss", "seed": 5})
    _write_estimates(tmp_path / "estimates.nc", other, {"cumulative_loss": np.arange(10.0)})
    ctx = StageContext(
        "subsets",
        str(tmp_path / "subsets.nc"),
        params=subsets_slice(exp).params(),
        inputs={"estimates": str(tmp_path / "estimates.nc")},
        expect={"estimates": est.estimates_slice(exp).params()},
    )
    with pytest.raises(ValueError, match="was not made from this config"):
        subsets(ctx)
    assert not (tmp_path / "subsets.nc").exists()


@pytest.mark.parametrize(
    "name,message",
    [
        ("cumulativ_loss", "(did you mean 'cumulative_loss'?)"),
        ("turnover_los", "(did you mean 'turnover_loss'?)"),
        ("oob_loss", "need an oob_* key"),
    ],
)
def test_an_unknown_subsets_from_is_refused_before_any_job(name, message):
    cfg = copy.deepcopy(DEFAULT)
    cfg["experiments"]["mnist_mlp"]["subsets_from"] = name
    errors = check_config(cfg)
    assert any(
        e.startswith("experiments.mnist_mlp.subsets_from:") and message in e and "known:" in e
        for e in errors
    ), errors
    with pytest.raises(ConfigError, match="subsets_from"):
        validate_config(cfg)
    cfg["experiments"]["mnist_mlp"]["subsets_from"] = "tracin_self_influence"
    assert check_config(cfg) == []


def test_the_default_subsets_are_the_turnover_scores_with_unchanged_params():
    for name, raw in DEFAULT["experiments"].items():
        exp = Experiment.from_config(name, raw)
        params = subsets_slice(exp).params()
        before = SubsetsSlice(scores_slice(exp), exp.subset_size, exp.score_form).params()
        assert params == before and slice_hash(params) == slice_hash(before)
        assert set(params) == {"scores", "size", "score_form"} - (
            {"size"} if exp.subset_size is None else set()
        )
        assert STAGES["overview"].slice_of(exp).params() == {}  # as before: no slice


def test_default_subsets_rank_the_turnover_score(tmp_path):
    """Without subsets_from the stage reads the scores' own form, as it always did."""
    exp = Experiment.from_config("a", {**DEFAULT["experiments"]["mnist_mlp"], "subset_size": 3})
    scores = _scores(np.arange(10))
    ctx = StageContext("scores", str(tmp_path / "scores.nc"), params=scores_slice(exp).params())
    ctx.write(scores, STAGES["scores"].schema.__class__("scores", required={}))
    sub = StageContext(
        "subsets",
        str(tmp_path / "subsets.nc"),
        params=subsets_slice(exp).params(),
        inputs={"scores": str(tmp_path / "scores.nc")},
    )
    subsets(sub)
    ds = open_artifact(tmp_path / "subsets.nc", "subsets")
    want = easy_difficult(scores["memorization"], 3)
    np.testing.assert_array_equal(ds["difficult"].values, want["difficult"].values)
    assert "subsets_from" not in ds.attrs
