"""Training and test dynamics on the easy, difficult and full subsets (figures 3 and 5).

The panels and the claims both figures make: easy examples are learnt faster than
difficult ones, and both improve from the first epochs (the paper's "simultaneously").
Every claim's interval pools the draws of each seed of the study (``claim_seeds``): its
accuracies redrawn as binomial proportions over the subset's examples, its mean losses
as normal means with the subset's standard deviation.
"""

from __future__ import annotations

import numpy as np

from ..claims import Claim, judged
from ..uncertainty import DRAWS, binomial, generator
from .base import COLORS, epoch_axis, over_seeds, runs, smooth

__all__ = [
    "EARLY_LOSS_FALL",
    "LEARNT_GAP",
    "accuracy_draws",
    "pooled",
    "dynamics_panel",
    "easy_faster",
    "peak_drop",
    "peak_epoch",
    "simultaneous",
]

#: "easy examples are learnt faster": the easy subset's training accuracy exceeds the
#: difficult one's by at least this much on average over the epochs (the area between the
#: curves per epoch): one percentage point, a gap a reader can see in the figure
LEARNT_GAP = 0.01
#: "improves from the first epochs": within the first tenth of training (at least 3 epochs)
#: the difficult subset's training loss falls at least this share below its maximum there
EARLY_LOSS_FALL = 0.02


def subset_label(ds, split: str, subset: str) -> str:
    sizes = runs(ds)[0]["subset_size"]
    size = int(sizes.sel(split=split, subset=subset))
    total = int(sizes.sel(split=split, subset="full"))
    return f"{subset} ({100 * size / total:.1f}%)"


