"""Figures 7 and 8: the lowest and highest memorization scores of each class."""

from __future__ import annotations

import numpy as np

from ..claims import Claim, judged
from ..uncertainty import binomial, generator
from .base import pyplot, save, short

#: appendix C: both sub-networks agree with the label on at least this share of the easy
#: examples shown (and the muted one less often on the difficult ones)
AGREE_SUPPORTED = 0.9


def chosen_examples(scores, per_class: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """class -> (positions of its ``per_class`` lowest scores, of its highest)."""
    mem = scores["memorization"].values
    labels = scores["label"].values
    out = {}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        order = idx[np.argsort(mem[idx], kind="stable")]
        out[int(cls)] = (order[:per_class], order[::-1][:per_class])
    return out


def _show(ax, scores, data, pos) -> None:
    from ..top import image_of  # heavy: imports matplotlib, for the drawing job only

    ax.set_xticks([])
    ax.set_yticks([])
    img = image_of(data, int(scores["example"].values[pos]))
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    triplet = (
        f"{int(scores['label'].values[pos])},{int(scores['pred_unmuted'].values[pos])},"
        f"{int(scores['pred_muted'].values[pos])}"
    )
    ax.set_title(f"{scores['memorization'].values[pos]:.2f}\n{triplet}", fontsize=7, pad=2)


def draw_grid(arts, options, output, number: int) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    scores = arts["experiment"]["scores"]
    data = arts["experiment"]["dataset"]
    per_class = options["per_class"]
    chosen = chosen_examples(scores, per_class)
    class_names = data["class_name"].values
    fig, axes = plt.subplots(
        2 * per_class + 1,
        len(chosen),
        figsize=(0.75 * len(chosen), 0.95 * (2 * per_class + 1)),
        gridspec_kw={"height_ratios": [1] * per_class + [0.3] + [1] * per_class},
        squeeze=False,
    )
    for col, (cls, (low, high)) in enumerate(chosen.items()):
        rows = list(low) + [None] * (per_class - len(low) + 1) + list(high)
        for row, pos in enumerate(rows[: 2 * per_class + 1]):
            if pos is None:
                axes[row, col].axis("off")
            else:
                _show(axes[row, col], scores, data, pos)
        axes[-1, col].set_xlabel(str(class_names[cls]), fontsize=7)
    axes[0, 0].set_ylabel("lowest", fontsize=8)
    axes[per_class + 1, 0].set_ylabel("highest", fontsize=8)
    fig.suptitle(
        f"{short(scores)}: above each image its score and (label, unmuted prediction, "
        "muted prediction)",
        fontsize=8,
    )
    fig.tight_layout()
    save(fig, output, about=[scores])


def grid_claims(arts, options, name: str) -> list[Claim]:
    scores = arts["experiment"]["scores"]
    chosen = chosen_examples(scores, options["per_class"])
    low = np.concatenate([lo for lo, _ in chosen.values()])
    high = np.concatenate([hi for _, hi in chosen.values()])
    y = scores["label"].values
    both = (scores["pred_unmuted"].values == y) & (scores["pred_muted"].values == y)
    easy_agree = float(both[low].mean())
    hard_muted = float((scores["pred_muted"].values[high] == y[high]).mean())
    experiment = scores.attrs.get("experiment", "")
    rng = generator(name, "easy_typical_both_right", experiment)
    easy, hard = binomial(easy_agree, low.size, rng), binomial(hard_muted, high.size, rng)
    return [
        judged(
            name,
            "easy_typical_both_right",
            "on the lowest-score examples both sub-networks agree with the label; on the "
            "highest-score ones the muted sub-network mostly does not (appendix C)",
            np.minimum(easy - AGREE_SUPPORTED, easy - hard),
            min(easy_agree - AGREE_SUPPORTED, easy_agree - hard_muted),
            0.0,
            f"both right on {100 * easy_agree:.0f} % of the {low.size} lowest (needs ≥ "
            f"{100 * AGREE_SUPPORTED:.0f} %); muted right on {100 * hard_muted:.0f} % of the "
            f"{high.size} highest",
            experiment=experiment,
            values={"easy_both_right": easy_agree, "difficult_muted_right": hard_muted},
        )
    ]


def grid_drawing(name: str, number: int):
    """(draw, claims) of the grid figure ``name``, numbered ``number`` in its headings."""

    def draw(arts, options, output) -> None:
        draw_grid(arts, options, output, number)

    def claims(arts, options) -> list:
        return grid_claims(arts, options, name)

    return draw, claims
