"""Figure 2: histograms of memorization scores, uncorrupted and with random labels."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...trust.metrics import roc_auc
from ..claims import Claim, verdict
from .base import EXPERIMENT, Figure, save, title_of

#: random labels "have higher memorization scores": the ROC AUC that says so clearly
AUC_SUPPORTED = 0.8
#: long tail: most examples near zero ...
NEAR_ZERO = 0.1  # nats
NEAR_ZERO_SHARE = 0.5
#: ... and the top 10 % of examples hold at least this share of the positive score mass
TAIL_MASS = 0.5


def random_label_auc(scores) -> float | None:
    """ROC AUC of the memorization score for the examples whose label is wrong."""
    wrong = _mislabeled(scores)
    if wrong.all() or not wrong.any():
        return None
    return float(roc_auc(scores["memorization"].values, wrong))


def _mislabeled(scores) -> np.ndarray:
    if "mislabeled" in scores:
        return scores["mislabeled"].values.astype(bool)
    return scores["label"].values != scores["true_label"].values


def tail_statistics(memorization: np.ndarray) -> dict[str, float]:
    """Share of examples with a score below NEAR_ZERO nats; share of the positive score
    mass held by the top 10 % of examples; skewness."""
    m = np.asarray(memorization, dtype=float)
    pos = np.clip(m, 0, None)
    top = np.sort(pos)[::-1][: max(1, m.size // 10)]
    centred = m - m.mean()
    skew = float((centred**3).mean() / max(m.std(), 1e-12) ** 3)
    return {
        "near_zero_share": float((m < NEAR_ZERO).mean()),
        "top10_mass": float(top.sum() / pos.sum()) if pos.sum() > 0 else float("nan"),
        "skewness": skew,
    }


def draw(arts, options, output) -> None:
    clean = arts["clean"]["scores"]
    noisy = arts["corrupted"]["scores"]
    bins = options["bins"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    n_clean_wrong = int(_mislabeled(clean).sum())
    label_a = "uncorrupted" if n_clean_wrong == 0 else f"{n_clean_wrong} wrong labels"
    axes[0].hist(clean["memorization"].values, bins=bins, color="tab:blue")
    axes[0].set_title(f"(a) {label_a}\n{title_of(clean, False)}", fontsize=7)
    wrong = _mislabeled(noisy)
    scores = noisy["memorization"].values
    edges = np.histogram_bin_edges(scores, bins=bins)
    axes[1].hist(scores[~wrong], bins=edges, color="tab:blue", alpha=0.7, label="right labels")
    axes[1].hist(scores[wrong], bins=edges, color="tab:red", alpha=0.7, label="wrong labels")
    drawn = int(noisy["corrupted"].values.sum())
    title = f"(b) {drawn} labels drawn at random, {int(wrong.sum())} wrong"
    auc = random_label_auc(noisy)
    if auc is not None:
        title += f"; ROC AUC {auc:.3f}"
    axes[1].set_title(f"{title}\n{title_of(noisy, False)}", fontsize=7)
    axes[1].legend(frameon=False)
    for ax in axes:
        ax.set_xlabel("memorization score (nats)")
        ax.set_ylabel("number of training examples")
    fig.suptitle("Figure 2: memorization scores", fontsize=9)
    fig.tight_layout()
    save(fig, output)


def claims(arts, options) -> list[Claim]:
    clean = arts["clean"]["scores"]
    noisy = arts["corrupted"]["scores"]
    auc = random_label_auc(noisy)
    out = [
        Claim(
            figure="fig2",
            key="random_labels_score_higher",
            statement="examples with random labels have higher memorization scores than "
            f"examples with real labels (ROC AUC ≥ {AUC_SUPPORTED})",
            verdict=verdict(None if auc is None else auc >= AUC_SUPPORTED),
            evidence="no wrong labels to compare"
            if auc is None
            else f"ROC AUC {auc:.3f} for the {int(_mislabeled(noisy).sum())} wrong labels",
            experiment=noisy.attrs.get("experiment", ""),
            values={"auc": auc},
        )
    ]
    wrong_clean = int(_mislabeled(clean).sum())
    stats = tail_statistics(clean["memorization"].values)
    holds = stats["near_zero_share"] >= NEAR_ZERO_SHARE and stats["top10_mass"] >= TAIL_MASS
    out.append(
        Claim(
            figure="fig2",
            key="long_tail",
            statement="without corruption the scores are long-tailed (most near 0; the top "
            "10 % hold most of the score mass)",
            verdict=verdict(None if wrong_clean else holds),
            evidence=(
                f"{wrong_clean} wrong labels in the 'clean' experiment: not uncorrupted"
                if wrong_clean
                else f"{100 * stats['near_zero_share']:.1f} % of scores < {NEAR_ZERO} nats "
                f"(needs ≥ {100 * NEAR_ZERO_SHARE:.0f} %); top 10 % hold "
                f"{100 * stats['top10_mass']:.1f} % of the positive mass (needs ≥ "
                f"{100 * TAIL_MASS:.0f} %); skewness {stats['skewness']:.1f}"
            ),
            experiment=clean.attrs.get("experiment", ""),
            values=stats,
        )
    )
    return out


FIGURE = Figure(
    name="fig2",
    title="Memorization scores",
    caption="Histograms of memorization scores: (a) true labels, (b) with random labels.",
    options={
        "clean": {**EXPERIMENT, "description": "experiment without random labels (panel a)"},
        "corrupted": {**EXPERIMENT, "description": "experiment with random labels (panel b)"},
        "bins": {"type": "integer", "minimum": 2, "default": 60},
    },
    experiments={"clean": ("scores",), "corrupted": ("scores",)},
    draw=draw,
    claims=claims,
)
