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
#: "improves from the first epochs": within the first tenth of training (at least 3 epochs)
#: the difficult subset's accuracy gains at least this much over its epoch-1 value ...
EARLY_GAIN = 0.005
#: ... or their training loss falls at least this share below its maximum over those epochs
EARLY_LOSS_FALL = 0.02


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
    """Difficult examples improve from the first epochs: their training accuracy rises,
    or their training loss falls from its early maximum, within the first tenth of
    training. (Random labels first lose the accuracy chance gave them, the model
    predicting their true class, while their loss already starts to fall: accuracy alone
    would miss it.)"""
    epochs = ds["epoch"].values
    early = early_epoch(epochs)
    acc = dict(zip(epochs.tolist(), _train(ds, "difficult"), strict=True))
    loss = dict(
        zip(
            epochs.tolist(),
            ds["loss"].sel(run="all", split="train", subset="difficult").values,
            strict=True,
        )
    )
    gain = acc[early] - acc[1] if 1 in acc else float("nan")
    peak = max(loss[e] for e in range(1, early + 1)) if 1 in loss else float("nan")
    fall = (peak - loss[early]) / peak if peak > 0 else float("nan")
    holds = None if np.isnan(gain) else bool(gain >= EARLY_GAIN or fall >= EARLY_LOSS_FALL)
    return Claim(
        figure=figure,
        key="learnt_simultaneously",
        statement="difficult examples improve from the first epochs, simultaneously with the "
        f"easy ones (within the first tenth of training their accuracy gains ≥ {EARLY_GAIN} "
        f"or their loss falls ≥ {int(100 * EARLY_LOSS_FALL)} % from its maximum)",
        verdict=verdict(holds),
        evidence=f"difficult accuracy {acc.get(1, float('nan')):.3f} at epoch 1, "
        f"{acc[early]:.3f} at epoch {early} (gain {gain:+.3f}); loss maximum {peak:.3f}, "
        f"{loss[early]:.3f} at epoch {early} (fall {100 * fall:.1f} %); easy accuracy at "
        f"epoch 1 {at_epoch(ds, 'easy', 1):.3f}",
        experiment=ds.attrs.get("experiment", ""),
        values={"difficult_gain": gain, "difficult_loss_fall": fall, "early_epoch": early},
    )


def at_epoch(ds, subset: str, epoch: int, split: str = "train") -> float:
    return float(ds["accuracy"].sel(run="all", split=split, subset=subset, epoch=epoch))
