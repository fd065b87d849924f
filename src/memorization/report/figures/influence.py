"""Influence pairs: test images beside the training images with the highest turn-over
influence on them (eq. 5), as Feldman and Zhang show theirs (beyond the paper)."""

from __future__ import annotations

import numpy as np

from .base import pyplot, save, title_of


def chosen(ds, n: int) -> np.ndarray:
    """The ``n`` test examples whose strongest influence pair is strongest."""
    top1 = ds["influence"].isel(rank=0).values
    return np.argsort(-top1, kind="stable")[:n]


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    ds = arts["experiment"]["influence"]
    data = arts["experiment"]["dataset"]
    rows, top = options["examples"], options["top"]
    picks = chosen(ds, rows)
    fig, axes = plt.subplots(
        len(picks), top + 1, figsize=(1.3 * (top + 1), 1.45 * len(picks)), squeeze=False
    )
    labels = data["label"]

    def show(ax, example, text):
        img = data["image"].sel(example=int(example)).values.transpose(1, 2, 0)
        ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(text, fontsize=6, pad=2)

    for r, j in enumerate(picks):
        test_id = int(ds["test_example"].values[j])
        show(axes[r, 0], test_id, f"test {test_id}\nlabel {int(labels.sel(example=test_id))}")
        for k in range(top):
            train_id = int(ds["influence_example"].values[j, k])
            value = float(ds["influence"].values[j, k])
            show(
                axes[r, k + 1], train_id, f"{value:.2f}\nlabel {int(labels.sel(example=train_id))}"
            )
    fig.suptitle(
        f"Influence pairs (eq. 5): test image, then its most influential training images\n"
        f"{title_of(ds, labels=True)}",
        fontsize=7,
    )
    fig.tight_layout()
    save(fig, output)


def claims(arts, options) -> list:
    return []
