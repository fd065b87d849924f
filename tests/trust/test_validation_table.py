"""The validation table: estimators against a known truth, costs, fitted shares (one clean
experiment; several architectures: tests/trust/test_trust_validation.py)."""

import numpy as np
import pytest
import xarray as xr

from memorization.trust.metrics import pearson, quality, spearman
from memorization.trust.peers import (
    PEER_NAMES,
    average_peers,
    estimators_from_records,
    peers_of_first_runs,
)
from memorization.trust.validation import (
    GOAL_METRICS,
    Runs,
    equal_cost_difference,
    estimate_rows,
    estimates_from_dataset,
    estimator_table,
    influence_agreement,
)

N = 400


def _scores(mem_by_replicate, wrong=None, seconds=(10.0, 12.0)):
    r = len(mem_by_replicate)
    stack = np.asarray(mem_by_replicate, float)
    wrong = np.zeros(N, bool) if wrong is None else wrong
    label = np.arange(N) % 10
    ds = xr.Dataset(
        {
            "label": ("example", label),
            "mislabeled": ("example", wrong),
            "pred_unmuted": (("replicate", "example"), np.tile(label, (r, 1))),
            "replicate_seconds": ("replicate", np.asarray(seconds[:r])),
        },
        coords={"example": np.arange(N), "replicate": np.arange(r)},
    )
    for score in ("memorization", "probability_memorization", "zero_one_memorization"):
        ds[f"{score}_by_replicate"] = (("replicate", "example"), stack)
        ds[score] = ("example", stack.mean(0))
    return ds


def _truth(mem):
    rng = np.random.default_rng(1)
    half = np.stack([mem + rng.normal(0, 0.05, N), mem + rng.normal(0, 0.05, N)])
    return xr.Dataset(
        {"memorization": ("example", mem), "memorization_half": (("half", "example"), half)},
        coords={"example": np.arange(N)},
        attrs={"n_models_merged": 20, "fraction": 0.7, "seconds": 99.0, "train_seconds": 80.0},
    )


def _estimators(values, correct_last):
    ds = xr.Dataset(
        {name: ("example", values) for name in PEER_NAMES},
        coords={"example": np.arange(N)[::-1]},  # another order than the scores'
        attrs={"seconds": 7.0},
    )
    ds["correct"] = (("epoch", "example"), np.stack([correct_last, correct_last]))
    return ds


def test_a_perfect_estimator_and_a_noisy_one():
    rng = np.random.default_rng(0)
    truth_mem = np.where(np.arange(N) < 40, 0.6, 0.0) + rng.uniform(0, 0.1, N)
    perfect = truth_mem + 0  # replicate 0 is exact, replicate 1 pure noise
    noise = rng.normal(0, 1, N)
    clean = _scores([perfect, noise])
    peers = _estimators(truth_mem[::-1], np.ones(N, bool))  # aligned by example id
    runs = Runs("clean", clean, peers, _truth(truth_mem), architecture="mlp")
    table = estimator_table(clean=[runs], replicates=(1, 2)).sel(experiment="clean")
    r1 = table.sel(estimator="turnover_loss_R1")
    assert float(r1["auc_memorized"]) == pytest.approx(1.0)
    assert float(r1["spearman"]) == pytest.approx(1.0)
    assert float(r1["pearson"]) == pytest.approx(1.0)
    assert float(r1["cost_runs"]) == 1 and float(r1["cost_seconds"]) == 10.0
    r2 = table.sel(estimator="turnover_loss_R2")
    assert float(r2["cost_runs"]) == 2 and float(r2["cost_seconds"]) == 22.0
    assert float(r2["spearman"]) < 0.9  # the noisy replicate spoils the mean
    tracin = table.sel(estimator="tracin_self_influence")
    assert float(tracin["auc_memorized"]) == pytest.approx(1.0)  # aligned despite the order
    assert tracin["family"].item() == "peer" and float(tracin["cost_seconds"]) == 7.0
    ceiling = table.sel(estimator="fz_half_vs_half")
    assert 0.9 < float(ceiling["auc_memorized"]) <= 1.0
    assert np.isnan(float(r1["random_label_auc"]))
    assert float(table["truth_memorized"]) == 40 and float(table["truth_models"]) == 20
    cumulative = table.sel(estimator="cumulative_loss")  # the peers' CSL
    assert cumulative["family"].item() == "peer"
    assert float(cumulative["auc_memorized"]) == pytest.approx(1.0)
    # the values the metrics were computed from, in the truth's example order
    np.testing.assert_array_equal(r1["estimate"].values, perfect)
    np.testing.assert_array_equal(table["truth_memorization"].values, truth_mem)


