"""Figure 4: cosine similarity (eq. 3) and contribution (eq. 4) of easy vs difficult."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...workflow.artifacts import config_of
from ...workflow.slices import summary
from ..claims import Claim, verdict
from .base import COLORS, EXPERIMENT, WINDOW, Figure, epoch_axis, save, smooth, title_of

#: "at most epochs"
MOST = 0.5


def draw(arts, options, output) -> None:
    ds = arts["experiment"]["gradstats"]
    w = options["window"]
    epochs = ds["epoch"].values
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for subset in ("easy", "difficult"):
        axes[0].plot(
            epochs,
            smooth(ds["cosine_similarity"].sel(subset=subset).values, w),
            color=COLORS[subset],
            label=subset,
        )
    for subset in ("full", "easy", "difficult"):
        axes[1].plot(
            epochs,
            smooth(ds["contribution"].sel(subset=subset).values, w),
            color=COLORS[subset],
            label=subset,
        )
    pairs = summary(config_of(ds)).get("cosine_pairs") or "probe"
    if pairs == "batch":
        where = "pairs within each training batch"
    else:
        where = f"probe of {int(ds['probe_size'].sel(subset='easy'))} per subset"
    axes[0].set_title(f"(a) cosine similarity ({where})")
    axes[0].set_ylabel("mean pairwise cosine similarity")
    axes[1].set_title("(b) contribution to the update")
    axes[1].set_ylabel("mean (v_i . g) / ||g||")
    for ax in axes:
        epoch_axis(ax)
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle(f"Figure 4: {title_of(ds)}; sliding window {w}", fontsize=8)
    fig.tight_layout()
    save(fig, output)


def _most_epochs(ds, var: str, higher: str, lower: str, figure_key: str, statement: str):
    a = ds[var].sel(subset=higher).values
    b = ds[var].sel(subset=lower).values
    ok = np.isfinite(a) & np.isfinite(b)
    share = float((a[ok] > b[ok]).mean()) if ok.any() else float("nan")
    return Claim(
        figure="fig4",
        key=figure_key,
        statement=statement,
        verdict=verdict(None if np.isnan(share) else share > MOST),
        evidence=f"{higher} > {lower} at {100 * share:.0f} % of {ok.sum()} epochs; means "
        f"{higher} {np.nanmean(a):.4g}, {lower} {np.nanmean(b):.4g}",
        experiment=ds.attrs.get("experiment", ""),
        values={"share_of_epochs": share, higher: np.nanmean(a), lower: np.nanmean(b)},
    )


def claims(arts, options) -> list[Claim]:
    ds = arts["experiment"]["gradstats"]
    out = [
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
            "difficult examples contribute more to each update (eq. 4) than easy ones, at "
            "most epochs",
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
    return out


FIGURE = Figure(
    name="fig4",
    title="Gradient statistics",
    caption="Mean pairwise cosine similarity of per-example gradients (eq. 3) and mean "
    "contribution (v_i·g)/‖g‖ to the mini-batch update (eq. 4), easy vs difficult examples.",
    options={"experiment": EXPERIMENT, "window": WINDOW},
    experiments={"experiment": ("gradstats",)},
    draw=draw,
    claims=claims,
)
