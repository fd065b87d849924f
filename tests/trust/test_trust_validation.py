"""The trust extensions: cumulative sample loss, the cumulative turn-over scores (exact,
resumed bit-identically), the per-architecture validation table and its goal claim, and
a tiny end-to-end run of the validation stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from helpers import Killed, interrupt

from memorization.data import TensorSplit, prepare_dataset, to_tensors
from memorization.method import scoring
from memorization.method.checkpoint import Checkpoint
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.subsets import easy_difficult
from memorization.report.claims import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
from memorization.report.figures.validation import claims as validation_claims
from memorization.report.figures.validation import goal_claim
from memorization.trust.peers import PEER_NAMES, peer_estimates
from memorization.trust.validation import Runs, estimator_table
from memorization.workflow.artifacts import annotate
from memorization.workflow.check import check_config
from memorization.workflow.registry import STAGES
from memorization.workflow.stages.scores import subsets_schema

ROOT = Path(__file__).resolve().parents[2]
MODEL = ModelSpec.from_config("mlp", {"hidden": 32}).with_classes(10)
OPT = OptimSpec(epochs=4, lr=0.1, batch_size=128, momentum=0.9, milestones=(2,))


@pytest.fixture(scope="module")
def digits() -> TensorSplit:
    return to_tensors(prepare_dataset("digits"), "train")


# --- cumulative sample loss ---------------------------------------------------------------


def test_cumulative_sample_loss_is_the_sum_of_the_recorded_losses():
    g = torch.Generator().manual_seed(0)
    train = TensorSplit(
        torch.randn(48, 1, 1, 6, generator=g),
        torch.randint(0, 3, (48,), generator=g),
        np.arange(48),
    )
    model = ModelSpec.from_config("mlp", {"hidden": 16}).with_classes(3)
    est = peer_estimates(model, train, OptimSpec(epochs=3, lr=0.3, batch_size=16), seed=1)
    assert "cumulative_loss" in PEER_NAMES
    losses = est["loss"].values.astype(np.float64)  # [epoch, example], end of each epoch
    np.testing.assert_array_equal(est["cumulative_loss"].values, losses.sum(0))
    assert STAGES["peers"].schema.required["cumulative_loss"].units == "nats"


# --- cumulative turn-over scores ----------------------------------------------------------


def test_cumulative_memorization_sums_the_per_epoch_scores(digits, monkeypatch):
    """Against a run that records every epoch's scores (the scoring pass, wrapped)."""
    seen = []
    score = scoring.score_examples

    def recording(*args, **kwargs):
        out = score(*args, **kwargs)
        seen.append({k: v.copy() for k, v in out.items()})
        return out

    monkeypatch.setattr(scoring, "score_examples", recording)
    run = scoring.train_turnover(MODEL, digits, OPT, seed=3, progress=False)
    assert len(seen) == OPT.epochs
    loss = np.zeros(len(digits))
    for epoch in seen:  # in order, as the training sums them
        loss += (epoch["loss_muted"] - epoch["loss_unmuted"]).astype(np.float64)
    np.testing.assert_array_equal(run.cumulative["cumulative_memorization"], loss)
    np.testing.assert_array_equal(run.final["memorization"], seen[-1]["memorization"])
    ds = scoring.scores_dataset(run, digits, OPT.epochs)
    assert ds["cumulative_memorization"].dims == ("example",)
    annotate(ds, "scores", STAGES["scores"].schema, {})  # described by the schema
    # score_form: cumulative ranks the subsets by it
    assert scoring.SCORE_FORMS["cumulative"] == "cumulative_memorization"
    subsets = easy_difficult(ds["cumulative_memorization"], 100)
    annotate(subsets, "subsets", subsets_schema("cumulative"), {})
    top = np.argsort(-run.cumulative["cumulative_memorization"], kind="stable")[:100]
    assert subsets["difficult"].values[top].all()


@pytest.mark.parametrize(("at", "how"), [(30, "kill"), (27, "sigterm")])
def test_cumulative_sums_resume_bit_identical(digits, tmp_path, monkeypatch, at, how):
    """12 batches an epoch: killed in epoch 3 (resumed from the checkpoint after epoch 2)
    or signalled in the middle of epoch 3 (saved after the batch in progress)."""
    reference = scoring.train_turnover(MODEL, digits, OPT, seed=5, progress=False)

    def checkpoint():
        return Checkpoint(tmp_path / ".scores.nc.checkpoint", {"stage": "test"}, every=1)

    with monkeypatch.context() as m:
        interrupt(m, at, how)
        with pytest.raises(Killed if how == "kill" else SystemExit):
            scoring.train_turnover(
                MODEL, digits, OPT, seed=5, checkpoint=checkpoint(), progress=False
            )
    saved = torch.load(tmp_path / ".scores.nc.checkpoint", weights_only=False)
    assert set(saved["records"]["cumulative"]) == set(scoring.CUMULATIVE)
    resumed = scoring.train_turnover(
        MODEL, digits, OPT, seed=5, checkpoint=checkpoint(), progress=False
    )
    for name in scoring.CUMULATIVE:
        assert resumed.cumulative[name].tobytes() == reference.cumulative[name].tobytes()
    for name, value in reference.final.items():
        assert resumed.final[name].tobytes() == value.tobytes(), name


