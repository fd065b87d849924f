"""Figure 5: training and test dynamics on easy and difficult subsets of real data."""

from __future__ import annotations

import numpy as np

from ..claims import Claim, judged, unmeasured
from ..uncertainty import binomial
from .base import over_seeds, pyplot, runs, save, short
from .curves import dynamics_panel, easy_faster, pooled, simultaneous

#: the control run (difficult subset removed) must lose at least this much accuracy on
#: the difficult training examples for their improvement not to be a side effect
CONTROL_EFFECT = 0.05
#: final accuracies are the mean of the last epochs (single epochs cross by noise)
LAST = 3


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    panels = arts["experiments"]
    w = options["window"]
    fig, axes = plt.subplots(len(panels), 2, figsize=(7.5, 2.9 * len(panels)), squeeze=False)
    for i, art in enumerate(panels):
        ds = art["dynamics"]
        for j, split in enumerate(("train", "test")):
            dynamics_panel(axes[i, j], ds, split, w)
            axes[i, j].set_title(f"({chr(97 + 2 * i + j)}) {short(ds)}: {split}")
    fig.tight_layout()
    save(fig, output, about=[art["dynamics"] for art in panels])


def _final(values) -> np.ndarray:
    return np.nanmean(np.asarray(values)[..., -LAST:], axis=-1)


def easy_higher_test(ds) -> Claim:
    name = ds.attrs.get("experiment", "")
    acc = over_seeds(ds["accuracy"]).sel(run="all", split="test")
    easy, difficult = _final(acc.sel(subset="easy").values), _final(acc.sel(subset="difficult"))

    def draw(one, rng):
        sizes = one["subset_size"].sel(split="test")
        a = one["accuracy"].sel(run="all", split="test")
        e = binomial(a.sel(subset="easy").values, int(sizes.sel(subset="easy")), rng)
        d = binomial(a.sel(subset="difficult").values, int(sizes.sel(subset="difficult")), rng)
        return _final(e) - _final(d)

    return judged(
        "fig5",
        "easy_higher_test_accuracy",
        "on the test split too, easy examples reach a higher accuracy than difficult ones",
        pooled(ds, draw, ("fig5", "easy_higher_test_accuracy", name)),
        float(easy - difficult),
        0.0,
        f"final test accuracy (last {LAST} epochs) easy {easy:.3f}, difficult {difficult:.3f}",
        experiment=name,
        values={"easy": easy, "difficult": difficult},
    )


CONTROL = (
    "removing the difficult subset from training lowers the difficult examples' accuracy by "
    f"≥ {CONTROL_EFFECT} (their improvement is not a side effect of the easy ones)"
)


def control_effect(ds) -> Claim:
    name = ds.attrs.get("experiment", "")
    if "without_difficult" not in ds["run"].values:
        return unmeasured(
            "fig5",
            "control_without_difficult",
            CONTROL,
            "no control run (set control: true on the experiment)",
            name,
        )
    acc = over_seeds(ds["accuracy"])
    final = {
        (run, split): float(_final(acc.sel(run=run, split=split, subset="difficult").values))
        for run in ("all", "without_difficult")
        for split in ("train", "test")
    }
    effect = final["all", "train"] - final["without_difficult", "train"]

    def draw(one, rng):
        n = int(one["subset_size"].sel(split="train", subset="difficult"))
        a = one["accuracy"].sel(split="train", subset="difficult")
        trained = binomial(a.sel(run="all").values, n, rng)
        removed = binomial(a.sel(run="without_difficult").values, n, rng)
        return _final(trained) - _final(removed)

    test_effect = final["without_difficult", "test"] - final["all", "test"]
    return judged(
        "fig5",
        "control_without_difficult",
        CONTROL,
        pooled(ds, draw, ("fig5", "control_without_difficult", name)),
        effect,
        CONTROL_EFFECT,
        f"difficult training examples: {final['all', 'train']:.3f} trained on, "
        f"{final['without_difficult', 'train']:.3f} removed ({-effect:+.3f}); difficult test "
        f"examples: {final['all', 'test']:.3f} vs {final['without_difficult', 'test']:.3f} "
        f"({test_effect:+.3f}); {len(runs(ds))} seed(s)",
        experiment=name,
        values={f"{run}_{split}": v for (run, split), v in final.items()},
    )


def claims(arts, options) -> list[Claim]:
    out = []
    for art in arts["experiments"]:
        ds = art["dynamics"]
        out += [
            easy_faster(ds, "fig5"),
            simultaneous(ds, "fig5"),
            easy_higher_test(ds),
            control_effect(ds),
        ]
    return out
