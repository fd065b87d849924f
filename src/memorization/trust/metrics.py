"""Quality of a memorization estimator against the Feldman–Zhang truth.

Plain functions on numpy arrays over the same examples. Pairs where either array
is NaN are left out (an FZ estimate is NaN for an example in or out of every
model's subset).

- :func:`roc_auc`: the probability that a positive example scores above a
  negative one (ties count one half), i.e. the Mann–Whitney statistic;
- :func:`memorization_auc`: ROC AUC of the estimator for "FZ memorization >
  ``threshold``" (default :data:`MEMORIZED`, 0.25);
- :func:`top_overlap`: ``|top(est) ∩ top(truth)| / k`` with ``k =
  round(fraction · n)`` (default the top 10 %), the top sets taken in
  decreasing order with ties broken by position (first wins);
- :func:`spearman`: Spearman's rank correlation (average ranks for ties);
- :func:`pearson`: Pearson's correlation of the values themselves (what Ravikumar et
  al. report for the cumulative sample loss against FZ scores);
- :func:`random_label_auc`: ROC AUC of the estimator for "this example's label
  was randomised";
- :func:`quality`: AUC, top overlap, Spearman and Pearson together;
- :func:`quality_draws`: the same four metrics of many estimators on resamples of the
  examples (with replacement), vectorised over the estimators, for the intervals of the
  validation figure's claims;
- :func:`spearman_brown`: the reliability of a truth of K models from the correlation
  ``r_h`` of its two halves, ``R = 2 r_h / (1 + r_h)``;
- :func:`corrected_correlation`: an estimator's correlation with a noisy truth divided by
  ``sqrt(R)``, its correlation with the truth the models estimate (Spearman's correction
  for attenuation, on the truth's side only: the estimator's own noise stays);
- :func:`difference_interval`: the 95 % interval of the difference of one metric between
  two estimators, from a paired bootstrap over the examples.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CLEAN_METRICS",
    "GOAL_RUNS",
    "MEMORIZED",
    "QUALITY",
    "REPLICATES_COMPARED",
    "corrected_correlation",
    "difference_interval",
    "memorization_auc",
    "pearson",
    "quality",
    "quality_draws",
    "random_label_auc",
    "roc_auc",
    "spearman",
    "spearman_brown",
    "top_overlap",
]

#: an example counts as memorized when its (true) memorization exceeds this: Feldman and
#: Zhang's threshold of high memorization
MEMORIZED = 0.25

#: the compute, in plain training runs, at which every estimate is compared with the peers
#: (the validation's equal-cost budget)
GOAL_RUNS = 4

#: the turn-over replicates R the validation compares (its figure's default)
REPLICATES_COMPARED = (1, 2, 4, 8)


def _rankdata(values) -> np.ndarray:
    """scipy's average ranks (ties share their mean rank)."""
    from scipy.stats import rankdata  # heavy: loaded where ranks are computed, not on import

    return rankdata(values)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"arrays of different lengths: {a.shape[0]} and {b.shape[0]}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep]


def roc_auc(scores, positive) -> float:
    """ROC AUC of ``scores`` for the boolean ``positive`` (NaN scores left out).

    NaN if there are no positives or no negatives.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"{scores.shape[0]} scores for {positive.shape[0]} labels")
    keep = ~np.isnan(scores)
    scores, positive = scores[keep], positive[keep]
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _rankdata(scores)  # average ranks: ties count one half
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def memorization_auc(estimate, truth, threshold: float = MEMORIZED) -> float:
    """ROC AUC of ``estimate`` for ``truth > threshold``."""
    est, tru = _pair(estimate, truth)
    return roc_auc(est, tru > threshold)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-values, kind="stable")[:k]


def top_overlap(estimate, truth, fraction: float = 0.1) -> float:
    """Fraction of the truth's top ``fraction`` that is also in the estimate's top."""
    est, tru = _pair(estimate, truth)
    k = max(1, int(round(fraction * len(est))))
    if len(est) == 0:
        return float("nan")
    return len(np.intersect1d(_top(est, k), _top(tru, k))) / k


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a**2).sum() * (b**2).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def spearman(estimate, truth) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks)."""
    est, tru = _pair(estimate, truth)
    if len(est) < 2:
        return float("nan")
    return _correlation(_rankdata(est), _rankdata(tru))


def pearson(estimate, truth) -> float:
    """Pearson's correlation coefficient (NaN for fewer than 2 pairs or a constant array)."""
    return _correlation(*_pair(estimate, truth))


def random_label_auc(estimate, is_random) -> float:
    """ROC AUC of ``estimate`` for spotting the examples whose label was randomised."""
    return roc_auc(estimate, is_random)


#: the metrics of :func:`quality` and :func:`quality_draws`
QUALITY = ("auc", "top_overlap", "spearman", "pearson")

#: the clean regime's metrics (the validation table's columns), each named after
#: :func:`quality`'s
CLEAN_METRICS = {
    "auc_memorized": "auc",
    "top_overlap": "top_overlap",
    "spearman": "spearman",
    "pearson": "pearson",
}


def quality(
    estimate, truth, threshold: float = MEMORIZED, fraction: float = 0.1
) -> dict[str, float]:
    """``auc`` (for truth > threshold), ``top_overlap``, ``spearman`` and ``pearson``."""
    return {
        "auc": memorization_auc(estimate, truth, threshold),
        "top_overlap": top_overlap(estimate, truth, fraction),
        "spearman": spearman(estimate, truth),
        "pearson": pearson(estimate, truth),
    }


