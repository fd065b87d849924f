"""Validation: how close each memorization estimator comes to ground truth, at what cost.

Draws ``validation.nc`` (:mod:`memorization.trust.validation`): per clean experiment (one
row per architecture, each against its own Feldman-Zhang ground truth) the quality of every
estimator (ROC AUC for memorization > threshold, top-10 % overlap, Spearman, Pearson)
against its measured cost in plain training runs, each with its 95 % interval from
resampling the examples, the truth's split-half agreement as a dashed line, the truth's
size, design, Spearman-Brown reliability and wall time beside each row, and in each AUC and
overlap panel's title the difference between the best estimate at ≤ 4 runs and the best
peer at ≤ 4 runs with its 95 % interval (paired bootstrap, ``equal_cost_*`` of the table);
and the ROC AUC for fitted random labels of the noisy experiment. The options name the
experiments the table is made from: ``clean`` (one experiment or a list of them, each with
``truth:`` settings) and ``noisy`` (random labels trained until fitted); ``replicates``
lists the R of the turn-over estimators.

Claims, each with a 95 % interval from resampling the examples (the truth and every
estimator's values are kept in ``validation.nc``; a resample draws the examples with
replacement and recomputes the metrics, :func:`memorization.trust.metrics.quality_draws`,
from a generator seeded by the figure, the goal claim's key and the experiment; the claims
of one experiment share its resamples, so their draws are paired, :class:`Resamples`):

- per clean experiment, ``turnover_at_least_peers`` (the project's goal): turn-over at
  ≤ :data:`GOAL_RUNS` runs, in its best form for each metric, at least as good as the best
  peer on every metric (the effect: the worst margin over the metrics; a margin within the
  noise is inconclusive). Picking the best of each family per metric after the fact
  favours turn-over, which has more candidates (forms x R x variants) than the five peers:
  a "supported" is optimistic, a "not supported" is not;
- per clean experiment, ``turnover_matches_truth`` (the validation's goal: AUC ≥ :data:`GOAL_AUC`
  and top-10 % overlap ≥ :data:`GOAL_OVERLAP`) and ``turnover_beats_tracin``;
- for the noisy experiment, ``turnover_finds_fitted_random_labels``.
"""

from __future__ import annotations

import re

import numpy as np

from ...trust.metrics import CLEAN_METRICS, GOAL_RUNS, MEMORIZED, quality_draws
from ...trust.peer_records import PEERS
from ..claims import Claim, judged, unmeasured
from ..uncertainty import DRAWS, generator
from .base import pyplot, save

MARKERS = {"turnover": "o", "variant": "^", "oob": "D", "peer": "s", "ground truth": "*"}
FORM_COLORS = {
    "cumulative": "tab:pink",
    "loss": "tab:blue",
    "probability": "tab:purple",
    "zero_one": "tab:cyan",
    "sharpened": "tab:olive",
}
#: each peer's colour, from its record (:data:`memorization.trust.peer_records.PEERS`)
PEER_COLORS = {peer.name: peer.color for peer in PEERS}
METRIC_NAMES = {
    "auc_memorized": "AUC",
    "top_overlap": "top-10 % overlap",
    "spearman": "Spearman",
    "pearson": "Pearson",
}

#: the goals the validation sets the turn-over estimator, at a cost of at most GOAL_RUNS runs
GOAL_AUC = 0.98
GOAL_OVERLAP = 0.80
GOAL_RANDOM_AUC = 0.99
RANDOM_LABELS_FITTED = 0.99
#: the key of the project's goal claim (its resamples are shared by the experiment's claims)
GOAL_KEY = "estimate_at_least_peers"
#: "beats": a margin is judged against 0, so turn-over must be better in the whole
#: interval; a margin whose interval holds 0 is a tie within the noise (inconclusive)
MARGIN = 0.0
#: "at least as good" / "reaches": a margin is judged against -AT_LEAST_TOLERANCE, so an
#: exact tie (frequent on the top-10 % overlap, a count) counts as reached; 0.001 is an AUC
#: to three decimals and one example in a thousand of the overlap
AT_LEAST_TOLERANCE = 0.001


#: the suffix of an estimator averaged over a number of runs (``cumulative_loss_R3``)
_RUNS_SUFFIX = re.compile(r"_R\d+$")


def _color(name: str) -> str:
    peer = _RUNS_SUFFIX.sub("", name)
    if peer in PEER_COLORS:
        return PEER_COLORS[peer]
    for form, color in FORM_COLORS.items():
        if name.startswith(f"turnover_{form}_R"):
            return color
    return "black"


