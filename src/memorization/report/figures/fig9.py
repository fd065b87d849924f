"""Figure 9 (appendix D): training accuracy of the muted and unmuted sub-networks."""

from __future__ import annotations

import numpy as np

from ..claims import Claim, judged, unmeasured
from ..uncertainty import binomial, generator
from .base import epoch_axis, pyplot, save, short

#: "converge within the first few epochs": the accuracy at half of the training is at
#: least this share of the final accuracy ...
CONVERGED_SHARE = 0.95
#: ... "and then stabilize": it changes by at most this much over the last quarter
STABLE = 0.03
SUBNETS = ("unmuted", "muted")
STATEMENTS = {
    "subnetworks_converge_early": "both sub-networks converge within the first epochs (at half "
    f"of the training they reach ≥ {CONVERGED_SHARE} of their final accuracy)",
    "subnetworks_stable": f"then both stabilize (their accuracy changes by ≤ {STABLE} over the "
    "last quarter of the training)",
}


def draw(arts, options, output) -> None:
    plt = pyplot()  # matplotlib: loaded by the drawing job, not the Snakefile
    panels = arts["experiments"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 2.8), squeeze=False)
    for i, (ax, art) in enumerate(zip(axes[0], panels, strict=True)):
        sc = art["scores"]
        acc = sc["subnet_accuracy"]
        epochs = acc["epoch"].values
        for subnet, style in (("unmuted", "-"), ("muted", "--")):
            ax.plot(
                epochs, acc.sel(subnet=subnet).values, style, marker="o", ms=2.5, label=f"{subnet}"
            )
        if "heldout_accuracy" in sc:
            held = sc["heldout_accuracy"].sel(subnet="muted")
            ax.plot(held["epoch"].values, held.values, ":", color="grey", label="held-out")
        epoch_axis(ax, epochs)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"({chr(97 + i)}) {short(sc)}")
        ax.legend(frameon=True, framealpha=0.9, loc="lower right")
    axes[0, 0].set_ylabel("training accuracy")
    fig.tight_layout()
    save(fig, output, about=[art["scores"] for art in panels])


def _half(acc: np.ndarray) -> np.ndarray:
    """Accuracy at half of the training over the final accuracy (along the last axis)."""
    n = acc.shape[-1]
    return acc[..., max(0, (n - 1) // 2)] / acc[..., -1]


def _change(acc: np.ndarray) -> np.ndarray:
    """|Change of the accuracy over the last quarter of the epochs| (along the last axis)."""
    quarter = max(1, acc.shape[-1] // 4)
    return np.abs(acc[..., -1] - acc[..., -1 - quarter])


def _claims(sc) -> list[Claim]:
    name = sc.attrs.get("experiment", "")
    n = int(sc.sizes["example"])
    acc = {s: sc["subnet_accuracy"].sel(subnet=s).values for s in SUBNETS}
    draws = {s: binomial(acc[s], n, generator("fig9", name, s)) for s in SUBNETS}
    evidence = (
        "; ".join(
            f"{s} final {acc[s][-1]:.3f}, at half of training {acc[s][(len(acc[s]) - 1) // 2]:.3f} "
            f"({_half(acc[s]):.3f} of final), last-quarter change {_change(acc[s]):+.3f}"
            for s in SUBNETS
        )
        + f"; gap at the last epoch {acc['unmuted'][-1] - acc['muted'][-1]:.3f}"
    )
    return [
        judged(
            "fig9",
            "subnetworks_converge_early",
            STATEMENTS["subnetworks_converge_early"],
            np.minimum(*(_half(draws[s]) for s in SUBNETS)),
            float(min(_half(acc[s]) for s in SUBNETS)),
            CONVERGED_SHARE,
            evidence,
            experiment=name,
        ),
        judged(
            "fig9",
            "subnetworks_stable",
            STATEMENTS["subnetworks_stable"],
            np.maximum(*(_change(draws[s]) for s in SUBNETS)),
            float(max(_change(acc[s]) for s in SUBNETS)),
            STABLE,
            evidence,
            above=False,
            experiment=name,
        ),
    ]


def claims(arts, options) -> list[Claim]:
    out = []
    for art in arts["experiments"]:
        sc = art["scores"]
        if sc.sizes["epoch"] >= 4:
            out += _claims(sc)
            continue
        why = f"{sc.sizes['epoch']} epochs: too few to tell converging from stable"
        name = sc.attrs.get("experiment", "")
        out += [unmeasured("fig9", key, text, why, name) for key, text in STATEMENTS.items()]
    return out
