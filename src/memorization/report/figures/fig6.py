"""Figure 6: training on the easy subset only and on the difficult subset only.

The paper: trained on the easy subset, the network converges fast on it, with a marginal
improvement on the difficult subset; trained on the difficult subset, both improve
substantially ("a correct difficult example is more informative than an easy one").
"""

from __future__ import annotations

import numpy as np

from ..claims import Claim, judged
from ..uncertainty import binomial
from .base import COLORS, epoch_axis, over_seeds, pyplot, runs, save, smooth
from .curves import pooled

#: "converges fast on the easy subset": its accuracy after a quarter of the training
FAST = 0.9
#: "marginal improvement on the difficult one": trained on the easy subset, the difficult
#: subset gains at most this share of what it gains when trained on itself
MARGINAL = 0.5
#: "both improve substantially": trained on the difficult subset, each subset gains at
#: least this much accuracy
SUBSTANTIAL = 0.2
#: final accuracies are the mean of the last epochs
LAST = 3
HALVES = ("easy", "difficult")


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    ds = arts["experiment"]["crosstrain"]
    w = options["window"]
    acc = over_seeds(ds["accuracy"])
    epochs = ds["epoch"].values
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.0), sharey=True)
    for ax, train_on in zip(axes, HALVES, strict=True):
        for evaluate_on in HALVES:
            curve = acc.sel(train_on=train_on, evaluate_on=evaluate_on).values
            ax.plot(
                epochs,
                smooth(curve, w),
                color=COLORS[evaluate_on],
                label=f"accuracy on {evaluate_on}",
            )
        ax.set_title(f"({'ab'[train_on == 'difficult']}) trained on the {train_on} subset")
        epoch_axis(ax, epochs)
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=True, framealpha=0.9)
    axes[0].set_ylabel("training accuracy")
    fig.tight_layout()
    save(fig, output, about=[ds])


def _measures(acc) -> dict[str, np.ndarray]:
    """From ``acc[..., epoch, train_on, evaluate_on]``: each run's gains (final minus
    start) and the easy-trained run's accuracy on easy after a quarter of the epochs."""
    n_epochs = acc.shape[-3]
    final = np.nanmean(acc[..., -LAST:, :, :], axis=-3)
    gain = final - acc[..., 0, :, :]
    quarter = max(1, round(0.25 * (n_epochs - 1)))
    return {"gain": gain, "final": final, "fast": acc[..., quarter, 0, 0]}


def _draws(one, rng) -> dict[str, np.ndarray]:
    acc = one["accuracy"].transpose("epoch", "train_on", "evaluate_on").values
    sizes = one["subset_size"].sel(evaluate_on=list(HALVES)).values
    return _measures(binomial(acc, sizes[None, None, :], rng))


def _claim(ds, key, statement, effect_of, threshold, above, evidence) -> Claim:
    name = ds.attrs.get("experiment", "")
    acc = over_seeds(ds["accuracy"]).transpose("epoch", "train_on", "evaluate_on").values
    effect = float(effect_of(_measures(acc)))
    draws = pooled(ds, lambda one, rng: effect_of(_draws(one, rng)), ("fig6", key, name))
    return judged(
        "fig6",
        key,
        statement,
        draws,
        effect,
        threshold,
        evidence,
        above=above,
        experiment=name,
        values={"effect": effect},
    )


def claims(arts, options) -> list[Claim]:
    ds = arts["experiment"]["crosstrain"]
    acc = over_seeds(ds["accuracy"]).transpose("epoch", "train_on", "evaluate_on").values
    m = _measures(acc)
    f = m["final"]
    seeds = f"{len(runs(ds))} seed(s)"
    evidence = (
        f"trained on easy: easy {acc[0, 0, 0]:.3f} → {f[0, 0]:.3f} (after a quarter "
        f"{m['fast']:.3f}), difficult {acc[0, 0, 1]:.3f} → {f[0, 1]:.3f}; trained on difficult: "
        f"easy {acc[0, 1, 0]:.3f} → {f[1, 0]:.3f}, difficult {acc[0, 1, 1]:.3f} → {f[1, 1]:.3f}; "
        f"{seeds}"
    )
    return [
        _claim(
            ds,
            "easy_training_fast_on_easy",
            f"trained on the easy subset, the network converges fast on it (accuracy ≥ "
            f"{FAST} after a quarter of the training)",
            lambda x: x["fast"],
            FAST,
            True,
            evidence,
        ),
        _claim(
            ds,
            "easy_training_marginal_on_difficult",
            "trained on the easy subset, the difficult subset improves marginally (its gain "
            f"is < {MARGINAL} × its gain when trained on itself)",
            lambda x: x["gain"][..., 0, 1] / x["gain"][..., 1, 1],
            MARGINAL,
            False,
            evidence,
        ),
        _claim(
            ds,
            "difficult_training_improves_both",
            "trained on the difficult subset, both subsets improve substantially (each "
            f"gains ≥ {SUBSTANTIAL})",
            lambda x: np.minimum(x["gain"][..., 1, 0], x["gain"][..., 1, 1]),
            SUBSTANTIAL,
            True,
            evidence,
        ),
        _claim(
            ds,
            "difficult_informs_easy",
            "training on the difficult subset generalises to the easy one better than "
            "training on the easy subset generalises to the difficult one",
            lambda x: x["final"][..., 1, 0] - x["final"][..., 0, 1],
            0.0,
            True,
            evidence,
        ),
    ]
