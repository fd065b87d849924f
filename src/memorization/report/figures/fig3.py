"""Figure 3: training and test dynamics with random labels (easy vs difficult subset)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..claims import Claim, verdict
from .base import EXPERIMENT, WINDOW, Figure, epoch_axis, save, smooth, title_of
from .curves import dynamics_panel, easy_faster, simultaneous

#: "the test accuracy reaches the peak ... and drops": by at least this much ...
DROP = 0.01
#: ... while the difficult (random-label) subset gains at least this much after the peak
FITTED_AFTER_PEAK = 0.05


def draw(arts, options, output) -> None:
    ds = arts["experiment"]["dynamics"]
    w = options["window"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    dynamics_panel(axes[0], ds, "train", w, control=False)
    axes[0].set_title("(a) training accuracy")
    test = ds["accuracy"].sel(run="all", split="test", subset="full").values
    axes[1].plot(ds["epoch"].values, smooth(test, w), color="black", label="test (full)")
    epoch_axis(axes[1])
    axes[1].set_ylabel("test accuracy")
    axes[1].set_title(f"(b) test accuracy (peak {np.nanmax(test):.3f})")
    axes[1].legend(frameon=False, fontsize=7)
    fig.suptitle(f"Figure 3: {title_of(ds)}; sliding window {w}", fontsize=8)
    fig.tight_layout()
    save(fig, output)


def peak_then_drop(ds) -> Claim:
    epochs = ds["epoch"].values
    test = ds["accuracy"].sel(run="all", split="test", subset="full").values
    difficult = ds["accuracy"].sel(run="all", split="train", subset="difficult").values
    k = int(np.nanargmax(test))
    drop = float(test[k] - test[-1])
    gain = float(difficult[-1] - difficult[k])
    return Claim(
        figure="fig3",
        key="test_peaks_then_drops",
        statement="the test accuracy peaks while the random labels are barely fitted, then "
        f"drops (by ≥ {DROP}) as the difficult subset is fitted (gain ≥ {FITTED_AFTER_PEAK} "
        "after the peak)",
        verdict=verdict(drop >= DROP and gain >= FITTED_AFTER_PEAK),
        evidence=f"test accuracy peaks at {test[k]:.3f} (epoch {int(epochs[k])}), ends at "
        f"{test[-1]:.3f} (drop {drop:.3f}); difficult training accuracy {difficult[k]:.3f} at "
        f"the peak, {difficult[-1]:.3f} at the end",
        experiment=ds.attrs.get("experiment", ""),
        values={
            "peak": test[k],
            "peak_epoch": epochs[k],
            "final": test[-1],
            "drop": drop,
            "difficult_gain_after_peak": gain,
        },
    )


def claims(arts, options) -> list[Claim]:
    ds = arts["experiment"]["dynamics"]
    return [easy_faster(ds, "fig3"), simultaneous(ds, "fig3"), peak_then_drop(ds)]


FIGURE = Figure(
    name="fig3",
    title="Dynamics with random labels",
    caption="Training accuracy of the full training set and of its easy and difficult "
    "subsets, and the test accuracy, with random labels in the training set.",
    options={"experiment": EXPERIMENT, "window": WINDOW},
    experiments={"experiment": ("dynamics",)},
    draw=draw,
    claims=claims,
)
