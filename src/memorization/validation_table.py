"""How good each memorization estimator is, and what it costs: ``validation.nc``.

Two regimes:

- **clean**: an experiment with true labels and a Feldman-Zhang ground truth
  (``truth.nc``). Every estimator is scored against the full FZ memorization: ROC AUC
  for "memorization > threshold", overlap of the top 10 %, Spearman (metrics in
  :mod:`memorization.validation`). The ceiling is the FZ estimate of one half of the
  models against the other half (``fz_half_vs_half``): no estimator can be expected to
  agree with the truth better than the truth agrees with itself.
- **noisy**: an experiment with random labels trained until the model has fitted them;
  every estimator is scored by its ROC AUC for the wrong labels. Before the random
  labels are fitted, even the final loss finds them (issue 9), so the fraction of them
  each model has fitted is recorded (``fitted_*`` attributes).

Estimators: the turn-over scores of the first R replicates (each R of ``replicates``
up to the replicates the scores hold) in each score form (loss, probability and 0/1
difference), also for the ``variants`` (other turn-over experiments on the same data and
labels, named ``turnover_<form>_R<r>[<experiment>]``), and the peers of
:mod:`memorization.estimators` (TracIn self-influence, final loss, slow learning, forgetting
events) from one plain run. Cost: training-run
equivalents (turn-over: R runs; peers: one run; FZ: K models on a fraction of the data)
and the seconds the artifacts' provenance recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from .estimators import ESTIMATORS
from .experiment import SCORE_FORMS
from .replicates import subset_means
from .validation import memorization_auc, random_label_auc, spearman, top_overlap

__all__ = ["METRICS", "estimator_table", "influence_agreement"]

#: metric -> long name
METRICS = {
    "auc_memorized": "ROC AUC for Feldman-Zhang memorization > threshold (clean regime)",
    "top_overlap": "overlap of the top 10 % with Feldman-Zhang's (clean regime)",
    "spearman": "Spearman rank correlation with Feldman-Zhang memorization (clean regime)",
    "random_label_auc": "ROC AUC for the wrong labels, after they are fitted (noisy regime)",
}


def _replicate_seconds(scores: xr.Dataset, r: int) -> float:
    if "replicate_seconds" in scores:
        return float(scores["replicate_seconds"].values[:r].sum())
    total = float(scores.attrs.get("seconds", np.nan))
    return total * r / int(scores.attrs.get("replicates", 1))


def _aligned(values: np.ndarray, examples: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values`` (over ``examples``) in the order of the example ids ``order``."""
    index = {int(e): k for k, e in enumerate(examples)}
    return np.asarray([values[index[int(e)]] for e in order], dtype=np.float64)


