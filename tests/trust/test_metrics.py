import numpy as np
import pytest
from scipy.stats import pearsonr, rankdata, spearmanr

from memorization.trust.metrics import (
    QUALITY,
    _dense_descending,
    _ranks_and_order,
    _top,
    memorization_auc,
    pearson,
    quality,
    quality_draws,
    random_label_auc,
    roc_auc,
    spearman,
    top_overlap,
)

TRUTH = np.linspace(-0.1, 0.9, 50)  # 16 examples above 0.25


def test_identical_and_reversed_rankings():
    est = 3 * TRUTH + 1  # same ranking, other scale
    assert quality(est, TRUTH) == {
        "auc": 1.0,
        "top_overlap": 1.0,
        "spearman": pytest.approx(1.0),
        "pearson": pytest.approx(1.0),
    }
    rev = quality(-TRUTH, TRUTH)
    assert rev["auc"] == 0.0
    assert rev["top_overlap"] == 0.0
    assert rev["spearman"] == pytest.approx(-1.0)
    assert rev["pearson"] == pytest.approx(-1.0)


def test_roc_auc_known_values_and_ties():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5  # all tied: chance
    assert roc_auc([0.2, 0.5, 0.5], [0, 1, 0]) == pytest.approx(0.75)  # a tie counts 1/2
    assert np.isnan(roc_auc([0.1, 0.2], [1, 1]))
    assert random_label_auc([0.9, 0.1, 0.8, 0.2], [True, False, True, False]) == 1.0
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1])


def test_memorization_auc_thresholds_the_truth():
    est = np.array([0.0, 0.1, 0.3, 0.2])
    truth = np.array([0.0, 0.3, 0.5, 0.1])
    # positives (truth > 0.25): 1 and 2; negatives 0 and 3; pairs won: (1,0), (2,0), (2,3)
    assert memorization_auc(est, truth) == pytest.approx(3 / 4)
    assert memorization_auc(est, truth, threshold=0.4) == pytest.approx(1.0)


def test_top_overlap_counts_the_shared_top():
    truth = np.arange(20.0)
    est = truth.copy()
    est[[19, 0]] = est[[0, 19]]  # the truth's top example falls out of the top 2
    assert top_overlap(est, truth, fraction=0.1) == 0.5
    assert top_overlap(est, truth, fraction=0.5) == pytest.approx(0.9)


def test_spearman_is_rank_based_and_handles_ties():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(np.exp(x), x) == pytest.approx(1.0)  # monotone: 1
    # scipy's value for tied data
    a = np.array([1, 2, 2, 3, 5.0])
    b = np.array([2, 1, 4, 4, 3.0])
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)


def test_pearson_is_scipys():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = 0.5 * a + rng.normal(size=200)
    assert pearson(a, b) == pytest.approx(pearsonr(a, b).statistic, rel=1e-12)
    assert pearson(np.exp(a), a) == pytest.approx(pearsonr(np.exp(a), a).statistic, rel=1e-12)
    assert pearson(np.exp(a), a) < spearman(np.exp(a), a) == pytest.approx(1.0)  # not ranks
    assert np.isnan(pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]))  # constant: undefined
    assert np.isnan(pearson([1.0], [2.0]))


def test_resampled_ranks_and_order_are_rankdata_and_the_stable_top():
    rng = np.random.default_rng(1)
    for values in (rng.normal(size=(4, 60)), rng.integers(0, 4, (5, 80)).astype(float)):
        rows = rng.integers(0, values.shape[1], values.shape[1])
        ranks, order = _ranks_and_order(_dense_descending(values)[:, rows])
        np.testing.assert_array_equal(ranks, rankdata(values[:, rows], axis=1))
        for e, row in enumerate(values[:, rows]):
            np.testing.assert_array_equal(order[e, :7], _top(row, 7))


def test_quality_draws_are_quality_of_the_resamples():
    """Each draw is :func:`quality` of one resample of the examples, for every estimator
    (with ties: a discrete estimator), the resample shared by the estimators."""
    rng = np.random.default_rng(2)
    truth = rng.uniform(-0.1, 0.9, 120)
    estimates = np.stack([truth + rng.normal(0, 0.2, 120), np.round(4 * truth), -truth])
    draws = quality_draws(estimates, truth, np.random.default_rng(7), draws=5)
    assert set(draws) == set(QUALITY) and draws["auc"].shape == (5, 3)
    replay = np.random.default_rng(7)
    for d in range(5):
        rows = replay.integers(0, 120, 120)
        for e, est in enumerate(estimates):
            want = quality(est[rows], truth[rows])
            for metric in QUALITY:
                assert draws[metric][d, e] == pytest.approx(want[metric], abs=1e-12), metric
    # NaN examples are left out before resampling
    truth[:10] = np.nan
    assert np.isfinite(quality_draws(estimates, truth, rng, draws=3)["spearman"]).all()


def test_nan_pairs_are_left_out():
    est = np.array([0.1, np.nan, 0.3, 0.9])
    truth = np.array([0.0, 0.9, np.nan, 0.5])
    # only examples 0 and 3 remain: est and truth agree
    assert memorization_auc(est, truth) == 1.0
    assert spearman(est, truth) == pytest.approx(1.0)
    assert pearson(est, truth) == pytest.approx(1.0)
    assert top_overlap(est, truth, fraction=0.5) == 1.0