def _rows_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` [E, n] with ``b`` [n]."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean()
    denom = np.sqrt((a**2).sum(1) * (b**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, a @ b / denom, np.nan)


def _dense_descending(values: np.ndarray) -> np.ndarray:
    """Each row's dense rank in decreasing order (0: the largest value; equal values share
    a rank), as the smallest unsigned integer type that holds it (16 bits: a radix sort)."""
    dtype = np.uint16 if values.shape[1] <= np.iinfo(np.uint16).max else np.int64
    return np.stack([np.unique(-row, return_inverse=True)[1].astype(dtype) for row in values])


def _ranks_and_order(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (ascending, ties share their mean rank, as ``rankdata``) of every row
    of a resample [E, n] given by its dense decreasing ranks (:func:`_dense_descending`),
    and each row's positions in decreasing order, ties by position (first wins, as
    :func:`top_overlap`): one stable sort for both."""
    e, n = dense.shape
    order = np.argsort(dense, axis=1, kind="stable")
    ordered = np.take_along_axis(dense, order, 1)
    index = np.broadcast_to(np.arange(n), (e, n))
    starts = np.ones((e, n), bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = np.ones((e, n), bool)
    ends[:, :-1] = starts[:, 1:]
    first = np.maximum.accumulate(np.where(starts, index, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, index, n)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((e, n))
    np.put_along_axis(ranks, order, n - (first + last) / 2, 1)  # n + 1 - descending rank
    return ranks, order


def _draw(values, dense, truth, threshold: float, k: int) -> np.ndarray:
    """[4, E]: :data:`QUALITY` of every row of ``values`` (a resample, with its dense ranks)
    against ``truth``."""
    ranks, order = _ranks_and_order(dense)
    positive = truth > threshold
    n_pos = int(positive.sum())
    n_neg = len(truth) - n_pos
    if n_pos and n_neg:
        auc = (ranks[:, positive].sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    else:
        auc = np.full(len(values), np.nan)
    in_top = np.zeros(len(truth), bool)
    in_top[_top(truth, k)] = True
    overlap = in_top[order[:, :k]].sum(1) / k
    spear = _rows_correlation(ranks, _rankdata(truth))
    return np.stack([auc, overlap, spear, _rows_correlation(values, truth)])


def quality_draws(
    estimates,
    truth,
    rng: np.random.Generator,
    draws: int = 400,
    threshold: float = MEMORIZED,
    fraction: float = 0.1,
) -> dict[str, np.ndarray]:
    """``[draws, E]`` of each metric of :data:`QUALITY` on resamples of the examples.

    ``estimates`` [E, n] (E estimators of the same n examples) and ``truth`` [n]; each draw
    resamples the n examples with replacement (the same resample for every estimator, so
    differences between estimators are paired) and recomputes what :func:`quality` does,
    vectorised over the estimators. Examples where the truth or any estimate is NaN are
    left out first.
    """
    values = np.atleast_2d(np.asarray(estimates, dtype=np.float64))
    truth = np.asarray(truth, dtype=np.float64).ravel()
    if values.shape[1] != truth.shape[0]:
        raise ValueError(f"{values.shape[1]} estimates per estimator for {len(truth)} truths")
    keep = np.isfinite(truth) & np.isfinite(values).all(0)
    values, truth = values[:, keep], truth[keep]
    n = len(truth)
    out = np.full((draws, len(QUALITY), len(values)), np.nan)
    if n >= 2:
        k = max(1, int(round(fraction * n)))
        dense = _dense_descending(values)
        for d in range(draws):
            rows = rng.integers(0, n, n)
            out[d] = _draw(values[:, rows], dense[:, rows], truth[rows], threshold, k)
    return {metric: out[:, m] for m, metric in enumerate(QUALITY)}


def spearman_brown(r_half: float) -> float:
    """Reliability of a truth of K models from the correlation ``r_half`` of two truths of
    K/2: ``2 r / (1 + r)`` (NaN for NaN or r <= -1; a negative r gives a negative R)."""
    r = float(r_half)
    if not np.isfinite(r) or r <= -1:
        return float("nan")
    return 2 * r / (1 + r)


def corrected_correlation(raw, reliability: float):
    """``raw / sqrt(reliability)``: the correlation with the noise-free truth that an
    observed correlation ``raw`` with a truth of ``reliability`` implies (NaN where the
    reliability is not positive). The estimator's own noise is not corrected for."""
    rel = float(reliability)
    raw = np.asarray(raw, dtype=np.float64)
    out = raw / np.sqrt(rel) if np.isfinite(rel) and rel > 0 else np.full_like(raw, np.nan)
    return float(out) if out.ndim == 0 else out


def difference_interval(
    a,
    b,
    truth,
    metric: str,
    rng: np.random.Generator,
    draws: int = 1000,
    threshold: float = MEMORIZED,
    fraction: float = 0.1,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(difference, low, high)``: ``metric`` (one of :data:`QUALITY`) of estimate ``a``
    minus that of ``b`` against ``truth``, and its ``level`` interval (percentiles) from
    ``draws`` resamples of the examples, the same resample for both (paired)."""
    if metric not in QUALITY:
        raise ValueError(f"metric must be one of {QUALITY}, got {metric!r}")
    pair = np.stack([np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()])
    truth = np.asarray(truth, np.float64).ravel()
    keep = np.isfinite(truth) & np.isfinite(pair).all(0)  # the examples both are scored on
    pair, truth = pair[:, keep], truth[keep]
    q = quality(pair[0], truth, threshold, fraction)[metric]
    q -= quality(pair[1], truth, threshold, fraction)[metric]
    d = quality_draws(pair, truth, rng, draws, threshold, fraction)[metric]
    diff = d[:, 0] - d[:, 1]
    diff = diff[np.isfinite(diff)]
    if not len(diff):
        return float(q), float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(diff, [tail, 100 - tail])
    return float(q), float(low), float(high)
