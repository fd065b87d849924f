"""Figure 10 (appendix E): training and test dynamics at several corruption levels."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...workflow.artifacts import config_of
from ...workflow.slices import summary
from ..claims import Claim, verdict
from .base import EXPERIMENT, WINDOW, Figure, epoch_axis, save, smooth, title_of

#: the all-random level "stays near chance": test accuracy within this of 1/classes
CHANCE_TOL = 0.05
#: final accuracies are the mean of the last epochs (single epochs cross by noise)
LAST = 3
#: "the test accuracy firstly reaches a peak before it drops": by at least this much
DROP = 0.01


def _levels(arts) -> list[tuple[int, object]]:
    out = [(int(ds["corrupt"].values[0]), ds.isel(corrupt=0)) for ds in arts["experiment"]["sweep"]]
    return sorted(out, key=lambda t: t[0])


def _curve(ds, split: str) -> np.ndarray:
    return ds["accuracy"].sel(run="all", split=split, subset="full").values


def draw(arts, options, output) -> None:
    levels = _levels(arts)
    w = options["window"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    cmap = plt.get_cmap("viridis")
    for k, (level, ds) in enumerate(levels):
        color = cmap(k / max(len(levels) - 1, 1))
        for ax, split in zip(axes, ("train", "test"), strict=True):
            ax.plot(ds["epoch"].values, smooth(_curve(ds, split), w), color=color, label=str(level))
    for ax, split in zip(axes, ("train", "test"), strict=True):
        ax.set_title(f"({'ab'[split == 'test']}) {split} accuracy")
        epoch_axis(ax)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(title="random labels", frameon=False, fontsize=7)
    fig.suptitle(
        f"Figure 10: corruption sweep ({cfg_mode(levels)}) of "
        f"{title_of(levels[0][1], labels=False)}",
        fontsize=8,
    )
    fig.tight_layout()
    save(fig, output)


def cfg_mode(levels) -> str:
    """How the random labels were drawn (uniform or different), from provenance."""
    return summary(config_of(levels[0][1])).get("corruption") or "uniform"


def _final(curve) -> float:
    """The mean of the last LAST epochs (epoch 0, the untrained model, excluded)."""
    return float(np.nanmean(np.asarray(curve)[1:][-LAST:]))


def _decreasing(values: list[float]) -> bool:
    return all(b < a for a, b in zip(values, values[1:], strict=False))


def claims(arts, options) -> list[Claim]:
    levels = _levels(arts)
    first = levels[0][1]
    name = first.attrs.get("experiment", "")
    n_train = int(first["subset_size"].sel(split="train", subset="full"))
    n_classes = first.attrs.get("n_classes")
    chance = 1.0 / int(n_classes) if n_classes else float("nan")
    names = [str(level) for level, _ in levels]
    final_test = [_final(_curve(ds, "test")) for _, ds in levels]
    speed = [float(np.nanmean(_curve(ds, "train")[1:])) for _, ds in levels]
    enough = len(levels) >= 2
    out = [
        Claim(
            figure="fig10",
            key="more_noise_lower_test",
            statement=f"the more random labels, the lower the final test accuracy (mean of the "
            f"last {LAST} epochs)",
            verdict=verdict(_decreasing(final_test) if enough else None),
            evidence="final test accuracy by level: "
            + ", ".join(f"{n}: {v:.3f}" for n, v in zip(names, final_test, strict=True)),
            experiment=name,
            values={f"test_{n}": v for n, v in zip(names, final_test, strict=True)},
        ),
        Claim(
            figure="fig10",
            key="more_noise_slower_fit",
            statement="the more random labels, the slower the training set is fitted (mean "
            "training accuracy over the epochs)",
            verdict=verdict(_decreasing(speed) if enough else None),
            evidence="mean training accuracy by level: "
            + ", ".join(f"{n}: {v:.3f}" for n, v in zip(names, speed, strict=True)),
            experiment=name,
            values={f"train_mean_{n}": v for n, v in zip(names, speed, strict=True)},
        ),
    ]
    full = [ds for level, ds in levels if level >= n_train]
    if full:
        acc = _final(_curve(full[0], "test"))
        evidence = (
            f"all {n_train} labels random: final test accuracy {acc:.3f}, chance {chance:.3f}"
        )
        holds = abs(acc - chance) <= CHANCE_TOL
    else:
        acc, holds, evidence = None, None, "the sweep has no all-random level"
    out.append(
        Claim(
            figure="fig10",
            key="all_random_at_chance",
            statement=f"with every label random the test accuracy stays near chance "
            f"(within {CHANCE_TOL})",
            verdict=verdict(holds),
            evidence=evidence,
            experiment=name,
            values={"test": acc, "chance": chance},
        )
    )
    middle = [(level, ds) for level, ds in levels if 0 < level < n_train]
    drops = []
    for level, ds in middle:
        test = _curve(ds, "test")
        drops.append((level, float(np.nanmax(test) - _final(test)), int(np.nanargmax(test))))
    out.append(
        Claim(
            figure="fig10",
            key="noisy_test_peaks_then_drops",
            statement=f"with some random labels the test accuracy first peaks, then drops (by "
            f"≥ {DROP})",
            verdict=verdict(all(d >= DROP for _, d, _ in drops) if drops else None),
            evidence="; ".join(f"{lv}: drop {d:.3f} after epoch {e}" for lv, d, e in drops)
            or "no level strictly between none and all",
            experiment=name,
            values={f"drop_{lv}": d for lv, d, _ in drops},
        )
    )
    return out


FIGURE = Figure(
    name="fig10",
    title="Corruption sweep",
    caption="Training and test accuracy of plain training at several numbers of random "
    "labels in the training set (the test labels are untouched).",
    options={"experiment": EXPERIMENT, "window": WINDOW},
    experiments={"experiment": ("sweep",)},
    draw=draw,
    claims=claims,
)
