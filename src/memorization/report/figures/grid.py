"""Figures 7 and 8: the lowest and highest memorization scores of each class."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..claims import Claim, verdict
from .base import EXPERIMENT, Figure, save, title_of

#: appendix C: both sub-networks agree with the label on the easy examples shown
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


def draw_grid(arts, options, output, number: int) -> None:
    scores = arts["experiment"]["scores"]
    data = arts["experiment"]["dataset"]
    per_class = options["per_class"]
    chosen = chosen_examples(scores, per_class)
    class_names = data["class_name"].values
    fig, axes = plt.subplots(
        2 * per_class + 1,
        len(chosen),
        figsize=(1.05 * len(chosen), 1.25 * (2 * per_class + 1)),
        gridspec_kw={"height_ratios": [1] * per_class + [0.25] + [1] * per_class},
        squeeze=False,
    )
    mem = scores["memorization"].values
    labels = scores["label"].values
    for col, (cls, (low, high)) in enumerate(chosen.items()):
        rows = list(low) + [None] * (per_class - len(low) + 1) + list(high)
        for row, pos in enumerate(rows[: 2 * per_class + 1]):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if pos is None:
                ax.axis("off")
                continue
            ex = int(scores["example"].values[pos])
            img = data["image"].sel(example=ex).values.transpose(1, 2, 0)
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
            triplet = (
                f"({int(labels[pos])},{int(scores['pred_unmuted'].values[pos])},"
                f"{int(scores['pred_muted'].values[pos])})"
            )
            ax.set_title(f"{mem[pos]:.2f}\n{triplet}", fontsize=6, pad=2)
        axes[-1, col].set_xlabel(str(class_names[cls]), fontsize=7)
    axes[0, 0].set_ylabel("lowest", fontsize=7)
    axes[per_class + 1, 0].set_ylabel("highest", fontsize=7)
    fig.suptitle(
        f"Figure {number}: lowest (top) and highest (bottom) memorization scores per class\n"
        f"{title_of(scores)}. Above each image: score and "
        "(label, unmuted prediction, muted prediction)",
        fontsize=8,
    )
    fig.tight_layout()
    save(fig, output)


def grid_claims(arts, options, name: str) -> list[Claim]:
    scores = arts["experiment"]["scores"]
    chosen = chosen_examples(scores, options["per_class"])
    low = np.concatenate([lo for lo, _ in chosen.values()])
    high = np.concatenate([hi for _, hi in chosen.values()])
    y = scores["label"].values
    both = (scores["pred_unmuted"].values == y) & (scores["pred_muted"].values == y)
    easy_agree = float(both[low].mean())
    hard_muted = float((scores["pred_muted"].values[high] == y[high]).mean())
    return [
        Claim(
            figure=name,
            key="easy_typical_both_right",
            statement="on the lowest-score examples both sub-networks agree with the label; on "
            "the highest-score ones the muted sub-network mostly does not (appendix C)",
            verdict=verdict(easy_agree >= AGREE_SUPPORTED and hard_muted < easy_agree),
            evidence=f"both right on {100 * easy_agree:.0f} % of the {low.size} lowest; muted "
            f"right on {100 * hard_muted:.0f} % of the {high.size} highest",
            experiment=scores.attrs.get("experiment", ""),
            values={"easy_both_right": easy_agree, "difficult_muted_right": hard_muted},
        )
    ]


def grid_figure(name: str, number: int, caption: str) -> Figure:
    return Figure(
        name=name,
        title="Lowest and highest memorization scores",
        caption=caption,
        options={
            "experiment": EXPERIMENT,
            "per_class": {"type": "integer", "minimum": 1, "maximum": 20, "default": 4},
        },
        experiments={"experiment": ("scores", "dataset")},
        draw=lambda arts, options, output: draw_grid(arts, options, output, number),
        claims=lambda arts, options: grid_claims(arts, options, name),
    )