def _panel(ax, names, families, values, costs, title, bounds=None) -> None:
    """One metric of one experiment against its measured cost: estimators as points with
    their 95 % intervals (``bounds`` [2, E]: from resampling the examples), the truth's
    split-half agreement as a dashed line."""
    bounds = np.full((2, len(names)), np.nan) if bounds is None else bounds
    for i, (name, family, y, x) in enumerate(zip(names, families, values, costs, strict=True)):
        if not np.isfinite(y):
            continue
        if family == "ground truth":
            ax.axhline(y, color="grey", ls="--", lw=1)
            ax.text(1, y, " FZ half vs half", fontsize=6, va="bottom", color="grey")
            continue
        marker = MARKERS.get("variant" if "[" in name else family, "D")
        lo, hi = bounds[:, i]
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar(x, y, yerr=[[max(y - lo, 0)], [max(hi - y, 0)]], color=_color(name),
                        lw=0.8, capsize=1.5, zorder=2)  # fmt: skip
        ax.scatter(x, y, marker=marker, color=_color(name), s=22, zorder=3)
        if (family == "peer" and not _RUNS_SUFFIX.search(name)) or name.endswith(
            ("_R1", f"_R{GOAL_RUNS}")
        ):
            label = name.replace("turnover_", "").replace("_self_influence", "")
            ax.annotate(label, (x, y), fontsize=5, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_title(title, fontsize=8)


def _legend(ax, loc: str) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    handles = [
        plt.Line2D([], [], color=c, marker="o", ls="", label=f"turn-over, {form}")
        for form, c in FORM_COLORS.items()
    ] + [
        plt.Line2D([], [], color="grey", marker="^", ls="", label="turn-over variant"),
        plt.Line2D([], [], color="grey", marker="s", ls="", label="peer"),
        plt.Line2D([], [], color="grey", marker="D", ls="", label="other estimate"),
        plt.Line2D([], [], color="grey", ls="--", label="FZ half vs half"),
    ]
    ax.legend(handles=handles, fontsize=6, frameon=False, loc=loc)


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    ds = arts["validation"]
    exps = list(ds["experiment"].values)
    rows = max(1, len(exps))
    fig, axes = plt.subplots(rows, 5, figsize=(17, 3.3 * rows), squeeze=False)
    names, families = list(ds["estimator"].values), list(ds["family"].values)
    threshold = ds.attrs.get("threshold", MEMORIZED)
    for i, exp in enumerate(exps):
        row = ds.sel(experiment=exp)
        arch = str(row["architecture"].values)
        bounds = _intervals(ds, exp)
        for ax, metric in zip(axes[i, :4], METRIC_NAMES, strict=True):
            title = f"{exp} ({arch}): {METRIC_NAMES[metric]}"
            if metric == "auc_memorized":
                title += f", FZ > {threshold}"
            title += _difference_label(row, metric)
            _panel(ax, names, families, row[metric].values, row["cost_runs"].values, title,
                   bounds[metric])  # fmt: skip
        axes[i, 0].set_ylabel(_truth_label(row), fontsize=7)
    for ax in axes[-1, :4]:
        ax.set_xlabel("measured cost (plain training runs)")
    noisy = ds.attrs.get("noisy", "")
    fitted = ", ".join(f"{k[7:]} {v:.3f}" for k, v in ds.attrs.items() if k.startswith("fitted_"))
    _panel(
        axes[0, 4],
        names,
        families,
        ds["random_label_auc"].values,
        ds["noisy_cost_runs"].values,
        f"{noisy}: ROC AUC for fitted random labels",
    )
    axes[0, 4].set_xlabel(f"cost (training runs); fitted: {fitted}", fontsize=6)
    for ax in axes[1:, 4]:
        ax.axis("off")
    if rows > 1:
        _legend(axes[1, 4], "center")
    else:
        _legend(axes[0, 4], "lower right")
    fig.suptitle(
        "Validation: every memorization estimator against the Feldman-Zhang ground truth of "
        "its architecture, and for fitted random labels",
        fontsize=9,
    )
    fig.tight_layout()
    save(fig, output)


#: resamples of the figure's intervals per estimator
FIGURE_DRAWS = 200


def _intervals(ds, exp: str) -> dict[str, np.ndarray]:
    """[2, E] 95 % bounds of each clean metric of every estimator of ``exp`` (NaN where it
    has no values), from resampling the examples."""
    row = ds.sel(experiment=exp)
    values = row["estimate"].values
    has = np.isfinite(values).any(1)
    out = {m: np.full((2, len(values)), np.nan) for m in CLEAN_METRICS}
    if not has.any():
        return out
    draws = quality_draws(values[has], row["truth_memorization"].values,
                          generator("validation", "figure_intervals", exp), FIGURE_DRAWS,
                          float(ds.attrs.get("threshold", MEMORIZED)),
                          float(ds.attrs.get("top_fraction", 0.1)))  # fmt: skip
    for metric, q in CLEAN_METRICS.items():
        out[metric][:, has] = np.nanpercentile(draws[q], [2.5, 97.5], axis=0)
    return out


def _difference_label(row, metric: str) -> str:
    """The equal-cost difference of ``metric`` with its interval, for a panel's title."""
    if "equal_cost_difference" not in row or metric not in row["goal_metric"].values:
        return ""
    at = row.sel(goal_metric=metric)
    d, lo, hi = (float(at[k]) for k in ("equal_cost_difference", "equal_cost_low",
                                        "equal_cost_high"))  # fmt: skip
    if not np.isfinite(d):
        return ""
    return f"\nbest ≤ {GOAL_RUNS} runs − best peer: {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _truth_label(row) -> str:
    """The truth's size, design, reliability and wall time, for a row's y label."""
    models = int(row["truth_models"])
    text = f"quality vs FZ ({models} models"
    if "truth_design" in row.coords:
        text += f", {row['truth_design'].item()}"
    text += ")"
    if "truth_reliability" in row and np.isfinite(float(row["truth_reliability"])):
        text += f"\nreliability {float(row['truth_reliability']):.2f}"
    seconds = float(row["truth_seconds"])
    if np.isfinite(seconds):
        text += f", {seconds / 60:.0f} min"
    return text


# --- claims ------------------------------------------------------------------------------


def _names(row, family: str, max_runs: float = np.inf) -> list[str]:
    """The estimators of ``family`` measured in this experiment, at most ``max_runs`` runs."""
    keep = (
        (row["family"].values == family)
        & (row["cost_runs"].values <= max_runs)
        & np.isfinite(row["auc_memorized"].values)
    )
    return [str(n) for n in row["estimator"].values[keep]]


def _own(row, max_runs: float = np.inf) -> list[str]:
    """The project's own estimators (every family but the peers and the truth: turn-over,
    out-of-bag, ...) measured in this experiment, at most ``max_runs`` runs."""
    keep = (
        ~np.isin(row["family"].values, ["peer", "ground truth"])
        & (row["cost_runs"].values <= max_runs)
        & np.isfinite(row["auc_memorized"].values)
    )
    return [str(n) for n in row["estimator"].values[keep]]


def _best(row, names: list[str], metric: str) -> tuple[str, float]:
    """The estimator of ``names`` with the highest ``metric`` (NaN left out) and its value."""
    values = row[metric].sel(estimator=names).values
    if not np.isfinite(values).any():
        return "", float("nan")
    k = int(np.nanargmax(values))
    return names[k], float(values[k])


class Resamples:
    """The clean metrics of an experiment's estimators (turn-over at ≤ GOAL_RUNS runs and
    the peers) on :data:`DRAWS` resamples of its examples, computed once and shared by the
    experiment's claims (so their draws are paired), from a generator seeded by the
    figure, the goal claim's key and the experiment."""

    def __init__(self, ds, exp: str) -> None:
        self.ds, self.exp = ds, exp
        row = ds.sel(experiment=exp)
        self.names = list(dict.fromkeys(_own(row, GOAL_RUNS) + _names(row, "peer", GOAL_RUNS)))
        self._draws: dict[str, np.ndarray] | None = None

    def __call__(self, names: list[str]) -> dict[str, np.ndarray]:
        """[draws, len(names)] of each clean metric."""
        if self._draws is None:
            row = self.ds.sel(experiment=self.exp)
            draws = quality_draws(
                row["estimate"].sel(estimator=self.names).values,
                row["truth_memorization"].values,
                generator("validation", GOAL_KEY, self.exp),
                DRAWS,
                float(self.ds.attrs.get("threshold", MEMORIZED)),
                float(self.ds.attrs.get("top_fraction", 0.1)),
            )
            self._draws = {metric: draws[q] for metric, q in CLEAN_METRICS.items()}
        cols = [self.names.index(n) for n in names]
        return {metric: d[:, cols] for metric, d in self._draws.items()}


def _best_draw(draws: np.ndarray) -> np.ndarray:
    """The best of the estimators [draws, E] in each draw, NaN (an undefined metric, e.g.
    the correlation of a constant estimator) left out; NaN where all are."""
    best = np.where(np.isnan(draws), -np.inf, draws).max(1)
    return np.where(np.isfinite(best), best, np.nan)


def _short(name: str) -> str:
    return name.replace("turnover_", "").replace("_self_influence", "")


def goal_claim(ds, exp: str, resamples: Resamples | None = None) -> Claim:
    """Turn-over at ≤ GOAL_RUNS runs at least as good as every peer on every metric."""
    row = ds.sel(experiment=exp)
    arch = str(row["architecture"].values)
    key = GOAL_KEY
    statement = (
        f"on {arch or exp}, the project's best estimate at ≤ {GOAL_RUNS} runs of measured cost "
        "(turn-over or out-of-bag, its best form per metric) is at least as good as every peer "
        f"estimator at ≤ {GOAL_RUNS} runs on every metric (ROC AUC, top-10 % overlap, "
        "Spearman, Pearson against Feldman-Zhang): the project's goal"
    )
    to, peers = _own(row, GOAL_RUNS), _names(row, "peer", GOAL_RUNS)
    if not to or not peers:
        return unmeasured("validation", key, statement, "no own or no peer estimator", exp)
    draws = (resamples or Resamples(ds, exp))(to + peers)
    margins, margin_draws, parts, losses = {}, [], [], []
    for metric, label in METRIC_NAMES.items():
        d = draws[metric]
        margin_draws.append(_best_draw(d[:, : len(to)]) - _best_draw(d[:, len(to) :]))
        best_to, v_to = _best(row, to, metric)
        best_peer, v_peer = _best(row, peers, metric)
        margins[metric] = v_to - v_peer
        parts.append(
            f"{label} {v_to:.3f} ({_short(best_to)}) vs {v_peer:.3f} ({_short(best_peer)})"
        )
        if v_to < v_peer:
            losses.append(f"{label} to {_short(best_peer)} by {v_peer - v_to:.3f}")
    worst = min(margins, key=lambda m: np.nan_to_num(margins[m], nan=np.inf))
    evidence = "; ".join(parts) + (
        f". The best own estimate LOSES on {', '.join(losses)}"
        if losses
        else ". The best own estimate loses nowhere"
    )
    return judged(
        "validation",
        key,
        statement,
        np.min(np.stack(margin_draws), 0),
        margins[worst],
        -AT_LEAST_TOLERANCE,
        evidence + f" (worst margin: {METRIC_NAMES[worst]})",
        experiment=exp,
        values={f"margin_{m}": v for m, v in margins.items()},
    )


def truth_claim(ds, exp: str, resamples: Resamples | None = None) -> Claim:
    """The validation's goal: AUC ≥ GOAL_AUC and top-10 % overlap ≥ GOAL_OVERLAP at ≤ GOAL_RUNS."""
    row = ds.sel(experiment=exp)
    key = "turnover_matches_truth"
    statement = (
        f"on {str(row['architecture'].values) or exp}, the turn-over estimator at ≤ "
        f"{GOAL_RUNS} runs reaches ROC AUC ≥ {GOAL_AUC} and top-10 % overlap ≥ "
        f"{GOAL_OVERLAP} against the FZ ground truth (the validation's goal, not the paper's)"
    )
    to = _names(row, "turnover", GOAL_RUNS)
    if not to:
        return unmeasured("validation", key, statement, "no turn-over estimator", exp)
    draws = (resamples or Resamples(ds, exp))(to)
    best_auc, auc = _best(row, to, "auc_memorized")
    best_overlap, overlap = _best(row, to, "top_overlap")
    effect = min(auc - GOAL_AUC, overlap - GOAL_OVERLAP)
    effect_draws = np.minimum(
        _best_draw(draws["auc_memorized"]) - GOAL_AUC,
        _best_draw(draws["top_overlap"]) - GOAL_OVERLAP,
    )
    evidence = (
        f"best AUC {auc:.3f} ({_short(best_auc)}), best top-10 % overlap {overlap:.3f} "
        f"({_short(best_overlap)}); effect: the smaller margin over its goal"
    )
    return judged("validation", key, statement, effect_draws, effect, -AT_LEAST_TOLERANCE,
                  evidence, experiment=exp, values={"auc": auc, "overlap": overlap})  # fmt: skip


def tracin_claim(ds, exp: str, resamples: Resamples | None = None) -> Claim:
    """Turn-over at ≤ GOAL_RUNS runs beats TracIn on both ROC AUC and top-10 % overlap."""
    row = ds.sel(experiment=exp)
    key = "turnover_beats_tracin"
    statement = (
        f"on {str(row['architecture'].values) or exp}, at ≤ {GOAL_RUNS} runs the turn-over "
        "estimator beats TracIn self-influence (one plain run) on both ROC AUC and top-10 % "
        "overlap"
    )
    to = _names(row, "turnover", GOAL_RUNS)
    if not to or "tracin_self_influence" not in _names(row, "peer"):
        return unmeasured("validation", key, statement, "no turn-over or no TracIn", exp)
    draws = (resamples or Resamples(ds, exp))([*to, "tracin_self_influence"])
    margins, margin_draws, parts = {}, [], []
    for metric in ("auc_memorized", "top_overlap"):
        _, v_to = _best(row, to, metric)
        tracin = float(row[metric].sel(estimator="tracin_self_influence"))
        margins[metric] = v_to - tracin
        margin_draws.append(_best_draw(draws[metric][:, :-1]) - draws[metric][:, -1])
        parts.append(f"{METRIC_NAMES[metric]}: turn-over {v_to:.3f}, TracIn {tracin:.3f}")
    effect = min(margins.values())
    return judged("validation", key, statement, np.minimum(*margin_draws), effect, MARGIN,
                  "; ".join(parts), experiment=exp,
                  values={f"margin_{m}": v for m, v in margins.items()})  # fmt: skip


def random_label_claim(ds) -> Claim:
    """Once fitted, turn-over finds the random labels (AUC ≥ GOAL_RANDOM_AUC, above
    learning speed's)."""
    noisy = str(ds.attrs.get("noisy", ""))
    key = "turnover_finds_fitted_random_labels"
    statement = (
        f"once the random labels are fitted (≥ {RANDOM_LABELS_FITTED}), the turn-over "
        f"estimator at ≤ {GOAL_RUNS} runs finds them with ROC AUC ≥ {GOAL_RANDOM_AUC}, above "
        "learning speed's"
    )
    runs, auc = ds["noisy_cost_runs"].values, ds["random_label_auc"].values
    fam = ds["family"].values
    to = [str(n) for n in ds["estimator"].values[(fam == "turnover") & (runs <= GOAL_RUNS)
                                                 & np.isfinite(auc)]]  # fmt: skip
    speed = float(ds["random_label_auc"].sel(estimator="slow_learning"))
    if not to or not np.isfinite(speed) or "noisy_estimate" not in ds:
        return unmeasured("validation", key, statement, "no noisy regime measured", noisy)
    names = [*to, "slow_learning"]
    draws = quality_draws(
        ds["noisy_estimate"].sel(estimator=names).values,
        ds["mislabeled"].values.astype(float),
        generator("validation", key, noisy),
        DRAWS,
        threshold=0.5,
    )["auc"]
    values = ds["random_label_auc"].sel(estimator=to).values
    best, rand = to[int(np.argmax(values))], float(np.max(values))
    effect = min(rand - GOAL_RANDOM_AUC, rand - speed)
    best_draws = _best_draw(draws[:, :-1])
    effect_draws = np.minimum(best_draws - GOAL_RANDOM_AUC, best_draws - draws[:, -1])
    fitted = float(ds.attrs.get("fitted_plain", np.nan))
    fitted_to = float(ds.attrs.get("fitted_turnover_unmuted", np.nan))
    evidence = (
        f"best {rand:.3f} ({_short(best)}), learning speed {speed:.3f}; fitted share of the "
        f"random labels: plain {fitted:.3f}, unmuted {fitted_to:.3f}"
        + ("" if min(fitted, fitted_to) >= RANDOM_LABELS_FITTED else " (NOT fully fitted)")
    )
    return judged("validation", key, statement, effect_draws, effect, MARGIN, evidence,
                  experiment=noisy, values={"auc": rand, "learning_speed_auc": speed,
                                            "fitted_plain": fitted})  # fmt: skip


def claims(arts, options) -> list[Claim]:
    ds = arts["validation"]
    out = []
    for exp in map(str, ds["experiment"].values):
        shared = Resamples(ds, exp)
        out += [claim(ds, exp, shared) for claim in (goal_claim, truth_claim, tracin_claim)]
    if ds.attrs.get("noisy"):
        out.append(random_label_claim(ds))
    return out
