"""The ground truth's designs: complementary pairs against random subsets, its seeds kept
apart from every estimator's, its reliability and the equal-cost comparison."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.trust.metrics import (
    corrected_correlation,
    difference_interval,
    pearson,
    spearman,
    spearman_brown,
)
from memorization.trust.replicates import replicate_seed
from memorization.trust.truth import (
    TRUTH_SEED_BASE,
    check_disjoint,
    draw_subsets,
    estimator_seeds,
    memorization_estimate,
    merge_shards,
    model_seeds,
    pair_subsets,
    train_shard,
    truth_dataset,
)
from memorization.workflow.check import check_config
from memorization.workflow.slices import TruthSlice
from memorization.workflow.specs import TruthSpec

ROOT = Path(__file__).resolve().parents[2]


def _labels(n=101, classes=3, seed=0):
    return np.random.default_rng(seed).integers(0, classes, n)


# --- the pairs design ---------------------------------------------------------------------


def test_pairs_put_every_example_in_exactly_half_of_the_models():
    labels = _labels()
    k = 12
    subsets = pair_subsets(labels, k, seed=5)
    assert subsets.shape == (k, len(labels))
    assert (subsets.sum(0) == k // 2).all()  # every example in exactly K/2 models
    assert (subsets[0::2] ^ subsets[1::2]).all()  # model 2j+1 trains on 2j's complement
    assert (subsets[: k // 2].sum(0) == k // 4).all()  # each half of the models balanced too
    for label in np.unique(labels):  # stratified: half of every label, up to its odd one
        count = (labels == label).sum()
        per_model = subsets[:, labels == label].sum(1)
        assert (np.abs(per_model - count / 2) <= 0.5).all()
    assert len({tuple(r) for r in subsets[0::2]}) == k // 2  # every pair its own half


def test_pairs_are_a_pure_function_of_seed_and_pair():
    labels = _labels()
    full = pair_subsets(labels, 12, seed=5)
    for k0, k1 in [(0, 5), (5, 12), (3, 4), (7, 9)]:  # shards that split a pair
        np.testing.assert_array_equal(pair_subsets(labels, 12, 5, k0, k1), full[k0:k1])
    np.testing.assert_array_equal(pair_subsets(labels, 24, seed=5)[:12], full)  # not of K
    assert not np.array_equal(pair_subsets(labels, 12, seed=6), full)
    via = draw_subsets(len(labels), 12, 0.7, 5, 2, 8, design="pairs", labels=labels)
    np.testing.assert_array_equal(via, full[2:8])  # fraction is not used
    with pytest.raises(ValueError, match="multiple of 4"):
        pair_subsets(labels, 10)
    with pytest.raises(ValueError, match="training labels"):
        draw_subsets(len(labels), 12, design="pairs")
    with pytest.raises(ValueError, match="design must be one of"):
        draw_subsets(len(labels), 12, design="halves")


def test_random_design_is_unchanged():
    """The default draws the subsets and seeds it always drew (artifacts stay as made)."""
    rng = np.random.default_rng([3, 4, 0])
    row = np.zeros(50, bool)
    row[rng.choice(50, 35, replace=False)] = True
    np.testing.assert_array_equal(draw_subsets(50, 10, 0.7, seed=3)[4], row)
    old = np.random.SeedSequence([3, 4, 1]).generate_state(1)[0] >> 1
    assert model_seeds(10, 3)[4] == old


# --- the seeds: the truth's models are never the estimators' ------------------------------


def test_pairs_seeds_come_from_a_stream_no_estimator_draws_from():
    seeds = model_seeds(200, seed=2**32 - 1, design="pairs")
    assert (seeds >= TRUTH_SEED_BASE).all() and len(set(seeds.tolist())) == 200
    others = [*estimator_seeds(2**32 - 1, 1000), *estimator_seeds(0, 1000)]
    # every estimator seed, plus what training adds to it (batch order +1, augmentation +2)
    assert max(others) + 2 < TRUTH_SEED_BASE
    check_disjoint(seeds, others)
    np.testing.assert_array_equal(model_seeds(200, 7, 50, 90, design="pairs"),
                                  model_seeds(200, 7, design="pairs")[50:90])  # fmt: skip


def test_check_disjoint_refuses_shared_seeds_and_their_offsets():
    with pytest.raises(ValueError, match="share seeds"):
        check_disjoint([10, 20], [20])
    with pytest.raises(ValueError, match="share seeds"):
        check_disjoint([10], [11])  # truth batch order 11 == estimator init 11
    check_disjoint([10], [13])
    assert estimator_seeds(9, 3) == [replicate_seed(9, r) for r in range(3)]


def test_validation_truths_are_disjoint_from_their_estimators():
    """Every truth of config/validation.yaml (either design) against the seeds of its
    experiment's turn-over replicates and plain runs."""
    cfg = yaml.safe_load((ROOT / "config/validation.yaml").read_text())
    truths = 0
    for exp in cfg["experiments"].values():
        if "truth" in exp:
            truth = exp["truth"]
            design = truth.get("design", "random")
            seeds = model_seeds(truth["models"], exp["seed"], design=design)
            check_disjoint(seeds, estimator_seeds(exp["seed"]))
            truths += 1
    assert truths >= 4