# --- the per-architecture table -----------------------------------------------------------

N = 300


def _scores(per_replicate: np.ndarray, examples: np.ndarray, wrong=None) -> xr.Dataset:
    r = len(per_replicate)
    label = examples % 10
    ds = xr.Dataset(
        {
            "label": ("example", label),
            "mislabeled": ("example", np.zeros(len(examples), bool) if wrong is None else wrong),
            "pred_unmuted": (("replicate", "example"), np.tile(label, (r, 1))),
            "replicate_seconds": ("replicate", np.full(r, 10.0)),
        },
        coords={"example": examples, "replicate": np.arange(r)},
    )
    for var in scoring.SCORE_FORMS.values():
        ds[f"{var}_by_replicate"] = (("replicate", "example"), per_replicate)
        ds[var] = ("example", per_replicate.mean(0))
    return ds


def _peers(values: dict[str, np.ndarray], examples: np.ndarray) -> xr.Dataset:
    fill = next(iter(values.values()))
    ds = xr.Dataset(
        {name: ("example", values.get(name, fill)) for name in PEER_NAMES},
        coords={"example": examples},
        attrs={"seconds": 5.0},
    )
    ds["correct"] = (("epoch", "example"), np.ones((2, len(examples)), bool))
    return ds


def _truth(mem: np.ndarray, examples: np.ndarray, rng) -> xr.Dataset:
    half = np.stack([mem + rng.normal(0, 0.01, len(mem)), mem + rng.normal(0, 0.01, len(mem))])
    return xr.Dataset(
        {
            "memorization": ("example", mem),
            "memorization_half": (("half", "example"), half),
        },
        coords={"example": examples},
        attrs={"n_models_merged": 40, "fraction": 0.7, "seconds": 60.0},
    )


def _experiment(name, arch, turnover, peers, mem, examples, seed=0) -> Runs:
    rng = np.random.default_rng(seed)
    return Runs(
        name,
        _scores(np.asarray(turnover, float), examples),
        _peers(peers, examples),
        _truth(mem, examples, rng),
        architecture=arch,
    )


def _memorization(rng, n=N) -> np.ndarray:
    return np.where(rng.random(n) < 0.15, rng.uniform(0.3, 1, n), rng.uniform(-0.05, 0.2, n))


