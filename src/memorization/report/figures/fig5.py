"""Figure 5: training and test dynamics on easy and difficult subsets of real data."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt

from ..claims import Claim, verdict
from .base import EXPERIMENT_LIST, WINDOW, Figure, save, title_of
from .curves import dynamics_panel, easy_faster, simultaneous

#: the control run (difficult subset removed) must lose at least this much accuracy on
#: the difficult training examples for their improvement not to be a side effect
CONTROL_EFFECT = 0.05


def draw(arts, options, output) -> None:
    panels = arts["experiments"]
    w = options["window"]
    fig, axes = plt.subplots(len(panels), 2, figsize=(8, 3.1 * len(panels)), squeeze=False)
    for i, art in enumerate(panels):
        ds = art["dynamics"]
        for j, split in enumerate(("train", "test")):
            dynamics_panel(axes[i, j], ds, split, w)
            title = textwrap.fill(f"({chr(97 + 2 * i + j)}) {split}: {title_of(ds)}", 60)
            axes[i, j].set_title(title, fontsize=7)
    fig.suptitle(
        "Figure 5: dynamics on easy and difficult subsets; dotted: trained without "
        f"the difficult subset (control); sliding window {w}",
        fontsize=9,
    )
    fig.tight_layout()
    save(fig, output)


def easy_higher_test(ds) -> Claim:
    final = ds["accuracy"].sel(run="all", split="test").isel(epoch=-1)
    easy, difficult = float(final.sel(subset="easy")), float(final.sel(subset="difficult"))
    return Claim(
        figure="fig5",
        key="easy_higher_test_accuracy",
        statement="on the test split too, easy examples reach a higher accuracy than "
        "difficult ones",
        verdict=verdict(easy > difficult),
        evidence=f"final test accuracy easy {easy:.3f}, difficult {difficult:.3f}",
        experiment=ds.attrs.get("experiment", ""),
        values={"easy": easy, "difficult": difficult},
    )


def control_effect(ds) -> Claim:
    name = ds.attrs.get("experiment", "")
    if "without_difficult" not in ds["run"].values:
        return Claim(
            figure="fig5",
            key="control_without_difficult",
            statement="removing the difficult subset from training lowers the difficult "
            "examples' accuracy (their improvement is not a side effect of the easy ones)",
            verdict=verdict(None),
            evidence="no control run (set control: true on the experiment)",
            experiment=name,
        )
    final = ds["accuracy"].isel(epoch=-1)
    train_all = float(final.sel(run="all", split="train", subset="difficult"))
    train_ctrl = float(final.sel(run="without_difficult", split="train", subset="difficult"))
    test_all = float(final.sel(run="all", split="test", subset="difficult"))
    test_ctrl = float(final.sel(run="without_difficult", split="test", subset="difficult"))
    effect = train_all - train_ctrl
    return Claim(
        figure="fig5",
        key="control_without_difficult",
        statement="removing the difficult subset from training lowers the difficult "
        f"examples' accuracy by ≥ {CONTROL_EFFECT} (their improvement is not a side effect "
        "of the easy ones)",
        verdict=verdict(effect >= CONTROL_EFFECT),
        evidence=f"difficult training examples: {train_all:.3f} trained on, {train_ctrl:.3f} "
        f"removed ({-effect:+.3f}); difficult test examples: {test_all:.3f} vs {test_ctrl:.3f} "
        f"({test_ctrl - test_all:+.3f})",
        experiment=name,
        values={
            "train_all": train_all,
            "train_control": train_ctrl,
            "test_all": test_all,
            "test_control": test_ctrl,
        },
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


FIGURE = Figure(
    name="fig5",
    title="Dynamics on real data",
    caption="Training and test accuracy of the easy, difficult and full subsets of real "
    "data; dotted lines: the control run trained without the difficult subset.",
    options={"experiments": EXPERIMENT_LIST, "window": WINDOW},
    experiments={"experiments": ("dynamics",)},
    draw=draw,
    claims=claims,
)