def test_noisy_regime_and_fitted_shares():
    wrong = np.arange(N) % 4 == 0
    scores = _scores([np.where(wrong, 2.0, 0.0)], wrong=wrong)
    correct = ~wrong | (np.arange(N) % 8 == 0)  # half of the wrong labels fitted
    peers = _estimators(np.zeros(N), correct[::-1])
    table = estimator_table(noisy=Runs("noisy", scores, peers), replicates=(1, 2, 4))
    assert list(table["estimator"].values)[:3] == [
        "turnover_loss_R1",
        "turnover_probability_R1",
        "turnover_zero_one_R1",
    ]
    assert table.sizes["experiment"] == 0 and table.attrs["noisy"] == "noisy"
    assert "turnover_loss_R2" not in table["estimator"].values  # one replicate held
    assert float(table.sel(estimator="turnover_loss_R1")["random_label_auc"]) == 1.0
    assert float(table.sel(estimator="final_loss")["random_label_auc"]) == 0.5  # all tied
    assert table.attrs["fitted_turnover_unmuted"] == 1.0
    assert table.attrs["fitted_plain"] == pytest.approx(0.5)
    assert float(table["noisy_cost_runs"].sel(estimator="turnover_loss_R1")) == 1
    np.testing.assert_array_equal(table["mislabeled"].values, wrong)
    np.testing.assert_array_equal(
        table["noisy_estimate"].sel(estimator="final_loss").values, np.zeros(N)
    )


def test_influence_agreement():
    tests = np.arange(3)
    to = xr.Dataset(
        {"influence_example": (("test_example", "rank"), [[1, 2], [3, 4], [5, 6]])},
        coords={"test_example": tests},
    )
    fz = xr.Dataset(
        {
            "influence_example": (("test_example", "rank"), [[2, 9], [3, 4], [7, 8]]),
            "influence": (("test_example", "rank"), [[0.5, 0.1], [0.3, 0.2], [0.9, 0.0]]),
        },
        coords={"test_example": tests},
    )
    out = influence_agreement(to, fz, high=0.15)
    assert out["influence_top_overlap"] == pytest.approx((0.5 + 1 + 0) / 3)
    # high pairs: (0,2) hit, (1,3) hit, (1,4) hit, (2,7) miss
    assert out["influence_high_recall"] == pytest.approx(3 / 4)
    assert out["influence_high_pairs"] == 4


def test_reliability_corrected_correlations_and_the_truths_agreement():
    rng = np.random.default_rng(0)
    truth_mem = np.where(np.arange(N) < 40, 0.6, 0.0) + rng.uniform(0, 0.1, N)
    truth = _truth(truth_mem)
    runs = Runs("clean", _scores([truth_mem + rng.normal(0, 0.05, N)]), truth=truth)
    table = estimator_table(clean=[runs], replicates=(1,)).sel(experiment="clean")
    half = truth["memorization_half"].values
    r_h = spearman(half[0], half[1])
    assert float(table["truth_half_spearman"]) == pytest.approx(r_h)
    assert float(table["truth_reliability"]) == pytest.approx(2 * r_h / (1 + r_h))
    ceiling = table.sel(estimator="fz_half_vs_half")
    assert float(table["truth_half_auc"]) == float(ceiling["auc_memorized"])
    assert float(table["truth_half_overlap"]) == float(ceiling["top_overlap"])
    row = table.sel(estimator="turnover_loss_R1")
    assert float(row["spearman_corrected"]) == pytest.approx(
        float(row["spearman"]) / np.sqrt(float(table["truth_reliability"]))
    )
    r_p = pearson(half[0], half[1])
    assert float(row["pearson_corrected"]) == pytest.approx(
        float(row["pearson"]) * np.sqrt((1 + r_p) / (2 * r_p))
    )
    assert float(table["truth_seconds"]) == 99.0
    assert float(table["truth_train_seconds"]) == 80.0  # the truth's training, its own clock
    assert table["truth_design"].item() == "random"


