"""The most (or least) memorized examples of an experiment: a table and an image grid.

Reads an experiment's ``scores.nc`` and the ``dataset`` artifact it was made from
(its images, or for a lazily read image folder its files), so a user can look at what
the scores say without writing any code (``memorization top EXPERIMENT``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..infra.files import atomic_write
from ..method.forms import SCORE_FORMS
from ..trust.replicates import first_replicate
from ..workflow.artifacts import config_of, open_artifact
from ..workflow.slices import summary
from .figures.base import pyplot

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["image_of", "ranked", "table", "write_grid"]


def ranked(scores: xr.Dataset, n: int = 20, least: bool = False, form: str = "loss"):
    """Positions of the ``n`` highest (``least``: lowest) scores of ``form``, ties by order."""
    values = scores[SCORE_FORMS[form]].values
    order = np.argsort(values if least else -values, kind="stable")
    return order[:n]


def load(results: str | Path, experiment: str) -> tuple[xr.Dataset, xr.Dataset]:
    """(scores, dataset) of an experiment of a finished run."""
    folder = Path(results)
    path = folder / experiment / "scores.nc"
    if not path.exists():
        known = sorted(p.parent.name for p in folder.glob("*/scores.nc"))
        raise FileNotFoundError(
            f"{path} does not exist: build it with `snakemake --cores 2 {path}`"
            + (f" (experiments with scores here: {', '.join(known)})" if known else "")
        )
    scores = first_replicate(open_artifact(path, "scores"))
    dataset = summary(config_of(scores)).get("dataset")
    data = open_artifact(folder / "data" / f"{dataset}.nc", "dataset")
    return scores, data


def table(scores: xr.Dataset, data: xr.Dataset, rows: np.ndarray, form: str = "loss") -> str:
    """A plain-text table: rank, example id, the class names of the label trained on (after
    any corruption), the label as given in the dataset and both sub-networks' predictions,
    the score."""
    names = [str(c) for c in data["class_name"].values]
    head = (
        f"{'rank':>4}  {'example':>8}  {'label':<12} {'given':<12} {'unmuted':<12} "
        f"{'muted':<12} {SCORE_FORMS[form]}"
    )
    lines = [head]
    var = scores[SCORE_FORMS[form]].values
    for rank, pos in enumerate(rows, 1):
        cells = [
            names[int(scores[v].values[pos])]
            for v in ("label", "true_label", "pred_unmuted", "pred_muted")
        ]
        ex = int(scores["example"].values[pos])
        lines.append(
            f"{rank:>4}  {ex:>8}  " + " ".join(f"{c:<12}" for c in cells) + f" {var[pos]:.4f}"
        )
    return "\n".join(lines)


def image_of(data: xr.Dataset, example: int) -> np.ndarray:
    """The example's image as [H, W] or [H, W, C] for display (pixels or its file)."""
    if "image" in data:
        img = data["image"].sel(example=example).values.transpose(1, 2, 0)
    else:
        from PIL import Image  # an image folder's files: PIL comes with torchvision

        img = np.asarray(Image.open(str(data["path"].sel(example=example).values)))
    img = np.asarray(img)
    if img.dtype != np.uint8:
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo or 1.0)
    return img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img


def write_grid(scores, data, rows, output: str | Path, form: str = "loss", cols: int = 10):
    """An image grid of the chosen examples, each titled with its label and score."""
    names = [str(c) for c in data["class_name"].values]
    n_rows = max(1, -(-len(rows) // cols))
    plt = pyplot()  # matplotlib: loaded by what draws, not by the Snakefile
    fig, axes = plt.subplots(n_rows, cols, figsize=(1.1 * cols, 1.35 * n_rows), squeeze=False)
    var = scores[SCORE_FORMS[form]].values
    for ax in axes.flat:
        ax.axis("off")
    for ax, pos in zip(axes.flat, rows, strict=False):
        ex = int(scores["example"].values[pos])
        img = image_of(data, ex)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_title(f"{names[int(scores['label'].values[pos])]}\n{var[pos]:.2f}", fontsize=6)
    fig.tight_layout()
    suffix = Path(output).suffix.lstrip(".") or "png"
    try:
        atomic_write(output, lambda tmp: fig.savefig(tmp, format=suffix, dpi=150))
    finally:
        plt.close(fig)
