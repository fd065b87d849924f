"""Figure 2: histograms of memorization scores, uncorrupted and with random labels."""

from __future__ import annotations

import numpy as np

from ...trust.metrics import roc_auc
from ..claims import Claim, judged, unmeasured
from ..uncertainty import generator, resample
from .base import pyplot, save, short

#: random labels "have higher memorization scores": the ROC AUC that says so clearly
AUC_SUPPORTED = 0.8
#: long tail: most examples near zero ...
NEAR_ZERO = 0.1  # nats
NEAR_ZERO_SHARE = 0.5
#: ... and the top 10 % of examples hold at least this share of the positive score mass
TAIL_MASS = 0.5


def _mislabeled(scores) -> np.ndarray:
    if "mislabeled" in scores:
        return scores["mislabeled"].values.astype(bool)
    return scores["label"].values != scores["true_label"].values


def random_label_auc(scores) -> float | None:
    """ROC AUC of the memorization score for the examples whose label is wrong."""
    wrong = _mislabeled(scores)
    if wrong.all() or not wrong.any():
        return None
    return float(roc_auc(scores["memorization"].values, wrong))


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
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    clean = arts["clean"]["scores"]
    noisy = arts["corrupted"]["scores"]
    bins = options["bins"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0))
    n_clean_wrong = int(_mislabeled(clean).sum())
    label_a = "true labels" if n_clean_wrong == 0 else f"{n_clean_wrong} wrong labels"
    axes[0].hist(clean["memorization"].values, bins=bins, color="tab:blue")
    axes[0].set_title(f"(a) {short(clean)}: {label_a}")
    wrong = _mislabeled(noisy)
    scores = noisy["memorization"].values
    edges = np.histogram_bin_edges(scores, bins=bins)
    axes[1].hist(scores[~wrong], bins=edges, color="tab:blue", alpha=0.7, label="right labels")
    axes[1].hist(scores[wrong], bins=edges, color="tab:red", alpha=0.7, label="wrong labels")
    title = f"(b) {short(noisy)}: {int(wrong.sum())} wrong labels"
    auc = random_label_auc(noisy)
    if auc is not None:
        title += f", ROC AUC {auc:.3f}"
    axes[1].set_title(title)
    axes[1].legend(frameon=True, framealpha=0.9)
    for ax in axes:
        ax.set_yscale("log")  # the tail, not only the peak near zero
        ax.set_xlabel("memorization score (nats)")
        ax.set_ylabel("training examples")
    fig.tight_layout()
    save(fig, output, about=[clean, noisy])


def _auc_claim(noisy) -> Claim:
    name = noisy.attrs.get("experiment", "")
    statement = (
        "examples with random labels have higher memorization scores than examples with real "
        f"labels (ROC AUC ≥ {AUC_SUPPORTED})"
    )
    auc = random_label_auc(noisy)
    if auc is None:
        return unmeasured(
            "fig2", "random_labels_score_higher", statement, "no wrong labels to compare", name
        )
    pairs = np.stack([noisy["memorization"].values, _mislabeled(noisy)], axis=1)

    def stat(rows):
        return roc_auc(rows[:, 0], rows[:, 1] > 0)

    draws = resample(pairs, stat, generator("fig2", "random_labels_score_higher", name))
    return judged(
        "fig2",
        "random_labels_score_higher",
        statement,
        draws,
        auc,
        AUC_SUPPORTED,
        f"ROC AUC {auc:.3f} for the {int(_mislabeled(noisy).sum())} wrong labels",
        experiment=name,
        values={"auc": auc},
    )


def _tail_claim(clean) -> Claim:
    name = clean.attrs.get("experiment", "")
    statement = (
        "without corruption the scores are long-tailed (most near 0; the top 10 % hold most of "
        "the score mass)"
    )
    wrong = int(_mislabeled(clean).sum())
    if wrong:
        return unmeasured(
            "fig2",
            "long_tail",
            statement,
            f"{wrong} wrong labels in the 'clean' experiment: not uncorrupted",
            name,
        )
    values = clean["memorization"].values
    stats = tail_statistics(values)

    def margin(m):
        s = tail_statistics(m)
        return min(s["near_zero_share"] - NEAR_ZERO_SHARE, s["top10_mass"] - TAIL_MASS)

    draws = resample(values, margin, generator("fig2", "long_tail", name))
    return judged(
        "fig2",
        "long_tail",
        statement,
        draws,
        margin(values),
        0.0,
        f"{100 * stats['near_zero_share']:.1f} % of scores < {NEAR_ZERO} nats (needs ≥ "
        f"{100 * NEAR_ZERO_SHARE:.0f} %); top 10 % hold {100 * stats['top10_mass']:.1f} % of the "
        f"positive mass (needs ≥ {100 * TAIL_MASS:.0f} %); skewness {stats['skewness']:.1f}",
        experiment=name,
        values=stats,
    )


def claims(arts, options) -> list[Claim]:
    return [_auc_claim(arts["corrupted"]["scores"]), _tail_claim(arts["clean"]["scores"])]