def test_per_architecture_table():
    rng = np.random.default_rng(0)
    mem_a, mem_b = _memorization(rng), _memorization(rng, 200)
    ex_a, ex_b = np.arange(N), np.arange(100, 300)  # overlapping, different example sets
    a = _experiment(
        "mlp_exp", "mlp",
        [mem_a + rng.normal(0, 0.05, N) for _ in range(4)],
        {"tracin_self_influence": mem_a + rng.normal(0, 0.5, N)}, mem_a, ex_a,
    )  # fmt: skip
    b = _experiment(
        "vgg_exp", "vgg11",
        [-mem_b, -mem_b],  # reversed: AUC 0
        {"slow_learning": mem_b}, mem_b, ex_b,
    )  # fmt: skip
    wrong = rng.random(N) < 0.2
    noisy_scores = _scores(np.asarray([wrong * 1.0]), ex_a, wrong)
    noisy = Runs("noisy", noisy_scores, _peers({"slow_learning": wrong * 1.0}, ex_a))
    table = estimator_table(clean=[a, b], noisy=noisy, replicates=(1, 2, 4, 8))
    assert list(table["experiment"].values) == ["mlp_exp", "vgg_exp"]
    assert list(table["architecture"].values) == ["mlp", "vgg11"]
    assert table["auc_memorized"].dims == ("experiment", "estimator")
    assert table["random_label_auc"].dims == ("estimator",)
    names = list(table["estimator"].values)
    assert "turnover_cumulative_R4" in names and "turnover_cumulative_R1" in names
    assert "turnover_loss_R8" not in names  # no experiment holds 8
    mlp, vgg = table.sel(experiment="mlp_exp"), table.sel(experiment="vgg_exp")
    assert float(mlp["auc_memorized"].sel(estimator="turnover_loss_R4")) > 0.95
    assert float(vgg["auc_memorized"].sel(estimator="turnover_loss_R1")) == 0.0
    assert float(vgg["pearson"].sel(estimator="slow_learning")) == pytest.approx(1.0)
    assert np.isnan(float(vgg["auc_memorized"].sel(estimator="turnover_loss_R4")))  # holds 2
    assert float(mlp["cost_runs"].sel(estimator="turnover_loss_R4")) == 4
    assert float(mlp["cost_seconds"].sel(estimator="turnover_loss_R4")) == 40
    for exp in (mlp, vgg):
        ceiling = exp.sel(estimator="fz_half_vs_half")
        assert 0.9 < float(ceiling["spearman"]) <= 1 and float(ceiling["cost_runs"]) == 14
        assert exp["family"].sel(estimator="fz_half_vs_half").item() == "ground truth"
    # the per-example values the metrics come from, on the union of the examples
    assert table.sizes["example"] == 300
    est = vgg["estimate"].sel(estimator="slow_learning")
    np.testing.assert_array_equal(est.sel(example=ex_b).values, mem_b)
    assert np.isnan(est.sel(example=np.arange(100)).values).all()
    np.testing.assert_array_equal(vgg["truth_memorization"].sel(example=ex_b).values, mem_b)
    assert float(table["random_label_auc"].sel(estimator="turnover_loss_R1")) == 1.0
    assert float(table["random_label_auc"].sel(estimator="slow_learning")) == 1.0
    assert table.attrs["noisy"] == "noisy" and table.attrs["fitted_turnover_unmuted"] == 1.0
    annotate(table, "validation", STAGES["validation"].schema, {})  # every variable described


# --- the goal claim -----------------------------------------------------------------------


def _goal(turnover_noise: float, peer_noise: float, seed: int, n: int = N):
    rng = np.random.default_rng(seed)
    mem = _memorization(rng, n)
    examples = np.arange(n)
    turnover = [mem + rng.normal(0, turnover_noise, n)]
    # a constant peer (no correlation defined) is left out of the best peer, not fatal
    peers = {"final_loss": mem + rng.normal(0, peer_noise, n), "forgetting_events": np.zeros(n)}
    table = estimator_table(clean=[_experiment("e", "mlp", turnover, peers, mem, examples)])
    return goal_claim(table, "e")


def test_goal_claim_when_turnover_clearly_wins():
    claim = _goal(0.02, 0.6, seed=1)
    assert claim.verdict == SUPPORTED and claim.low > 0
    assert claim.key == "estimate_at_least_peers" and claim.experiment == "e"
    assert "loses nowhere" in claim.evidence
    assert set(claim.values) == {f"margin_{m}" for m in ("auc_memorized", "top_overlap",
                                                         "spearman", "pearson")}  # fmt: skip


def test_goal_claim_when_turnover_clearly_loses():
    claim = _goal(0.6, 0.02, seed=2)
    assert claim.verdict == NOT_SUPPORTED and claim.high <= 0
    assert "LOSES on AUC" in claim.evidence and "Pearson to tracin" in claim.evidence


def test_goal_claim_on_a_tie_is_inconclusive():
    """Equally noisy estimators: the margins are within the noise of the examples."""
    claim = _goal(0.3, 0.3, seed=3, n=400)
    assert claim.verdict == INCONCLUSIVE
    assert claim.low < 0 < claim.high


def test_goal_claims_per_architecture_and_unmeasured():
    rng = np.random.default_rng(4)
    mem = _memorization(rng)
    ex = np.arange(N)
    runs = [
        _experiment("a", "mlp", [mem], {"final_loss": mem}, mem, ex),
        _experiment("b", "cct", [mem], {"final_loss": mem}, mem, ex),
    ]
    table = estimator_table(clean=runs)
    claims = validation_claims({"validation": table}, {})
    goals = [c for c in claims if c.key == "estimate_at_least_peers"]
    assert [c.experiment for c in goals] == ["a", "b"]
    assert "cct" in goals[1].statement
    assert {c.key for c in claims} == {
        "estimate_at_least_peers", "turnover_matches_truth", "turnover_beats_tracin"
    }  # fmt: skip
    # no peers: the goal cannot be measured
    runs[0].peers = None
    claim = goal_claim(estimator_table(clean=runs[:1]), "a")
    assert claim.verdict == "not measured"


# --- the config ---------------------------------------------------------------------------