def test_equal_cost_difference_of_the_best_estimate_and_the_best_peer():
    """A turn-over estimate equal to the truth against peers that are noise: the difference
    is large and its interval above 0; swap them and it is below 0. Estimates over 4 runs
    are out of the comparison."""
    rng = np.random.default_rng(0)
    truth_mem = np.where(np.arange(N) < 40, 0.6, 0.0) + rng.uniform(0, 0.1, N)
    noise = rng.normal(0, 1, N)
    runs = Runs("clean", _scores([truth_mem]), _estimators(noise, np.ones(N, bool)),
                _truth(truth_mem))  # fmt: skip
    table = estimator_table(clean=[runs], replicates=(1,)).sel(experiment="clean")
    for metric in GOAL_METRICS:
        at = table.sel(goal_metric=metric)
        assert at["equal_cost_estimate"].item().startswith("turnover_")
        assert at["equal_cost_peer"].item() in PEER_NAMES
        assert float(at["equal_cost_difference"]) > 0.3
        assert 0 < float(at["equal_cost_low"]) <= float(at["equal_cost_high"])
    truth = _truth(truth_mem)
    rows = estimate_rows({"new": (noise, 1.0, "oob"), "csl": (truth_mem, 2.0, "peer"),
                          "costly": (truth_mem, 8.0, "oob")}, truth)  # fmt: skip
    assert rows["csl"].metrics["auc_memorized"] == pytest.approx(1.0)
    est, peer, d, low, high = equal_cost_difference(
        rows, truth_mem, "auc_memorized", np.random.default_rng(0), draws=200
    )
    assert (est, peer) == ("new", "csl") and d < -0.3 and high < 0  # "costly" over budget
    with pytest.raises(ValueError, match="estimate 'bad': 3 values"):
        estimate_rows({"bad": (np.zeros(3), 1.0, "oob")}, truth)


def test_an_estimates_file_replaces_the_nominal_costs():
    rng = np.random.default_rng(0)
    truth_mem = np.where(np.arange(N) < 40, 0.6, 0.0) + rng.uniform(0, 0.1, N)
    estimates = xr.Dataset(
        {"oob_probability_K8": ("example", truth_mem[::-1]),
         "cumulative_loss_R4": ("example", rng.normal(size=N)),
         "no_cost": ("example", np.zeros(N))},
        coords={"example": np.arange(N)[::-1]},
    )  # fmt: skip
    estimates["oob_probability_K8"].attrs.update(family="oob", cost_runs=3.7)
    estimates["cumulative_loss_R4"].attrs.update(family="peer", cost_runs=4.02)
    assert set(estimates_from_dataset(estimates)) == {"oob_probability_K8", "cumulative_loss_R4"}
    runs = Runs("clean", _scores([truth_mem]), truth=_truth(truth_mem), estimates=estimates)
    table = estimator_table(clean=[runs], replicates=(1,)).sel(experiment="clean")
    assert "turnover_loss_R1" not in table["estimator"].values  # the file replaces them
    oob = table.sel(estimator="oob_probability_K8")
    assert float(oob["cost_runs"]) == 3.7 and oob["family"].item() == "oob"
    assert float(oob["auc_memorized"]) == pytest.approx(1.0)  # aligned by example id
    at = table.sel(goal_metric="auc_memorized")
    assert at["equal_cost_peer"].item() == ""  # the peer costs more than 4 runs
    assert np.isnan(float(at["equal_cost_difference"]))
    with pytest.raises(ValueError, match="no variable with family and cost_runs"):
        estimates_from_dataset(estimates[["no_cost"]])


