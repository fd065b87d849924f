"""Quality of a memorization estimator against the Feldman–Zhang truth.

Plain functions on numpy arrays over the same examples. Pairs where either array
is NaN are left out (an FZ estimate is NaN for an example in or out of every
model's subset).

- :func:`roc_auc`: the probability that a positive example scores above a
  negative one (ties count one half), i.e. the Mann–Whitney statistic;
- :func:`memorization_auc`: ROC AUC of the estimator for "FZ memorization >
  ``threshold``" (default 0.25);
- :func:`top_overlap`: ``|top(est) ∩ top(truth)| / k`` with ``k =
  round(fraction · n)`` (default the top 10 %), the top sets taken in
  decreasing order with ties broken by position (first wins);
- :func:`spearman`: Spearman's rank correlation (average ranks for ties);
- :func:`random_label_auc`: ROC AUC of the estimator for "this example's label
  was randomised";
- :func:`quality`: the first three together.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "memorization_auc",
    "quality",
    "random_label_auc",
    "roc_auc",
    "spearman",
    "top_overlap",
]


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
    ranks = rankdata(scores)  # average ranks: ties count one half
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def memorization_auc(estimate, truth, threshold: float = 0.25) -> float:
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


def spearman(estimate, truth) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks)."""
    est, tru = _pair(estimate, truth)
    if len(est) < 2:
        return float("nan")
    ra, rb = rankdata(est), rankdata(tru)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def random_label_auc(estimate, is_random) -> float:
    """ROC AUC of ``estimate`` for spotting the examples whose label was randomised."""
    return roc_auc(estimate, is_random)


def quality(estimate, truth, threshold: float = 0.25, fraction: float = 0.1) -> dict[str, float]:
    """``auc`` (for truth > threshold), ``top_overlap`` and ``spearman`` of an estimator."""
    return {
        "auc": memorization_auc(estimate, truth, threshold),
        "top_overlap": top_overlap(estimate, truth, fraction),
        "spearman": spearman(estimate, truth),
    }