def estimator_table(
    *,
    truth: xr.Dataset | None,
    clean_scores: xr.Dataset | None,
    clean_estimators: xr.Dataset | None,
    noisy_scores: xr.Dataset | None = None,
    noisy_estimators: xr.Dataset | None = None,
    variants: Mapping[str, xr.Dataset] | None = None,
    noisy_variants: Mapping[str, xr.Dataset] | None = None,
    replicates: Sequence[int] = (1, 2, 4, 8),
    threshold: float = 0.25,
    top: float = 0.1,
) -> xr.Dataset:
    """The quality of every estimator in both regimes, with its cost."""
    rows: dict[str, dict] = {}

    def row(name, family, runs, seconds):
        rows.setdefault(name, {"family": family, "runs": runs, "seconds": seconds})
        return rows[name]

    def clean_metrics(entry, values, examples):
        if truth is None:
            return
        mem = _aligned(values, examples, truth["example"].values)
        fz = truth["memorization"].values
        entry["auc_memorized"] = memorization_auc(mem, fz, threshold)
        entry["top_overlap"] = top_overlap(mem, fz, top)
        entry["spearman"] = spearman(mem, fz)

    def noisy_metrics(entry, values, ds):
        entry["random_label_auc"] = random_label_auc(values, ds["mislabeled"].values)

    runs = [(clean_scores, "clean", ""), (noisy_scores, "noisy", "")]
    runs += [(ds, "clean", f"[{n}]") for n, ds in (variants or {}).items()]
    runs += [(ds, "noisy", f"[{n}]") for n, ds in (noisy_variants or {}).items()]
    for scores, regime, tag in runs:
        if scores is None:
            continue
        held = int(scores.sizes.get("replicate", 1))
        for r in [r for r in replicates if r <= held]:
            for form, var in SCORE_FORMS.items():
                if var not in scores:
                    continue
                name = f"turnover_{form}_R{r}{tag}"
                entry = row(name, "turn-over", float(r), _replicate_seconds(scores, r))
                values = subset_means(scores, var, r)
                if regime == "clean":
                    clean_metrics(entry, values, scores["example"].values)
                else:
                    noisy_metrics(entry, values, scores)
    for est, regime, labels in (
        (clean_estimators, "clean", None),
        (noisy_estimators, "noisy", noisy_scores),
    ):
        if est is None:
            continue
        for name in ESTIMATORS:
            entry = row(name, "peer", 1.0, float(est.attrs.get("seconds", np.nan)))
            if regime == "clean":
                clean_metrics(entry, est[name].values, est["example"].values)
            elif labels is not None:
                wrong = _aligned(
                    labels["mislabeled"].values, labels["example"].values, est["example"].values
                )
                entry["random_label_auc"] = random_label_auc(est[name].values, wrong > 0)
    if truth is not None:
        k = int(truth.attrs.get("n_models_merged", truth.attrs.get("n_models", 0)))
        frac = float(truth.attrs.get("fraction", 0.7))
        entry = row("fz_half_vs_half", "ground truth", k * frac / 2, np.nan)
        half = truth["memorization_half"].values
        entry["auc_memorized"] = memorization_auc(half[0], half[1], threshold)
        entry["top_overlap"] = top_overlap(half[0], half[1], top)
        entry["spearman"] = spearman(half[0], half[1])
    names = list(rows)
    data = {
        metric: ("estimator", np.array([rows[n].get(metric, np.nan) for n in names], float))
        for metric in METRICS
    }
    data["cost_runs"] = ("estimator", np.array([rows[n]["runs"] for n in names], float))
    data["cost_seconds"] = ("estimator", np.array([rows[n]["seconds"] for n in names], float))
    ds = xr.Dataset(
        data,
        coords={
            "estimator": names,
            "family": ("estimator", np.array([rows[n]["family"] for n in names], dtype=object)),
        },
    )
    ds.attrs.update(threshold=float(threshold), top_fraction=float(top))
    if truth is not None:
        ds.attrs["truth_seconds"] = float(truth.attrs.get("seconds", np.nan))
        ds.attrs["truth_memorized"] = int((truth["memorization"].values > threshold).sum())
        ds.attrs["truth_models"] = int(truth.attrs.get("n_models_merged", 0))
    ds.attrs.update(_fitted(noisy_scores, noisy_estimators))
    return ds


def _fitted(scores: xr.Dataset | None, est: xr.Dataset | None) -> dict[str, float]:
    """The share of the wrong labels each model fits at the end of training."""
    out = {}
    if scores is not None:
        wrong = scores["mislabeled"].values.astype(bool)
        pred = scores["pred_unmuted"].values
        label = scores["label"].values
        right = pred == label  # [replicate,] example
        out["fitted_turnover_unmuted"] = float(np.mean(right[..., wrong]))
    if est is not None and scores is not None:
        wrong = _aligned(
            scores["mislabeled"].values, scores["example"].values, est["example"].values
        ).astype(bool)
        out["fitted_plain"] = float(est["correct"].values[-1][wrong].mean())
    return out


def influence_agreement(
    turnover: xr.Dataset, truth: xr.Dataset, high: float = 0.15
) -> dict[str, float]:
    """How well the turn-over influence pairs agree with Feldman-Zhang's.

    ``top_overlap``: mean over test examples of the share of FZ's top-k training examples
    that are in the turn-over top-k; ``high_recall``: of the FZ pairs with influence
    ≥ ``high`` (FZ's "high-influence pairs"), the share whose training example is in the
    turn-over top-k of its test example.
    """
    common = np.intersect1d(turnover["test_example"].values, truth["test_example"].values)
    to = turnover.sel(test_example=common)["influence_example"].values
    fz = truth.sel(test_example=common)
    fz_rows, fz_values = fz["influence_example"].values, fz["influence"].values
    k = min(to.shape[1], fz_rows.shape[1])
    overlap = [len(set(a[:k]) & set(b[:k])) / k for a, b in zip(to, fz_rows, strict=True)]
    hits, total = 0, 0
    for a, rows, vals in zip(to, fz_rows, fz_values, strict=True):
        for row, val in zip(rows, vals, strict=True):
            if val >= high:
                total += 1
                hits += int(row in set(a))
    return {
        "influence_top_overlap": float(np.mean(overlap)) if overlap else float("nan"),
        "influence_high_recall": hits / total if total else float("nan"),
        "influence_high_pairs": float(total),
    }
