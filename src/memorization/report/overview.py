"""One page per experiment: what its memorization scores look like, and whether they mean
anything for its model.

Drawn from the experiment's ``scores.nc`` and its dataset: (a) the histogram of the
memorization scores (log count axis, so the tail shows), (b) both sub-networks' accuracy
on the training labels after every epoch, with the held-out accuracy the muted
sub-network should approach if it behaves like a model that never saw its example,
(c) the most and (d) the least memorized training examples with their labels and scores.
A config without ``figures:`` builds this page for every experiment, with the
muted-generalization check in the claims table.
"""

from __future__ import annotations

import numpy as np

from ..trust.replicates import first_replicate
from ..workflow.artifacts import config_of
from ..workflow.slices import summary
from ..workflow.specs import describe
from .figures.base import pyplot, save
from .top import image_of, ranked

__all__ = ["draw_overview"]

#: examples shown in each of the two rows of images
SHOWN = 8


def _histogram(ax, scores) -> None:
    values = scores["memorization"].values
    wrong = scores["mislabeled"].values.astype(bool)
    edges = np.histogram_bin_edges(values, bins=50)
    ax.hist(values[~wrong], bins=edges, color="tab:blue", label="labels as given")
    if wrong.any():
        ax.hist(values[wrong], bins=edges, color="tab:red", alpha=0.7, label="wrong labels")
        ax.legend(fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("memorization score (nats)")
    ax.set_ylabel("training examples")
    ax.set_title("(a) memorization scores")


def _accuracy(ax, scores) -> None:
    acc = scores["subnet_accuracy"]
    epochs = acc["epoch"].values
    for subnet, style in (("unmuted", "-"), ("muted", "--")):
        ax.plot(epochs, acc.sel(subnet=subnet).values, style, label=f"{subnet} (training)")
    if "heldout_accuracy" in scores:
        held = scores["heldout_accuracy"].sel(subnet="muted").values
        ax.plot(epochs, held, ":", color="grey", label="held-out")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("(b) sub-networks")
    ax.legend(fontsize=7)


def _examples(axes, scores, data, rows, title: str) -> None:
    names = [str(c) for c in data["class_name"].values]
    values = scores["memorization"].values
    for ax in axes:
        ax.axis("off")
    for ax, pos in zip(axes, rows, strict=False):
        img = image_of(data, int(scores["example"].values[pos]))
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        label = names[int(scores["label"].values[pos])]
        ax.set_title(f"{label}\n{values[pos]:.2f}", fontsize=7)
    axes[0].text(
        -0.15,
        0.5,
        title,
        transform=axes[0].transAxes,
        rotation=90,
        va="center",
        ha="right",
        fontsize=8,
    )


def draw_overview(scores, data, output, subsets_from: str | None = None) -> None:
    """The overview page of one experiment (see the module docstring); ``subsets_from``:
    the estimate that drew the experiment's easy and difficult subsets, where not the
    turn-over score shown here."""
    scores = first_replicate(scores)
    plt = pyplot()  # matplotlib: loaded by the job that draws, not by the Snakefile
    fig = plt.figure(figsize=(8, 6.4))
    grid = fig.add_gridspec(4, SHOWN, height_ratios=[2.2, 0.25, 1, 1])
    _histogram(fig.add_subplot(grid[0, : SHOWN // 2]), scores)
    _accuracy(fig.add_subplot(grid[0, SHOWN // 2 :]), scores)
    _examples(
        [fig.add_subplot(grid[2, k]) for k in range(SHOWN)],
        scores,
        data,
        ranked(scores, SHOWN),
        "(c) most memorized",
    )
    _examples(
        [fig.add_subplot(grid[3, k]) for k in range(SHOWN)],
        scores,
        data,
        ranked(scores, SHOWN, least=True),
        "(d) least",
    )
    cfg = summary(config_of(scores))
    fig.suptitle(f"{scores.attrs.get('experiment', '')}: {describe(cfg)}", fontsize=9)
    note = "Above each image: its label and memorization score."
    if subsets_from:
        note += (
            f" The easy and difficult subsets of this experiment are drawn from {subsets_from}"
            " (estimates.nc), not from this turn-over score."
        )
    fig.text(0.01, 0.005, note, fontsize=6)
    save(fig, output)