def _peer_runs(mem, runs, rng):
    """A peers artifact of ``runs`` plain runs whose losses follow ``mem`` with noise."""
    epochs = 3
    single = []
    for _ in range(runs):
        loss = mem[None] + rng.normal(0, 0.3, (epochs, N))
        records = xr.Dataset(
            {"loss": (("epoch", "example"), loss),
             "correct": (("epoch", "example"), loss < 0.3),
             "lr": ("epoch", np.full(epochs, 0.1)),
             "accuracy": ("epoch", (loss < 0.3).mean(1))},
            coords={"epoch": np.arange(1, epochs + 1), "example": np.arange(N)},
        )  # fmt: skip
        single.append(estimators_from_records(records))
    return average_peers(single, list(range(runs)))


def test_peers_over_fewer_runs_enter_the_equal_cost_comparison():
    """Peers over 4 plain runs cost more than the 4-run budget (their records): the same
    peers over the first 1-3 runs are rows of their own at r/4 of the cost, recomputed from
    those runs alone, and the best of them is the equal-cost comparison's peer."""
    rng = np.random.default_rng(3)
    truth_mem = np.where(np.arange(N) < 40, 0.6, 0.0) + rng.uniform(0, 0.1, N)
    peers = _peer_runs(truth_mem, 4, rng)
    estimates = xr.Dataset(coords={"example": np.arange(N)})
    for name in peers.attrs["estimators"]:
        estimates[name] = ("example", peers[name].values)
        estimates[name].attrs.update(family="peer", cost_runs=4.4)
    estimates["oob_loss"] = ("example", rng.normal(size=N))
    estimates["oob_loss"].attrs.update(family="oob", cost_runs=3.0)
    estimates["turnover_loss"] = ("example", rng.normal(size=N))
    estimates["turnover_loss"].attrs.update(
        family="turnover", cost_runs=4.4, cost_basis="training_seconds"
    )
    scores = _scores([rng.normal(size=N), rng.normal(size=N)], seconds=(10.0, 12.0))
    runs = Runs("clean", scores, peers, _truth(truth_mem), estimates=estimates)
    table = estimator_table(clean=[runs], replicates=(1,)).sel(experiment="clean")
    # one of the two turn-over replicates: the share of the measured cost it took
    assert float(table.sel(estimator="turnover_loss_R1")["cost_runs"]) == pytest.approx(2.0)
    assert float(table.sel(estimator="turnover_loss_R2")["cost_runs"]) == pytest.approx(4.4)
    counted = estimates.copy()
    counted["turnover_loss"].attrs["cost_basis"] = "operations"  # counted: r / R of it
    again = estimator_table(clean=[Runs("clean", scores, peers, _truth(truth_mem),
                                        estimates=counted)], replicates=(1,))  # fmt: skip
    one = again.sel(experiment="clean", estimator="turnover_loss_R1")
    assert float(one["cost_runs"]) == pytest.approx(2.2)
    names = set(table["estimator"].values)
    assert {"cumulative_loss_R1", "cumulative_loss_R2", "cumulative_loss_R3"} <= names
    assert "cumulative_loss_R4" not in names and "tracin_self_influence_R1" not in names
    csl3 = table.sel(estimator="cumulative_loss_R3")
    assert csl3["family"].item() == "peer"
    assert float(csl3["cost_runs"]) == pytest.approx(3.3)
    want = quality(peers_of_first_runs(peers, 3)["cumulative_loss"], truth_mem)["auc"]
    assert float(csl3["auc_memorized"]) == pytest.approx(want)
    at = table.sel(goal_metric="auc_memorized")
    assert at["equal_cost_peer"].item().endswith(("_R3", "_R2", "_R1"))
    assert at["equal_cost_estimate"].item() in ("oob_loss", "turnover_loss_R1")
    assert float(at["equal_cost_high"]) < 0  # noise against a peer that follows the truth
    # without an estimates file the peers' nominal cost is their runs: R3 costs 3
    plain = estimator_table(clean=[Runs("clean", _scores([truth_mem]), peers,
                                        _truth(truth_mem))], replicates=(1,))  # fmt: skip
    assert float(plain.sel(experiment="clean", estimator="final_loss_R3")["cost_runs"]) == 3.0