def dynamics_panel(ax, ds, split: str, window: int, control: bool = True) -> None:
    """Accuracy of the full, easy and difficult subsets (the mean over the seeds); dotted:
    the control run trained without the difficult subset."""
    epochs = ds["epoch"].values
    acc = over_seeds(ds["accuracy"])
    for subset in ("full", "easy", "difficult"):
        curve = acc.sel(run="all", split=split, subset=subset).values
        ax.plot(
            epochs,
            smooth(curve, window),
            color=COLORS[subset],
            lw=1.4,
            label=subset_label(ds, split, subset),
        )
        if control and "without_difficult" in ds["run"].values:
            ctrl = acc.sel(run="without_difficult", split=split, subset=subset).values
            ax.plot(epochs, smooth(ctrl, window), ":", color=COLORS[subset], lw=1.4)
    epoch_axis(ax, epochs)
    ax.set_ylabel(f"{split} accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=True, framealpha=0.9, fontsize=7)


def accuracy_draws(ds, rng, run="all", split="train", draws: int = DRAWS) -> dict:
    """Per subset, ``[draws, epochs]`` binomial redraws of one seed's accuracy curve."""
    out = {}
    for subset in ("full", "easy", "difficult"):
        acc = ds["accuracy"].sel(run=run, split=split, subset=subset).values
        n = int(ds["subset_size"].sel(split=split, subset=subset))
        out[subset] = binomial(acc, n, rng, draws)
    return out


def pooled(ds, fn, key) -> np.ndarray:
    """``fn(run, rng)`` over every seed of the study, the draws pooled."""
    rng = generator(*key)
    return np.concatenate([np.atleast_1d(fn(one, rng)) for one in runs(ds)])


def _area(easy: np.ndarray, difficult: np.ndarray) -> np.ndarray:
    """Mean over the epochs after the first (epoch 0 is the untrained model) of easy -
    difficult, along the last axis."""
    return np.nanmean(easy[..., 1:] - difficult[..., 1:], axis=-1)


def easy_faster(ds, figure: str) -> Claim:
    name = ds.attrs.get("experiment", "")
    acc = over_seeds(ds["accuracy"]).sel(run="all", split="train")
    effect = float(_area(acc.sel(subset="easy").values, acc.sel(subset="difficult").values))

    def draw(one, rng):
        d = accuracy_draws(one, rng)
        return _area(d["easy"], d["difficult"])

    draws = pooled(ds, draw, (figure, "easy_learnt_faster", name))
    easy, difficult = acc.sel(subset="easy").values, acc.sel(subset="difficult").values
    return judged(
        figure,
        "easy_learnt_faster",
        "easy examples are learnt faster than difficult ones (their training accuracy is "
        f"higher by ≥ {LEARNT_GAP} on average over the epochs)",
        draws,
        effect,
        LEARNT_GAP,
        f"mean training accuracy over the epochs easy {np.nanmean(easy[1:]):.3f}, difficult "
        f"{np.nanmean(difficult[1:]):.3f}; at the end easy {easy[-1]:.3f}, difficult "
        f"{difficult[-1]:.3f}; {len(runs(ds))} seed(s)",
        experiment=name,
        values={"easy_mean": np.nanmean(easy[1:]), "difficult_mean": np.nanmean(difficult[1:])},
    )


def early_epoch(epochs: np.ndarray) -> int:
    """The end of the "first epochs": a tenth of training, at least epoch 3."""
    return int(min(epochs[-1], max(3, round(0.1 * epochs[-1]))))


def _fall(loss: np.ndarray, early: int) -> np.ndarray:
    """Relative fall of a loss curve from its maximum over epochs 1..early to epoch early
    (along the last axis)."""
    peak = np.nanmax(loss[..., 1 : early + 1], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero loss throughout: no fall
        return np.where(peak > 0, (peak - loss[..., early]) / np.where(peak > 0, peak, 1), 0.0)


def simultaneous(ds, figure: str) -> Claim:
    """Difficult examples improve from the first epochs: their training loss falls within
    the first tenth of training. (Random labels first lose the accuracy chance gave them,
    the model predicting their true class, while their loss already falls: accuracy alone
    would miss it.)"""
    name = ds.attrs.get("experiment", "")
    epochs = ds["epoch"].values
    early = early_epoch(epochs)
    sel = {"run": "all", "split": "train", "subset": "difficult"}
    loss = over_seeds(ds["loss"]).sel(**sel).values
    effect = float(_fall(loss, early))

    def draw(one, rng):
        mean = one["loss"].sel(**sel).values
        sd = one["loss_sd"].sel(**sel).values if "loss_sd" in one else np.zeros_like(mean)
        n = int(one["subset_size"].sel(split="train", subset="difficult"))
        noisy = mean + rng.standard_normal((DRAWS, len(mean))) * sd / np.sqrt(max(n, 1))
        return _fall(noisy, early)

    draws = pooled(ds, draw, (figure, "learnt_simultaneously", name))
    acc = over_seeds(ds["accuracy"]).sel(**sel).values
    return judged(
        figure,
        "learnt_simultaneously",
        "difficult examples improve from the first epochs, simultaneously with the easy ones "
        f"(their training loss falls ≥ {int(100 * EARLY_LOSS_FALL)} % from its maximum within "
        "the first tenth of training)",
        draws,
        effect,
        EARLY_LOSS_FALL,
        f"difficult loss maximum {np.nanmax(loss[1 : early + 1]):.3f}, {loss[early]:.3f} at "
        f"epoch {early}; difficult accuracy {acc[1]:.3f} at epoch 1, {acc[early]:.3f} at epoch "
        f"{early}; easy accuracy at epoch 1 {at_epoch(ds, 'easy', 1):.3f}",
        experiment=name,
        values={"difficult_loss_fall": effect, "early_epoch": early},
    )


#: final accuracies are the mean of the last epochs, a peak the mean of three epochs around it
LAST = 3


def peak_epoch(curve: np.ndarray) -> int:
    """The epoch (index) where a curve peaks: the maximum of its 3-epoch moving mean after
    epoch 0. Chosen once on the observed curve and kept for the redraws, so that the noise
    of the redraws cannot pick their own maxima (which would bias the drop upward)."""
    return int(np.nanargmax(smooth(curve, 3)[1:])) + 1


def peak_drop(curve: np.ndarray, k: int) -> np.ndarray:
    """The mean of the three epochs around ``k`` (shifted to lie within epochs 1..E) minus
    the mean of the last LAST epochs (along the last axis)."""
    last = curve.shape[-1] - 1
    start = max(1, min(k - 1, last - 2))
    around = np.nanmean(curve[..., start : start + 3], axis=-1)
    return around - np.nanmean(curve[..., -LAST:], axis=-1)


def at_epoch(ds, subset: str, epoch: int, split: str = "train") -> float:
    acc = over_seeds(ds["accuracy"])
    return float(acc.sel(run="all", split=split, subset=subset, epoch=epoch))