# --- training, shards, merge --------------------------------------------------------------


def _synthetic():
    """28 noisy copies of two typical inputs (classes 0 and 1) and two special inputs,
    unlike each other, both of class 2: only its own presence teaches a model one of them
    (a pair splits class 2 between its two models)."""
    torch.manual_seed(0)
    protos = torch.zeros(4, 1, 4, 4)
    protos[0, 0, 0, :] = 2.0
    protos[1, 0, 1, :] = 2.0
    protos[2, 0, 2:, :2] = 2.0
    protos[3, 0, 2:, 2:] = 2.0
    x = torch.cat([protos[torch.arange(28) % 2] + 0.2 * torch.randn(28, 1, 4, 4), protos[2:]])
    y = torch.tensor([0, 1] * 14 + [2, 2])
    test = TensorSplit(protos[:3].clone(), torch.arange(3), np.arange(3) + 900)
    return TensorSplit(x, y, np.arange(30) + 100), test


MODEL = ModelSpec.from_config("mlp", {"hidden": 16}).with_classes(3)
OPT = OptimSpec(epochs=30, lr=0.2, batch_size=8)


def _pairs_shard(k0=0, k1=None):
    train, test = _synthetic()
    return train_shard(MODEL, train, test, OPT, n_models=8, seed=1, k0=k0, k1=k1,
                       design="pairs")  # fmt: skip


def test_shards_of_a_pairs_truth_merge_to_one_job():
    whole = _pairs_shard()
    assert whole.attrs["design"] == "pairs" and whole.attrs["fraction"] == 0.5
    assert (whole["model_seed"].values >= TRUTH_SEED_BASE).all()
    merged = merge_shards([_pairs_shard(3, 8), _pairs_shard(0, 3)])  # a pair split: 2 | 3
    for name in ("in_train", "correct", "correct_test", "model_seed"):
        np.testing.assert_array_equal(merged[name].values, whole[name].values)
    np.testing.assert_allclose(merged["prob"].values, whole["prob"].values, atol=1e-5)
    truth = truth_dataset(merged, top_k=2)
    assert (truth["n_in"].values == 4).all() and (truth["n_out"].values == 4).all()
    assert np.isfinite(truth["memorization"].values).all()  # no example without estimate
    assert truth.attrs["design"] == "pairs"
    # the two special inputs are memorized (right only when trained on), the others not
    assert (truth["memorization"].values[-2:] > 0.5).all()
    assert (np.abs(truth["memorization"].values[:-2]) < 0.3).all()
    random = train_shard(MODEL, *_synthetic(), OPT, n_models=8, seed=1, k0=0, k1=3)
    with pytest.raises(ValueError, match="disagree on (design|fraction)"):
        merge_shards([random, _pairs_shard(3, 8)])
    random.attrs["fraction"] = 0.5
    with pytest.raises(ValueError, match="disagree on design"):
        merge_shards([random, _pairs_shard(3, 8)])


