"""How good each memorization estimator is, and what it costs: ``validation.nc``.

Two regimes:

- **clean**: one or more experiments with true labels and a Feldman-Zhang ground truth
  (``truth.nc``), typically one per architecture (the MLP, the VGG-11, the CCT). Every
  estimator of an experiment is scored against that experiment's full FZ memorization:
  ROC AUC for "memorization > threshold", overlap of the top 10 %, Spearman and Pearson
  (metrics in :mod:`memorization.trust.metrics`). The ceiling is the FZ estimate of one
  half of the models against the other half (``fz_half_vs_half``): no estimator can be
  expected to agree with the truth better than the truth agrees with itself.
- **noisy**: one experiment with random labels trained until the model has fitted them;
  every estimator is scored by its ROC AUC for the wrong labels. Before the random
  labels are fitted, even the final loss finds them, so the fraction of them
  each model has fitted is recorded (``fitted_*`` attributes).

Estimators: the turn-over scores of the first R replicates (each R of ``replicates``
up to the replicates the scores hold) in each score form of
:data:`memorization.method.scoring.SCORE_FORMS` (``turnover_<form>_R<r>``: loss,
probability, 0/1 and sharpened differences, and the cumulative forms summed over the
epochs, e.g. ``turnover_cumulative_R4``), also for the ``variants`` (other turn-over
experiments on the data and labels of a clean or the noisy experiment, named
``turnover_<form>_R<r>[<experiment>]``), and the peers of :mod:`memorization.trust.peers`
(TracIn self-influence, final loss, slow learning, forgetting events, cumulative sample
loss) averaged over the experiment's ``peer_runs`` plain runs, and over each smaller number
r of them (``<peer>_R<r>``, recomputed from the first r runs' records, at r / ``peer_runs``
of the full average's cost). Cost: training-run equivalents (turn-over: R runs; peers: one
run; FZ: K models on a fraction of the data) and the seconds the artifacts' provenance
recorded.

Layout of the table (:func:`estimator_table`): the clean metrics and costs lie over
(``experiment``, ``estimator``), one row of ``experiment`` per clean experiment with its
``architecture`` (the model's name); an estimator an experiment does not have (e.g. R = 8
where it holds 4 replicates) is NaN there. The noisy regime's ``random_label_auc`` and
its costs lie over ``estimator`` alone (one noisy experiment, named by the ``noisy``
attribute). The per-example values the metrics were computed from are kept, so that the
claims can resample the examples: ``estimate`` (``experiment``, ``estimator``,
``example``) against ``truth_memorization`` (``experiment``, ``example``), and
``noisy_estimate`` (``estimator``, ``noisy_example``) against ``mislabeled``.

The truth's own noise: its two halves agree at ``truth_half_*`` (ROC AUC, top-10 %
overlap, Spearman); from the split-half Spearman ``r_h`` the reliability of the full
truth is the Spearman-Brown ``R = 2 r_h / (1 + r_h)`` (``truth_reliability``; from the
split-half Pearson for ``truth_reliability_pearson``), and every estimator's Spearman and
Pearson correlations are also given corrected for it (``spearman_corrected``,
``pearson_corrected``: the raw one divided by ``sqrt(R)``, the correlation with a
noise-free truth; the estimator's own noise is not corrected).

Equal cost: :func:`estimate_rows` scores any mapping name -> (values, cost in plain runs,
family), so a file of estimates with measured costs (:func:`estimates_from_dataset`)
replaces the nominal costs the turn-over and peer artifacts give (R runs, one run); and
per experiment the best estimate that is not a peer at ≤ :data:`GOAL_RUNS` runs is
compared with the best peer at ≤ :data:`GOAL_RUNS` runs on ROC AUC and top-10 % overlap:
``equal_cost_difference`` and its 95 % interval (``equal_cost_low``/``_high``) from a
paired bootstrap over the examples (:func:`memorization.trust.metrics.difference_interval`),
over ``goal_metric``. The best of each side is picked after the fact on the same data.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ..method.forms import SCORE_FORMS
from .metrics import (
    CLEAN_METRICS,
    GOAL_RUNS,
    MEMORIZED,
    REPLICATES_COMPARED,
    corrected_correlation,
    difference_interval,
    quality,
    random_label_auc,
    spearman_brown,
)
from .peer_records import PEER_NAMES, peers_by_run, peers_of_first_runs
from .replicates import subset_means
from .truth_spec import TRUTH_OPTIONS

__all__ = [
    "CLEAN_METRICS",
    "GOAL_METRICS",
    "METRICS",
    "Estimate",
    "Runs",
    "equal_cost_difference",
    "estimate_rows",
    "estimates_from_dataset",
    "estimator_table",
    "influence_agreement",
]

#: metric -> long name
METRICS = {
    "auc_memorized": "ROC AUC for Feldman-Zhang memorization > threshold (clean regime)",
    "top_overlap": "overlap of the top 10 % with Feldman-Zhang's (clean regime)",
    "spearman": "Spearman rank correlation with Feldman-Zhang memorization (clean regime)",
    "pearson": "Pearson correlation with Feldman-Zhang memorization (clean regime)",
    "random_label_auc": "ROC AUC for the wrong labels, after they are fitted (noisy regime)",
}


#: the corrected correlations: column -> the raw column it corrects
CORRECTED = {"spearman_corrected": "spearman", "pearson_corrected": "pearson"}

#: the equal-cost comparison's metrics (its budget: GOAL_RUNS plain runs)
GOAL_METRICS = ("auc_memorized", "top_overlap")
#: resamples of the equal-cost difference's interval
DIFFERENCE_DRAWS = 1000
#: families that are not estimates of the project's own (the comparison's other side)
PEER, TRUTH, TURNOVER = "peer", "ground truth", "turnover"


@dataclass(frozen=True)
class Estimate:
    """One estimator's values over examples, its training cost in plain runs of the
    experiment's model, and its family (``turn-over``, ``peer``, ...). ``examples``: the
    ids of ``values`` (None: already in the truth's order); ``seconds``: measured time."""

    values: np.ndarray
    cost_runs: float
    family: str
    examples: np.ndarray | None = None
    seconds: float = float("nan")


def estimates_from_dataset(ds: xr.Dataset) -> dict[str, Estimate]:
    """Every variable over ``example`` of an estimates file that carries the ``family`` and
    ``cost_runs`` attributes, as an :class:`Estimate`."""
    out = {}
    for name, var in ds.data_vars.items():
        if var.dims == ("example",) and "family" in var.attrs and "cost_runs" in var.attrs:
            out[str(name)] = Estimate(
                var.values, float(var.attrs["cost_runs"]), str(var.attrs["family"]),
                ds["example"].values, float(var.attrs.get("seconds", np.nan)),
            )  # fmt: skip
    if not out:
        raise ValueError("the estimates file holds no variable with family and cost_runs")
    return out


@dataclass
class Runs:
    """The artifacts of one experiment the table is made from (any may be missing)."""

    name: str
    scores: xr.Dataset | None = None
    peers: xr.Dataset | None = None
    truth: xr.Dataset | None = None
    #: other turn-over experiments on this experiment's data and labels: name -> scores
    variants: Mapping[str, xr.Dataset] = field(default_factory=dict)
    #: the model's name (``mlp``, ``vgg11``, ``cct``, ...)
    architecture: str = ""
    #: every estimate of the experiment with its measured cost (an ``estimates.nc``); when
    #: given, it replaces the turn-over scores and peers as the table's estimators
    estimates: xr.Dataset | None = None


def _replicate_seconds(scores: xr.Dataset, r: int) -> float:
    if "replicate_seconds" in scores:
        return float(scores["replicate_seconds"].values[:r].sum())
    total = float(scores.attrs.get("seconds", np.nan))
    return total * r / int(scores.attrs.get("replicates", 1))


def _aligned(values: np.ndarray, examples: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values`` (over ``examples``) in the order of the example ids ``order`` (NaN where
    an id is missing)."""
    da = xr.DataArray(np.asarray(values, dtype=np.float64), coords={"example": examples})
    return da.reindex(example=np.asarray(order)).values


def _turnover(scores: xr.Dataset, tag: str, replicates: Sequence[int]):
    """(name, runs, seconds, values over the scores' examples) of every score form of the
    first R replicates."""
    held = int(scores.sizes.get("replicate", 1))
    for r in [r for r in replicates if r <= held]:
        for form, var in SCORE_FORMS.items():
            if var in scores:
                seconds = _replicate_seconds(scores, r)
                yield f"turnover_{form}_R{r}{tag}", float(r), seconds, subset_means(scores, var, r)


def _candidates(runs: Runs, replicates: Sequence[int]):
    """(name, family, runs, seconds, values, their examples) of every estimator of ``runs``."""
    if runs.estimates is not None:
        # every estimate at its measured cost, and the turn-over scores of fewer replicates
        # and the peers of fewer plain runs (the file holds the experiment's R and
        # peer_runs only): the same families at lower costs, each the share of the measured
        # cost that its replicates or runs took
        held = int(runs.scores.sizes.get("replicate", 1)) if runs.scores is not None else 1
        estimates = estimates_from_dataset(runs.estimates)
        full_turnover, measured = np.nan, False
        for name, e in estimates.items():
            if e.family == TURNOVER:  # named by its replicates, as the rows of fewer are
                basis = runs.estimates[name].attrs.get("cost_basis", "")
                measured = basis == "training_seconds"
                name, full_turnover = f"{name}_R{held}", e.cost_runs
            yield name, e.family, e.cost_runs, e.seconds, e.values, e.examples
        fewer = [r for r in replicates if r < held]
        if fewer:
            examples = runs.scores["example"].values
            all_seconds = _replicate_seconds(runs.scores, held)
            for name, r, seconds, values in _turnover(runs.scores, "", fewer):
                # a measured cost: the share its replicates' seconds took; counted: r / R
                share = seconds / all_seconds if measured and all_seconds > 0 else r / held
                cost = full_turnover * share if np.isfinite(full_turnover) else float(r)
                yield name, TURNOVER, cost, seconds, values, examples
        if runs.peers is not None:
            full = {n: (e.cost_runs, e.seconds) for n, e in estimates.items() if e.family == PEER}
            yield from _fewer_peer_runs(runs.peers, full)
        return
    sources = [(runs.scores, "")] if runs.scores is not None else []
    sources += [(ds, f"[{n}]") for n, ds in runs.variants.items()]
    for scores, tag in sources:
        examples = scores["example"].values
        for name, r, seconds, values in _turnover(scores, tag, replicates):
            yield name, TURNOVER, r, seconds, values, examples
    if runs.peers is not None:
        seconds = float(runs.peers.attrs.get("seconds", np.nan))
        plain_runs = float(runs.peers.attrs.get("peer_runs", 1))  # averaged over peer_runs
        for name in PEER_NAMES:
            if name in runs.peers:
                values = runs.peers[name].values
                yield name, PEER, plain_runs, seconds, values, runs.peers["example"].values
        full = {n: (plain_runs, seconds) for n in PEER_NAMES if n in runs.peers}
        yield from _fewer_peer_runs(runs.peers, full)


def _fewer_peer_runs(peers: xr.Dataset, full: Mapping[str, tuple[float, float]]):
    """(name, family, runs, seconds, values, their examples) of every peer averaged over
    fewer plain runs than the artifact holds (``<peer>_R<r>``, r = 1 .. ``peer_runs`` - 1),
    at the cost of its average over all of them (``full``: name -> (cost in plain runs,
    seconds)) times r / ``peer_runs``: a peer at a lower cost, for the equal-cost
    comparison, as the turn-over scores of fewer replicates are."""
    held = int(peers.sizes.get("run", 1))
    examples = peers["example"].values
    by_run = peers_by_run(peers) if held > 1 else {}
    for r in range(1, held):
        for name, values in peers_of_first_runs(peers, r, by_run).items():
            if name in full:
                cost, seconds = full[name]
                yield f"{name}_R{r}", PEER, cost * r / held, seconds * r / held, values, examples


@dataclass
class _Row:
    family: str
    runs: float
    seconds: float
    metrics: dict[str, float]
    values: np.ndarray | None = None


def estimate_rows(
    estimates: Mapping[str, Estimate | tuple],
    truth: xr.Dataset,
    threshold: float = MEMORIZED,
    top: float = 0.1,
) -> dict[str, _Row]:
    """Every estimate (an :class:`Estimate` or a tuple ``(values, cost_runs, family)`` in
    the truth's example order) against the truth's memorization: the clean metrics, the
    correlations corrected for the truth's reliability, and the costs."""
    order, mem = truth["example"].values, truth["memorization"].values
    reliability = truth_reliability(truth, threshold, top)
    rows = {}
    for name, e in estimates.items():
        e = e if isinstance(e, Estimate) else Estimate(*e)
        values = np.asarray(e.values, dtype=np.float64)
        if e.examples is not None:
            values = _aligned(values, e.examples, order)
        elif values.shape != mem.shape:
            raise ValueError(f"estimate {name!r}: {values.shape[0]} values for {len(mem)} truths")
        q = quality(values, mem, threshold, top)
        metrics = {m: q[key] for m, key in CLEAN_METRICS.items()}
        for col, raw in CORRECTED.items():
            metrics[col] = corrected_correlation(metrics[raw], reliability[f"reliability_{raw}"])
        rows[name] = _Row(e.family, float(e.cost_runs), float(e.seconds), metrics, values)
    return rows


def truth_reliability(truth: xr.Dataset, threshold: float = MEMORIZED, top: float = 0.1) -> dict:
    """The agreement of the truth's two halves (``half_<metric>``) and the Spearman-Brown
    reliability of the full truth from the split-half Spearman and Pearson."""
    half = truth["memorization_half"].values
    q = quality(half[0], half[1], threshold, top)
    out = {f"half_{m}": q[key] for m, key in CLEAN_METRICS.items()}
    for raw in ("spearman", "pearson"):
        out[f"reliability_{raw}"] = spearman_brown(q[raw])
    return out


def _clean_rows(runs: Runs, replicates, threshold: float, top: float) -> dict[str, _Row]:
    """Every estimator of a clean experiment against its truth, and the ceiling."""
    truth = runs.truth
    estimates = {
        name: Estimate(values, r, family, examples, seconds)
        for name, family, r, seconds, values, examples in _candidates(runs, replicates)
    }
    rows = estimate_rows(estimates, truth, threshold, top)
    k = int(truth.attrs.get("n_models_merged", truth.attrs.get("n_models", 0)))
    frac = float(truth.attrs.get("fraction", TRUTH_OPTIONS["fraction"].default))
    agree = truth_reliability(truth, threshold, top)
    metrics = {m: agree[f"half_{m}"] for m in CLEAN_METRICS}
    rows["fz_half_vs_half"] = _Row(TRUTH, k * frac / 2, np.nan, metrics)
    return rows


def equal_cost_difference(
    rows: Mapping[str, _Row],
    truth: np.ndarray,
    metric: str,
    rng: np.random.Generator,
    budget: float = float(GOAL_RUNS),
    threshold: float = MEMORIZED,
    top: float = 0.1,
    draws: int = DIFFERENCE_DRAWS,
) -> tuple[str, str, float, float, float]:
    """``(estimate, peer, difference, low, high)``: the best estimate that is not a peer
    and the best peer, each at ≤ ``budget`` plain runs, by ``metric``, and the 95 %
    interval of the difference of their ``metric`` from a paired bootstrap over the
    examples (empty names and NaN where a side has no estimator)."""

    def best(keep) -> str:
        names = [n for n, r in rows.items() if keep(r) and r.runs <= budget
                 and r.values is not None and np.isfinite(r.metrics[metric])]  # fmt: skip
        return max(names, key=lambda n: rows[n].metrics[metric], default="")

    est = best(lambda r: r.family not in (PEER, TRUTH))
    peer = best(lambda r: r.family == PEER)
    if not est or not peer:
        return est, peer, np.nan, np.nan, np.nan
    d = difference_interval(rows[est].values, rows[peer].values, truth,
                            CLEAN_METRICS[metric], rng, draws, threshold, top)  # fmt: skip
    return est, peer, *d


def _noisy_rows(runs: Runs, replicates) -> dict[str, _Row]:
    """Every estimator of the noisy experiment by its ROC AUC for the wrong labels."""
    order = runs.scores["example"].values
    wrong = runs.scores["mislabeled"].values.astype(bool)
    rows = {}
    for name, family, r, seconds, values, examples in _candidates(runs, replicates):
        aligned = _aligned(values, examples, order)
        metrics = {"random_label_auc": random_label_auc(aligned, wrong)}
        rows[name] = _Row(family, r, seconds, metrics, aligned)
    return rows


def _truth_info(truth: xr.Dataset, threshold: float, top: float) -> dict[str, float]:
    agree = truth_reliability(truth, threshold, top)
    return {
        "truth_seconds": float(truth.attrs.get("seconds", np.nan)),
        "truth_train_seconds": float(truth.attrs.get("train_seconds", np.nan)),
        "truth_memorized": float((truth["memorization"].values > threshold).sum()),
        "truth_models": float(truth.attrs.get("n_models_merged", 0)),
        "truth_half_auc": agree["half_auc_memorized"],
        "truth_half_overlap": agree["half_top_overlap"],
        "truth_half_spearman": agree["half_spearman"],
        "truth_reliability": agree["reliability_spearman"],
        "truth_reliability_pearson": agree["reliability_pearson"],
    }


def _equal_cost(clean: Sequence[Runs], per_exp: list[dict], threshold, top) -> xr.Dataset:
    """The equal-cost comparison of every clean experiment over ``goal_metric``."""
    shape = (len(clean), len(GOAL_METRICS))
    names = {side: np.full(shape, "", dtype=object) for side in ("estimate", "peer")}
    values = {key: np.full(shape, np.nan) for key in ("difference", "low", "high")}
    for i, (runs, rows) in enumerate(zip(clean, per_exp, strict=True)):
        truth = runs.truth["memorization"].values
        for j, metric in enumerate(GOAL_METRICS):
            rng = np.random.default_rng(zlib.crc32(f"{runs.name}:{metric}".encode()))
            out = equal_cost_difference(rows, truth, metric, rng, GOAL_RUNS, threshold, top)
            names["estimate"][i, j], names["peer"][i, j] = out[:2]
            values["difference"][i, j], values["low"][i, j], values["high"][i, j] = out[2:]
    dims = ("experiment", "goal_metric")
    return xr.Dataset(
        {
            "equal_cost_estimate": (dims, names["estimate"]),
            "equal_cost_peer": (dims, names["peer"]),
            "equal_cost_difference": (dims, values["difference"]),
            "equal_cost_low": (dims, values["low"]),
            "equal_cost_high": (dims, values["high"]),
        },
        coords={"goal_metric": list(GOAL_METRICS)},
    )


def estimator_table(
    *,
    clean: Sequence[Runs] = (),
    noisy: Runs | None = None,
    replicates: Sequence[int] = REPLICATES_COMPARED,
    threshold: float = MEMORIZED,
    top: float = 0.1,
) -> xr.Dataset:
    """The quality of every estimator in both regimes, with its cost (see the module
    docstring for the layout). ``clean``: experiments with a truth (one per architecture);
    ``noisy``: the experiment with fitted random labels (its scores are required)."""
    clean = [c for c in clean if c.truth is not None]
    per_exp = [_clean_rows(c, replicates, threshold, top) for c in clean]
    noisy_rows = _noisy_rows(noisy, replicates) if noisy and noisy.scores is not None else {}
    names = list(dict.fromkeys([n for rows in per_exp for n in rows] + list(noisy_rows)))
    family = {n: r.family for rows in [*per_exp, noisy_rows] for n, r in rows.items()}
    ds = xr.Dataset(
        coords={
            "estimator": names,
            "family": ("estimator", np.array([family[n] for n in names], dtype=object)),
            "experiment": [c.name for c in clean],
            "architecture": ("experiment", np.array([c.architecture for c in clean], object)),
        }
    )
    ds = ds.merge(_clean_data(clean, per_exp, names))
    ds = ds.merge(_noisy_data(noisy, noisy_rows, names))
    infos = [_truth_info(c.truth, threshold, top) for c in clean]
    for key in _TRUTH_INFO:
        ds[key] = ("experiment", np.array([info[key] for info in infos], dtype=np.float64))
    designs = [str(c.truth.attrs.get("design", "random")) for c in clean]
    ds = ds.assign_coords(truth_design=("experiment", np.array(designs, dtype=object)))
    ds = ds.merge(_equal_cost(clean, per_exp, threshold, top))
    ds.attrs.update(threshold=float(threshold), top_fraction=float(top), goal_runs=float(GOAL_RUNS))
    if noisy is not None:
        ds.attrs["noisy"] = noisy.name
        ds.attrs.update(_fitted(noisy.scores, noisy.peers))
    return ds


#: the truth's size, cost and agreement with itself, one value per clean experiment
_TRUTH_INFO = (
    "truth_seconds",
    "truth_train_seconds",
    "truth_memorized",
    "truth_models",
    "truth_half_auc",
    "truth_half_overlap",
    "truth_half_spearman",
    "truth_reliability",
    "truth_reliability_pearson",
)


def _clean_data(clean: Sequence[Runs], per_exp: list[dict], names: list[str]) -> xr.Dataset:
    """The clean metrics and costs [experiment, estimator] and the per-example values."""
    shape = (len(clean), len(names))
    keys = [*CLEAN_METRICS, *CORRECTED, "cost_runs", "cost_seconds"]
    data = {key: np.full(shape, np.nan) for key in keys}
    examples = np.unique(np.concatenate([c.truth["example"].values for c in clean] or [[]]))
    examples = examples.astype(np.int64)
    estimate = np.full((*shape, len(examples)), np.nan)
    truth = np.full((len(clean), len(examples)), np.nan)
    for i, (runs, rows) in enumerate(zip(clean, per_exp, strict=True)):
        at = np.searchsorted(examples, runs.truth["example"].values)
        truth[i, at] = runs.truth["memorization"].values
        for name, row in rows.items():
            j = names.index(name)
            for key, value in row.metrics.items():
                data[key][i, j] = value
            data["cost_runs"][i, j], data["cost_seconds"][i, j] = row.runs, row.seconds
            if row.values is not None:
                estimate[i, j, at] = row.values
    dims = ("experiment", "estimator")
    out = {key: (dims, value) for key, value in data.items()}
    out["estimate"] = ((*dims, "example"), estimate)
    out["truth_memorization"] = (("experiment", "example"), truth)
    return xr.Dataset(out, coords={"example": examples})


def _noisy_data(noisy: Runs | None, rows: dict[str, _Row], names: list[str]) -> xr.Dataset:
    """The noisy regime's ROC AUC, costs [estimator] and per-example values."""

    def column(get):
        return ("estimator", np.array([get(rows[n]) if n in rows else np.nan for n in names]))

    out = {
        "random_label_auc": column(lambda r: r.metrics["random_label_auc"]),
        "noisy_cost_runs": column(lambda r: r.runs),
        "noisy_cost_seconds": column(lambda r: r.seconds),
    }
    if not rows:
        return xr.Dataset(out)
    examples = noisy.scores["example"].values
    values = np.stack([rows[n].values if n in rows else np.full(len(examples), np.nan)
                       for n in names])  # fmt: skip
    out["noisy_estimate"] = (("estimator", "noisy_example"), values)
    out["mislabeled"] = ("noisy_example", noisy.scores["mislabeled"].values.astype(np.int8))
    return xr.Dataset(out, coords={"noisy_example": examples})


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
