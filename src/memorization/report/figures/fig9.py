"""Figure 9 (appendix D): training accuracy of the muted and unmuted sub-networks."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from ..claims import Claim, verdict
from .base import EXPERIMENT_LIST, Figure, epoch_axis, save, title_of

#: "converge within the first few epochs": 95 % of the final accuracy by this share of
#: the epochs ...
CONVERGED_SHARE = 0.95
CONVERGED_BY = 0.5
#: ... "and then stabilize": at most this change over the last quarter of the epochs
STABLE = 0.03


def _convergence(acc: np.ndarray, epochs: np.ndarray) -> tuple[float, float]:
    """(first epoch at 95 % of the final accuracy, change over the last quarter)."""
    final = acc[-1]
    hit = np.flatnonzero(acc >= CONVERGED_SHARE * final)
    first = float(epochs[hit[0]]) if hit.size else float("inf")
    quarter = max(1, len(acc) // 4)
    return first, float(acc[-1] - acc[-1 - quarter]) if len(acc) > quarter else float("nan")


def draw(arts, options, output) -> None:
    panels = arts["experiments"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for i, (ax, art) in enumerate(zip(axes[0], panels, strict=True)):
        sc = art["scores"]
        acc = sc["subnet_accuracy"]
        for subnet, style in (("unmuted", "-"), ("muted", "--")):
            ax.plot(
                acc["epoch"].values,
                acc.sel(subnet=subnet).values,
                style,
                marker="o",
                ms=3,
                label=f"{subnet} sub-network",
            )
        if "heldout_accuracy" in sc:
            held = sc["heldout_accuracy"].sel(subnet="muted")
            ax.plot(held["epoch"].values, held.values, ":", color="grey", label="held-out")
        epoch_axis(ax)
        ax.set_ylabel("training accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"({chr(97 + i)}) " + textwrap.fill(title_of(sc), 52), fontsize=7)
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle("Figure 9: training accuracy of the muted and unmuted sub-networks", fontsize=9)
    fig.tight_layout()
    save(fig, output)


def claims(arts, options) -> list[Claim]:
    out = []
    for art in arts["experiments"]:
        sc = art["scores"]
        epochs = sc["epoch"].values
        parts, values, holds = [], {}, True
        for subnet in ("unmuted", "muted"):
            acc = sc["subnet_accuracy"].sel(subnet=subnet).values
            first, change = _convergence(acc, epochs)
            values[f"{subnet}_final"] = acc[-1]
            values[f"{subnet}_converged_epoch"] = first
            values[f"{subnet}_last_quarter_change"] = change
            parts.append(
                f"{subnet} final {acc[-1]:.3f}, at 95 % of it from epoch "
                f"{'never' if not np.isfinite(first) else int(first)}, last-quarter change "
                f"{change:+.3f}"
            )
            holds &= first <= max(1, CONVERGED_BY * epochs[-1]) and abs(change) <= STABLE
        gap = values["unmuted_final"] - values["muted_final"]
        values["gap"] = gap
        parts.append(f"gap at the last epoch {gap:.3f}")
        out.append(
            Claim(
                figure="fig9",
                key="subnetworks_converge_early",
                statement="both sub-networks converge within the first epochs (95 % of the "
                f"final accuracy by {int(100 * CONVERGED_BY)} % of training) and then "
                f"stabilize (change ≤ {STABLE} over the last quarter)",
                verdict=verdict(len(epochs) >= 4 and holds if len(epochs) >= 4 else None),
                evidence="; ".join(parts),
                experiment=sc.attrs.get("experiment", ""),
                values=values,
            )
        )
    return out


FIGURE = Figure(
    name="fig9",
    title="Sub-network accuracy",
    caption="Training accuracy of the muted and unmuted sub-networks after every epoch "
    "(dotted: the muted sub-networks on held-out examples).",
    options={"experiments": EXPERIMENT_LIST},
    experiments={"experiments": ("scores",)},
    draw=draw,
    claims=claims,
)
