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

from ..method.scoring import SCORE_FORMS
from .metrics import memorization_auc, random_label_auc, spearman, top_overlap
from .peers import ESTIMATORS
from .replicates import subset_means

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


class _Rows:
    """The table being built: one row per estimator, its metrics and cost."""

    def __init__(self, truth: xr.Dataset | None, threshold: float, top: float) -> None:
        self.truth, self.threshold, self.top = truth, threshold, top
        self.rows: dict[str, dict] = {}

    def row(self, name, family, runs, seconds) -> dict:
        self.rows.setdefault(name, {"family": family, "runs": runs, "seconds": seconds})
        return self.rows[name]

    def clean(self, entry, values, examples) -> None:
        """Metrics against the Feldman-Zhang truth (nothing without a truth)."""
        if self.truth is None:
            return
        mem = _aligned(values, examples, self.truth["example"].values)
        self._against(entry, mem, self.truth["memorization"].values)

    def _against(self, entry, values, truth) -> None:
        entry["auc_memorized"] = memorization_auc(values, truth, self.threshold)
        entry["top_overlap"] = top_overlap(values, truth, self.top)
        entry["spearman"] = spearman(values, truth)

    def turnover(self, scores, regime: str, tag: str, replicates) -> None:
        """Every score form of the first R replicates of a turn-over run."""
        held = int(scores.sizes.get("replicate", 1))
        for r in [r for r in replicates if r <= held]:
            for form, var in SCORE_FORMS.items():
                if var not in scores:
                    continue
                entry = self.row(
                    f"turnover_{form}_R{r}{tag}",
                    "turn-over",
                    float(r),
                    _replicate_seconds(scores, r),
                )
                values = subset_means(scores, var, r)
                if regime == "clean":
                    self.clean(entry, values, scores["example"].values)
                else:
                    entry["random_label_auc"] = random_label_auc(
                        values, scores["mislabeled"].values
                    )

    def peers(self, est, labels) -> None:
        """The peers of one plain run: against the truth, or (``labels``) the wrong labels."""
        for name in ESTIMATORS:
            entry = self.row(name, "peer", 1.0, float(est.attrs.get("seconds", np.nan)))
            if labels is None:
                self.clean(entry, est[name].values, est["example"].values)
                continue
            wrong = _aligned(
                labels["mislabeled"].values, labels["example"].values, est["example"].values
            )
            entry["random_label_auc"] = random_label_auc(est[name].values, wrong > 0)

    def ceiling(self) -> None:
        """The truth's two halves against each other: what no estimator can beat."""
        truth = self.truth
        k = int(truth.attrs.get("n_models_merged", truth.attrs.get("n_models", 0)))
        frac = float(truth.attrs.get("fraction", 0.7))
        entry = self.row("fz_half_vs_half", "ground truth", k * frac / 2, np.nan)
        half = truth["memorization_half"].values
        self._against(entry, half[0], half[1])

    def dataset(self) -> xr.Dataset:
        names = list(self.rows)

        def column(key):
            return ("estimator", np.array([self.rows[n].get(key, np.nan) for n in names], float))

        data = {metric: column(metric) for metric in METRICS}
        data["cost_runs"], data["cost_seconds"] = column("runs"), column("seconds")
        family = np.array([self.rows[n]["family"] for n in names], dtype=object)
        return xr.Dataset(data, coords={"estimator": names, "family": ("estimator", family)})


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
    table = _Rows(truth, threshold, top)
    runs = [(clean_scores, "clean", ""), (noisy_scores, "noisy", "")]
    runs += [(ds, "clean", f"[{n}]") for n, ds in (variants or {}).items()]
    runs += [(ds, "noisy", f"[{n}]") for n, ds in (noisy_variants or {}).items()]
    for scores, regime, tag in runs:
        if scores is not None:
            table.turnover(scores, regime, tag, replicates)
    if clean_estimators is not None:
        table.peers(clean_estimators, None)
    if noisy_estimators is not None and noisy_scores is not None:
        table.peers(noisy_estimators, noisy_scores)
    if truth is not None:
        table.ceiling()
    ds = table.dataset()
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