def test_validation_config_checks_every_architecture():
    """config/validation.yaml is valid; the first clean experiment must hold every R of the
    figure's replicates, the other architectures the R <= 4 of the goal."""
    cfg = yaml.safe_load((ROOT / "config/validation.yaml").read_text())
    assert check_config(cfg) == []
    options = cfg["figures"]["validation"]
    assert options["clean"] == ["mnist_mlp", "mnist_vgg", "mnist_cct", "digits_resnet"]
    assert cfg["experiments"]["digits_resnet"]["model"] == "torchvision:resnet18"
    for name in options["clean"]:
        truth = cfg["experiments"][name]["truth"]
        assert truth["models"] >= 96 and truth["design"] == "pairs"
    cfg["experiments"]["mnist_vgg"]["replicates"] = 2
    cfg["experiments"]["mnist_cct"]["score_form"] = "cumulative"
    options["clean"] = [*options["clean"], "missing"]
    errors = check_config(cfg)
    assert any("4 replicates asked for, but experiment 'mnist_vgg'" in e for e in errors)
    assert any("figures.validation.clean: experiment 'missing'" in e for e in errors)
    assert len(errors) == 2
    options["clean"] = "mnist_cct"  # one experiment, as a string: it holds 4, not 8
    assert [e[:45] for e in check_config(cfg)] == ["figures.validation.replicates: 8 replicates a"]


# --- the validation stages end to end -----------------------------------------------------

TRUST = {
    "device": "cpu",
    "threads": 1,
    "experiments": {
        "mlp": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "seed": 0,
            "epochs": 3,
            "lr": 0.1,
            "batch_size": 64,
            "replicates": 2,
            "truth": {"models": 6, "fraction": 0.7, "shards": 1, "top_k": 5},
        },
        "sparse": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "keep_fraction": 0.375,
            "seed": 1,
            "epochs": 3,
            "lr": 0.1,
            "batch_size": 64,
            "replicates": 2,
            "truth": {"models": 8, "design": "pairs", "shards": 2, "top_k": 5},
        },
        "noisy": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 64,
            "corrupt": 300,
            "seed": 0,
            "epochs": 3,
            "lr": 0.1,
            "batch_size": 64,
        },
    },  # fmt: skip
    "figures": {
        "validation": {"clean": ["mlp", "sparse"], "noisy": "noisy", "replicates": [1, 2]},
    },
}


@pytest.mark.workflow
def test_validation_stages_end_to_end(tmp_path):
    """Two clean experiments (standing for two architectures), each with its truth,
    peers and 2 replicates, and a noisy one: the table, the figure and the claims (22
    jobs: about a minute on 2 idle cores, most of it the jobs' start-up)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(TRUST))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-5000:]
    out = tmp_path / "results"
    assert not (out / "sparse/influence.nc").exists()  # the first clean experiment's only
    with xr.open_dataset(out / "validation.nc", engine="netcdf4") as ds:
        assert list(ds["experiment"].values) == ["mlp", "sparse"]
        assert list(ds["architecture"].values) == ["mlp", "mlp"]
        for name in ("turnover_cumulative_R2", "cumulative_loss", "fz_half_vs_half"):
            assert np.isfinite(ds["pearson"].sel(estimator=name)).all(), name
        assert np.isfinite(ds["random_label_auc"].sel(estimator="turnover_loss_R1"))
        assert "influence_top_overlap" in ds.attrs and ds.attrs["influence_experiment"] == "mlp"
        assert list(ds["truth_design"].values) == ["random", "pairs"]
        assert (ds["truth_seconds"].values > 0).all()  # every truth's wall time
        assert np.isfinite(ds["truth_reliability"].values).all()
        assert np.isfinite(ds["equal_cost_difference"].values).all()
        assert (ds["equal_cost_low"] <= ds["equal_cost_high"]).all()
    with xr.open_dataset(out / "sparse/truth.nc", engine="netcdf4") as ds:
        assert ds.attrs["design"] == "pairs" and (ds["n_in"].values == 4).all()
    with xr.open_dataset(out / "mlp/scores.nc", engine="netcdf4") as ds:
        by = ds["cumulative_memorization_by_replicate"].values
        np.testing.assert_allclose(ds["cumulative_memorization"].values, by.mean(0))
        assert ds["cumulative_memorization_se"].attrs["units"] == "nats"
    claims = [c for c in json.loads((out / "claims.json").read_text())
              if c["figure"] == "validation"]  # fmt: skip
    goals = [c for c in claims if c["key"] == "estimate_at_least_peers"]
    assert [c["experiment"] for c in goals] == ["mlp", "sparse"]
    for c in claims:
        assert c["verdict"] in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
        assert c["low"] <= c["high"]
    assert (out / "validation.pdf").read_bytes().startswith(b"%PDF")