# --- the standard error per model ---------------------------------------------------------


def _simulated_error(design: str, k: int, reps: int = 40) -> float:
    """RMS error of the FZ estimate from K simulated models whose correctness on an example
    is Bernoulli(p_in) when trained on it, else Bernoulli(p_out): a known answer."""
    n = 2000
    rng = np.random.default_rng(0)
    p_in = rng.uniform(0.7, 1.0, n)
    p_out = rng.uniform(0.2, 0.9, n)
    errors = []
    for rep in range(reps):
        if design == "pairs":
            subsets = pair_subsets(np.zeros(n, int), k, seed=rep)
        else:
            subsets = draw_subsets(n, k, 0.7, seed=rep)
        p = np.where(subsets, p_in, p_out)
        correct = rng.random(p.shape) < p
        est = memorization_estimate(subsets, correct)["memorization"]
        errors.append((est - (p_in - p_out))[np.isfinite(est)])
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


@pytest.mark.parametrize("k", [8, 16, 32])
def test_pairs_have_a_lower_standard_error_than_random_subsets(k):
    pairs, random = _simulated_error("pairs", k), _simulated_error("random", k)
    # the formula for equal variances v: v (1/0.5 + 1/0.5) / K = 4 v / K against
    # v (1/0.7 + 1/0.3) / K = 4.76 v / K, before the random counts add their own spread
    assert pairs < random
    assert pairs < 0.97 * random


# --- reliability --------------------------------------------------------------------------


def test_spearman_brown_known_answers():
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(1.0) == 1.0 and spearman_brown(0.0) == 0.0
    assert spearman_brown(0.8) == pytest.approx(1.6 / 1.8)
    assert np.isnan(spearman_brown(float("nan"))) and np.isnan(spearman_brown(-1.0))
    assert corrected_correlation(0.5, 0.25) == pytest.approx(1.0)
    assert np.isnan(corrected_correlation(0.5, 0.0))
    np.testing.assert_allclose(corrected_correlation(np.array([0.3, 0.6]), 0.36), [0.5, 1.0])


def test_corrected_correlation_recovers_the_correlation_with_the_noise_free_truth():
    """A truth measured twice with noise (two halves of equal noise); the corrected
    correlation of an estimator with the full (averaged) truth is its correlation with
    the signal, up to sampling noise; the estimator's own noise stays."""
    rng = np.random.default_rng(0)
    n = 200_000
    signal = rng.normal(size=n)
    halves = signal + rng.normal(0, 1.0, (2, n))
    full = halves.mean(0)
    estimator = signal + rng.normal(0, 0.5, n)
    reliability = spearman_brown(pearson(*halves))
    assert reliability == pytest.approx(pearson(full, signal) ** 2, abs=0.01)
    corrected = corrected_correlation(pearson(estimator, full), reliability)
    assert corrected == pytest.approx(pearson(estimator, signal), abs=0.01)
    assert corrected < 0.95  # the estimator's own noise is not corrected away
    assert spearman_brown(spearman(*halves)) > spearman(*halves)


# --- the equal-cost difference -----------------------------------------------------------


def test_difference_interval_excludes_zero_for_truth_against_noise():
    rng = np.random.default_rng(0)
    truth = np.where(np.arange(1000) < 100, 0.6, 0.0) + rng.uniform(0, 0.2, 1000)
    noise = rng.normal(size=1000)
    for metric in ("auc", "top_overlap"):
        d, low, high = difference_interval(truth, noise, truth, metric, np.random.default_rng(1))
        assert d > 0.3 and 0 < low <= d <= high
        d, low, high = difference_interval(noise, truth, truth, metric, np.random.default_rng(1))
        assert high < 0
    d, low, high = difference_interval(truth, truth, truth, "auc", np.random.default_rng(1))
    assert d == low == high == 0
    other = rng.normal(size=1000)  # two noises of equal quality: a tie within the noise
    d, low, high = difference_interval(noise, other, truth, "auc", np.random.default_rng(1))
    assert low < 0 < high
    with pytest.raises(ValueError, match="metric must be one of"):
        difference_interval(truth, noise, truth, "roc", np.random.default_rng(1))


