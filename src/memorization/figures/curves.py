"""Training and test dynamics on the easy, difficult and full subsets (figures 3 and 5).

The panels and the claims both figures make: easy examples are learnt faster than
difficult ones, and both improve from the first epochs (the paper's "simultaneously").
"""

from __future__ import annotations

import numpy as np

from ..claims import Claim, first_epoch_at, fmt_epoch, verdict
from .base import COLORS, epoch_axis, smooth

#: "learnt": the training accuracy a subset must reach
LEARNT = 0.9
#: "improves from the first epochs": the difficult subset's accuracy gains at least this
#: much between epoch 1 and the end of the first tenth of training (at least epoch 3)
EARLY_GAIN = 0.005


def subset_label(ds, split: str, subset: str) -> str:
    size = int(ds["subset_size"].sel(split=split, subset=subset))
    total = int(ds["subset_size"].sel(split=split, subset="full"))
    return f"{subset} ({100 * size / total:.1f}%)"


def dynamics_panel(ax, ds, split: str, window: int, control: bool = True) -> None:
    epochs = ds["epoch"].values
    for subset in ("full", "easy", "difficult"):
        acc = ds["accuracy"].sel(run="all", split=split, subset=subset).values
        ax.plot(
            epochs, smooth(acc, window), color=COLORS[subset], label=subset_label(ds, split, subset)
        )
        if control and "without_difficult" in ds["run"].values:
            ctrl = ds["accuracy"].sel(run="without_difficult", split=split, subset=subset).values
            ax.plot(epochs, smooth(ctrl, window), ":", color=COLORS[subset], lw=1.2)
    epoch_axis(ax)
    ax.set_ylabel(f"{split} accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=7)


def _train(ds, subset: str, run: str = "all", split: str = "train") -> np.ndarray:
    return ds["accuracy"].sel(run=run, split=split, subset=subset).values


def early_epoch(epochs: np.ndarray) -> int:
    """The end of the "first epochs": a tenth of training, at least epoch 3."""
    return int(min(epochs[-1], max(3, round(0.1 * epochs[-1]))))


def easy_faster(ds, figure: str) -> Claim:
    epochs = ds["epoch"].values
    easy = first_epoch_at(_train(ds, "easy"), epochs, LEARNT)
    difficult = first_epoch_at(_train(ds, "difficult"), epochs, LEARNT)
    holds = None if not np.isfinite(easy) and not np.isfinite(difficult) else easy < difficult
    return Claim(
        figure=figure,
        key="easy_learnt_faster",
        statement=f"easy examples are learnt faster than difficult ones (first epoch at "
        f"{int(100 * LEARNT)} % training accuracy)",
        verdict=verdict(holds),
        evidence=f"easy at epoch {fmt_epoch(easy)}, difficult at {fmt_epoch(difficult)} "
        f"(max {np.nanmax(_train(ds, 'difficult')):.3f})",
        experiment=ds.attrs.get("experiment", ""),
        values={"easy_epoch": easy, "difficult_epoch": difficult},
    )


def simultaneous(ds, figure: str) -> Claim:
    epochs = ds["epoch"].values
    early = early_epoch(epochs)
    acc = _train(ds, "difficult")
    at = {int(e): a for e, a in zip(epochs, acc, strict=True)}
    gain = at[early] - at[1] if 1 in at else float("nan")
    return Claim(
        figure=figure,
        key="learnt_simultaneously",
        statement="difficult examples improve from the first epochs, simultaneously with the "
        f"easy ones (training accuracy gain ≥ {EARLY_GAIN} from epoch 1 to the end of the "
        "first tenth of training)",
        verdict=verdict(None if np.isnan(gain) else gain >= EARLY_GAIN),
        evidence=f"difficult: {at.get(1, float('nan')):.3f} at epoch 1, {at[early]:.3f} at "
        f"epoch {early} (gain {gain:+.3f}); easy at epoch 1 {at_epoch(ds, 'easy', 1):.3f}",
        experiment=ds.attrs.get("experiment", ""),
        values={"difficult_gain": gain, "early_epoch": early},
    )


def at_epoch(ds, subset: str, epoch: int, split: str = "train") -> float:
    return float(ds["accuracy"].sel(run="all", split=split, subset=subset, epoch=epoch))
