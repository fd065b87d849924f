"""Figure 10 (appendix E): training and test dynamics at several corruption levels."""

from __future__ import annotations

import numpy as np

from ..claims import Claim, judged, unmeasured
from ..uncertainty import binomial, generator
from .base import epoch_axis, over_seeds, pyplot, runs, save, smooth
from .curves import peak_drop, peak_epoch

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
    return over_seeds(ds["accuracy"]).sel(run="all", split=split, subset="full").values


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    levels = _levels(arts)
    w = options["window"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0), sharey=True)
    cmap = plt.get_cmap("viridis")
    for k, (level, ds) in enumerate(levels):
        color = cmap(0.85 * k / max(len(levels) - 1, 1))  # (viridis' last yellow fades)
        for ax, split in zip(axes, ("train", "test"), strict=True):
            ax.plot(ds["epoch"].values, smooth(_curve(ds, split), w), color=color, label=str(level))
    for ax, split in zip(axes, ("train", "test"), strict=True):
        ax.set_title(f"({'ab'[split == 'test']}) {split} accuracy")
        epoch_axis(ax, levels[0][1]["epoch"].values)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("accuracy")
    fig.legend(
        *axes[1].get_legend_handles_labels(),
        title="random labels",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        frameon=True,
    )
    fig.tight_layout()
    save(fig, output, about=[ds for _, ds in levels])


def _final(curve) -> np.ndarray:
    """The mean of the last LAST epochs (epoch 0, the untrained model, excluded)."""
    return np.nanmean(np.asarray(curve)[..., 1:][..., -LAST:], axis=-1)


def _redraws(levels, split: str, key) -> np.ndarray:
    """``[draws, level, epoch]`` binomial redraws of every level's curve, pooled over seeds."""
    rng = generator("fig10", key, split)
    out = []
    for k in range(len(runs(levels[0][1]))):
        per_level = []
        for _, ds in levels:
            one = runs(ds)[k]
            n = int(one["subset_size"].sel(split=split, subset="full"))
            curve = one["accuracy"].sel(run="all", split=split, subset="full").values
            per_level.append(binomial(curve, n, rng))
        out.append(np.stack(per_level, axis=1))
    return np.concatenate(out)


def _ordered(levels, split, statistic, key, statement, what) -> Claim:
    """The more random labels, the lower ``statistic`` of the ``split`` curve: the effect
    is the smallest fall between consecutive levels."""
    name = levels[0][1].attrs.get("experiment", "")
    values = np.array([statistic(_curve(ds, split)) for _, ds in levels])
    draws = statistic(_redraws(levels, split, key))  # [draws, level]
    names = [str(level) for level, _ in levels]
    return judged(
        "fig10",
        key,
        statement,
        np.min(draws[:, :-1] - draws[:, 1:], axis=1),
        float(np.min(values[:-1] - values[1:])),
        0.0,
        f"{what} by level: "
        + ", ".join(f"{n}: {v:.3f}" for n, v in zip(names, values, strict=True)),
        experiment=name,
        values={f"{key}_{n}": v for n, v in zip(names, values, strict=True)},
    )


def claims(arts, options) -> list[Claim]:
    levels = _levels(arts)
    out = []
    if len(levels) >= 2:
        out.append(
            _ordered(
                levels,
                "test",
                _final,
                "more_noise_lower_test",
                f"the more random labels, the lower the final test accuracy (mean "
                f"of the last {LAST} epochs)",
                "final test accuracy",
            )
        )
        out.append(
            _ordered(
                levels,
                "train",
                lambda c: np.nanmean(c[..., 1:], axis=-1),
                "more_noise_slower_fit",
                "the more random labels, the slower the "
                "training set is fitted (mean training accuracy over the epochs)",
                "mean training accuracy",
            )
        )
    out.append(_all_random(levels))
    out.append(_peaks_then_drops(levels))
    return out


def _all_random(levels) -> Claim:
    first = levels[0][1]
    name = first.attrs.get("experiment", "")
    n_train = int(runs(first)[0]["subset_size"].sel(split="train", subset="full"))
    statement = f"with every label random the test accuracy stays near chance (within {CHANCE_TOL})"
    full = [(k, ds) for k, (level, ds) in enumerate(levels) if level >= n_train]
    n_classes = first.attrs.get("n_classes")
    if not full or not n_classes:
        return unmeasured(
            "fig10", "all_random_at_chance", statement, "the sweep has no all-random level", name
        )
    chance = 1.0 / int(n_classes)
    k, ds = full[0]
    acc = float(_final(_curve(ds, "test")))
    draws = np.abs(_final(_redraws(levels, "test", "all_random_at_chance")[:, k]) - chance)
    return judged(
        "fig10",
        "all_random_at_chance",
        statement,
        draws,
        abs(acc - chance),
        CHANCE_TOL,
        f"all {n_train} labels random: final test accuracy {acc:.3f}, chance {chance:.3f}",
        above=False,
        experiment=name,
        values={"test": acc, "chance": chance},
    )


def _peaks_then_drops(levels) -> Claim:
    name = levels[0][1].attrs.get("experiment", "")
    n_train = int(runs(levels[0][1])[0]["subset_size"].sel(split="train", subset="full"))
    statement = f"with some random labels the test accuracy first peaks, then drops (by ≥ {DROP})"
    middle = [k for k, (level, _) in enumerate(levels) if 0 < level < n_train]
    if not middle:
        return unmeasured(
            "fig10",
            "noisy_test_peaks_then_drops",
            statement,
            "no level strictly between none and all",
            name,
        )
    peaks = [peak_epoch(_curve(levels[k][1], "test")) for k in middle]
    drops = [
        float(peak_drop(_curve(levels[k][1], "test"), p))
        for k, p in zip(middle, peaks, strict=True)
    ]
    redrawn = _redraws(levels, "test", "noisy_test_peaks_then_drops")
    draws = np.stack(
        [peak_drop(redrawn[:, k], p) for k, p in zip(middle, peaks, strict=True)], axis=1
    )
    return judged(
        "fig10",
        "noisy_test_peaks_then_drops",
        statement,
        draws.min(axis=1),
        min(drops),
        DROP,
        "; ".join(f"{levels[k][0]}: drop {d:.3f}" for k, d in zip(middle, drops, strict=True)),
        experiment=name,
        values={f"drop_{levels[k][0]}": d for k, d in zip(middle, drops, strict=True)},
    )
