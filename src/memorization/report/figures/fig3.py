"""Figure 3: training and test dynamics with random labels (easy vs difficult subset)."""

from __future__ import annotations

import numpy as np

from ..claims import Claim, judged
from ..uncertainty import DRAWS, binomial
from .base import epoch_axis, over_seeds, pyplot, runs, save, smooth
from .curves import (
    LAST,
    accuracy_draws,
    dynamics_panel,
    easy_faster,
    peak_drop,
    peak_epoch,
    pooled,
    simultaneous,
)

#: "the test accuracy reaches the peak ... and drops": by at least this much (the peak
#: against the mean of the last LAST epochs) ...
DROP = 0.01
#: ... while the difficult (random-label) subset gains at least this much after the peak
FITTED_AFTER_PEAK = 0.05


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    ds = arts["experiment"]["dynamics"]
    w = options["window"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0))
    dynamics_panel(axes[0], ds, "train", w, control=False)
    axes[0].set_title("(a) training accuracy")
    test = over_seeds(ds["accuracy"]).sel(run="all", split="test", subset="full").values
    epochs = ds["epoch"].values
    axes[1].plot(epochs, smooth(test, w), color="black", label="test (full)")
    epoch_axis(axes[1], epochs)
    axes[1].set_ylabel("test accuracy")
    axes[1].set_title(f"(b) test accuracy (peak {np.nanmax(test):.3f})")
    axes[1].legend(frameon=True, framealpha=0.9)
    fig.tight_layout()
    save(fig, output, about=[ds])


def _peak_drop(test: np.ndarray, difficult: np.ndarray, k: int):
    """(drop of the test accuracy from its peak at ``k`` to its last epochs, gain of the
    difficult training accuracy from the peak to the last epochs), along the last axis."""
    gain = np.nanmean(difficult[..., -LAST:], axis=-1) - difficult[..., k]
    return peak_drop(test, k), gain


def peak_then_drop(ds) -> Claim:
    name = ds.attrs.get("experiment", "")
    acc = over_seeds(ds["accuracy"])
    test = acc.sel(run="all", split="test", subset="full").values
    difficult = acc.sel(run="all", split="train", subset="difficult").values
    k = peak_epoch(test)
    drop, gain = _peak_drop(test, difficult, k)
    effect = float(min(drop - DROP, gain - FITTED_AFTER_PEAK))

    def draw(one, rng):
        t = binomial(
            one["accuracy"].sel(run="all", split="test", subset="full").values,
            int(one["subset_size"].sel(split="test", subset="full")),
            rng,
            DRAWS,
        )
        dr, ga = _peak_drop(t, accuracy_draws(one, rng)["difficult"], k)
        return np.minimum(dr - DROP, ga - FITTED_AFTER_PEAK)

    draws = pooled(ds, draw, ("fig3", "test_peaks_then_drops", name))
    epochs = ds["epoch"].values
    return judged(
        "fig3",
        "test_peaks_then_drops",
        f"the test accuracy peaks while the random labels are barely fitted, then drops (by ≥ "
        f"{DROP}) as the difficult subset is fitted (gain ≥ {FITTED_AFTER_PEAK} after the peak)",
        draws,
        effect,
        0.0,
        f"test accuracy peaks at {test[k]:.3f} (epoch {int(epochs[k])}), the last {LAST} epochs "
        f"average {np.nanmean(test[-LAST:]):.3f} (drop {drop:.3f}); difficult training accuracy "
        f"{difficult[k]:.3f} at the peak, {np.nanmean(difficult[-LAST:]):.3f} at the end; "
        f"{len(runs(ds))} seed(s)",
        experiment=name,
        values={
            "peak": test[k],
            "peak_epoch": epochs[k],
            "drop": drop,
            "difficult_gain_after_peak": gain,
        },
    )


def claims(arts, options) -> list[Claim]:
    ds = arts["experiment"]["dynamics"]
    return [easy_faster(ds, "fig3"), simultaneous(ds, "fig3"), peak_then_drop(ds)]