# --- the option ---------------------------------------------------------------------------


def test_truth_design_option_records_only_when_not_default():
    random = TruthSpec(models=8)
    assert "design" not in random.params() and random.subset_fraction == 0.7
    pairs = TruthSpec(models=8, design="pairs")
    assert pairs.params()["design"] == "pairs" and pairs.subset_fraction == 0.5
    assert TruthSpec(**pairs.params()) == pairs and TruthSpec(**random.params()) == random
    # a slice of a truth drawn at random records what it always did (same hash)
    params = TruthSlice(None, None, None, None, truth=random).params()
    assert params == {"truth": {"models": 8, "fraction": 0.7, "shards": 1, "top_k": 10}}
    assert TruthSlice(None, None, None, None, truth=pairs).params()["truth"]["design"] == "pairs"


def test_config_check_refuses_a_pairs_truth_it_cannot_balance():
    exp = {"dataset": "digits", "model": "mlp", "hidden": 64, "seed": 0, "epochs": 1,
           "lr": 0.1, "batch_size": 32, "truth": {"models": 10, "design": "pairs"}}  # fmt: skip
    errors = check_config({"experiments": {"e": exp}})
    assert any("e.truth.models: the pairs design needs a multiple of 4" in e for e in errors)
    exp["truth"] = {"models": 12, "design": "pairs", "fraction": 0.7}
    errors = check_config({"experiments": {"e": exp}})
    assert any("e.truth.fraction: the pairs design" in e for e in errors)
    exp["truth"] = {"models": 12, "design": "pairs"}
    assert check_config({"experiments": {"e": exp}}) == []


# --- the figure: quality against measured cost, with intervals ---------------------------


def test_validation_figure_shows_intervals_reliability_and_the_difference(tmp_path):
    import xarray as xr

    from memorization.report.figures import validation as fig
    from memorization.trust.validation import Runs, estimator_table

    n = 400
    rng = np.random.default_rng(0)
    mem = np.where(np.arange(n) < 40, 0.6, 0.0) + rng.uniform(0, 0.1, n)
    half = np.stack([mem + rng.normal(0, 0.05, n), mem + rng.normal(0, 0.05, n)])
    truth = xr.Dataset(
        {"memorization": ("example", mem), "memorization_half": (("half", "example"), half)},
        coords={"example": np.arange(n)},
        attrs={"n_models_merged": 64, "fraction": 0.5, "seconds": 600.0, "design": "pairs"},
    )
    estimates = xr.Dataset(
        {"oob_K8": ("example", mem + rng.normal(0, 0.02, n)),
         "cumulative_loss": ("example", rng.normal(size=n))},
        coords={"example": np.arange(n)},
    )  # fmt: skip
    estimates["oob_K8"].attrs.update(family="oob", cost_runs=1.1)
    estimates["cumulative_loss"].attrs.update(family="peer", cost_runs=1.0)
    table = estimator_table(clean=[Runs("e", truth=truth, estimates=estimates,
                                        architecture="mlp")])  # fmt: skip
    row = table.sel(experiment="e")
    bounds = fig._intervals(table, "e")["auc_memorized"]
    auc = row["auc_memorized"].values
    for j, name in enumerate(row["estimator"].values):
        if name != "fz_half_vs_half":
            assert bounds[0, j] <= auc[j] + 1e-9 and auc[j] - 1e-9 <= bounds[1, j]
    assert bounds[1, list(row["estimator"].values).index("cumulative_loss")] < 0.7
    label = fig._difference_label(row, "auc_memorized")
    d = float(row["equal_cost_difference"].sel(goal_metric="auc_memorized"))
    assert f"{d:+.3f}" in label and d > 0.3
    truth_label = fig._truth_label(row)
    assert "64 models, pairs" in truth_label and "10 min" in truth_label
    assert f"reliability {float(row['truth_reliability']):.2f}" in truth_label
    out = tmp_path / "validation.pdf"
    fig.draw({"validation": table}, {}, out)
    assert out.stat().st_size > 1000
