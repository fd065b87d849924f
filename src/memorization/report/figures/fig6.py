"""Figure 6: training on the easy subset only and on the difficult subset only."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..claims import Claim, verdict
from .base import COLORS, EXPERIMENT, WINDOW, Figure, epoch_axis, save, smooth, title_of


def draw(arts, options, output) -> None:
    ds = arts["experiment"]["crosstrain"]
    w = options["window"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for ax, train_on in zip(axes, ("easy", "difficult"), strict=True):
        for evaluate_on in ("easy", "difficult"):
            acc = ds["accuracy"].sel(train_on=train_on, evaluate_on=evaluate_on).values
            ax.plot(
                ds["epoch"].values,
                smooth(acc, w),
                color=COLORS[evaluate_on],
                label=f"accuracy on {evaluate_on}",
            )
        ax.set_title(f"({'ab'[train_on == 'difficult']}) trained on the {train_on} subset")
        epoch_axis(ax)
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, fontsize=7)
    axes[0].set_ylabel("accuracy")
    fig.suptitle(f"Figure 6: {title_of(ds)}", fontsize=8)
    fig.tight_layout()
    save(fig, output)


def claims(arts, options) -> list[Claim]:
    ds = arts["experiment"]["crosstrain"]
    acc = ds["accuracy"]
    final = acc.isel(epoch=-1)
    start = acc.isel(epoch=0)
    d2e = float(final.sel(train_on="difficult", evaluate_on="easy"))
    e2d = float(final.sel(train_on="easy", evaluate_on="difficult"))
    e2d_gain = e2d - float(start.sel(train_on="easy", evaluate_on="difficult"))
    d2e_gain = d2e - float(start.sel(train_on="difficult", evaluate_on="easy"))
    return [
        Claim(
            figure="fig6",
            key="difficult_informs_easy",
            statement="training on the difficult subset generalises to the easy one better "
            "than training on the easy subset generalises to the difficult one",
            verdict=verdict(d2e > e2d),
            evidence=f"trained on difficult → easy {d2e:.3f} (gain {d2e_gain:+.3f}); trained "
            f"on easy → difficult {e2d:.3f} (gain {e2d_gain:+.3f})",
            experiment=ds.attrs.get("experiment", ""),
            values={"difficult_to_easy": d2e, "easy_to_difficult": e2d},
        )
    ]


FIGURE = Figure(
    name="fig6",
    title="Cross-subset training",
    caption="Accuracy on the easy and difficult subsets when training only on (a) the easy "
    "subset, (b) the difficult subset.",
    options={"experiment": EXPERIMENT, "window": WINDOW},
    experiments={"experiment": ("crosstrain",)},
    draw=draw,
    claims=claims,
)
