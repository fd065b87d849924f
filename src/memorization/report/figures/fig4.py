"""Figure 4: cosine similarity (eq. 3) and contribution (eq. 4) of easy vs difficult."""

from __future__ import annotations

import numpy as np

from ...workflow.artifacts import config_of
from ...workflow.slices import summary
from ..claims import Claim, judged
from ..uncertainty import generator, resample
from .base import COLORS, epoch_axis, over_seeds, pyplot, runs, save, smooth

#: "at most epochs": the share of the epochs
MOST = 0.5


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    ds = arts["experiment"]["gradstats"]
    w = options["window"]
    epochs = ds["epoch"].values
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0))
    cosine, contribution = over_seeds(ds["cosine_similarity"]), over_seeds(ds["contribution"])
    for subset in ("easy", "difficult"):
        axes[0].plot(
            epochs, smooth(cosine.sel(subset=subset).values, w), color=COLORS[subset], label=subset
        )
    for subset in ("full", "easy", "difficult"):
        axes[1].plot(
            epochs,
            smooth(contribution.sel(subset=subset).values, w),
            color=COLORS[subset],
            label=subset,
        )
    pairs = summary(config_of(ds)).get("cosine_pairs") or "probe"
    where = "pairs within batches" if pairs == "batch" else "a fixed probe"
    axes[0].set_title(f"(a) cosine similarity ({where})")
    axes[0].set_ylabel("mean pairwise cosine similarity")
    axes[1].set_title("(b) contribution to the update")
    axes[1].set_ylabel("mean (v_i · g) / ‖g‖")
    for ax in axes:
        epoch_axis(ax, epochs)
        ax.legend(frameon=True, framealpha=0.9)
    fig.tight_layout()
    save(fig, output, about=[ds])


def _share(pairs: np.ndarray) -> float:
    """The share of rows (epochs) where the first column exceeds the second."""
    ok = np.isfinite(pairs).all(axis=1)
    return float((pairs[ok, 0] > pairs[ok, 1]).mean()) if ok.any() else float("nan")


def _most_epochs(ds, var: str, higher: str, lower: str, key: str, statement: str) -> Claim:
    name = ds.attrs.get("experiment", "")
    per_seed = [
        np.stack([one[var].sel(subset=higher).values, one[var].sel(subset=lower).values], 1)
        for one in runs(ds)
    ]
    rng = generator("fig4", key, name)
    draws = np.concatenate([resample(p, _share, rng) for p in per_seed])  # epochs resampled
    effect = float(np.mean([_share(p) for p in per_seed]))
    mean = over_seeds(ds[var])
    a, b = mean.sel(subset=higher).values, mean.sel(subset=lower).values
    return judged(
        "fig4",
        key,
        statement,
        draws,
        effect,
        MOST,
        f"{higher} > {lower} at {100 * effect:.0f} % of {len(a)} epochs ({len(per_seed)} "
        f"seed(s)); means {higher} {np.nanmean(a):.4g}, {lower} {np.nanmean(b):.4g}",
        experiment=name,
        values={"share_of_epochs": effect, higher: np.nanmean(a), lower: np.nanmean(b)},
    )


def claims(arts, options) -> list[Claim]:
    ds = arts["experiment"]["gradstats"]
    return [
        _most_epochs(
            ds,
            "cosine_similarity",
            "easy",
            "difficult",
            "cosine_easy_higher",
            "the gradients of easy examples are more similar to each other (cosine "
            "similarity, eq. 3) than those of difficult ones, at most epochs",
        ),
        _most_epochs(
            ds,
            "contribution",
            "difficult",
            "easy",
            "contribution_difficult_higher",
            "difficult examples contribute more to each update (eq. 4) than easy ones, "
            "at most epochs",
        ),
        _most_epochs(
            ds,
            "contribution",
            "difficult",
            "full",
            "contribution_difficult_above_full",
            "difficult examples contribute more than the average example, at most epochs",
        ),
    ]
