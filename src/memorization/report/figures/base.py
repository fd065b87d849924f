"""What every figure's drawing shares: loading its artifacts, drawing helpers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar

import numpy as np

from ...infra.files import atomic_write
from ...workflow.artifacts import config_of, open_artifact
from ...workflow.figures import Figure
from ...workflow.slices import summary
from ...workflow.specs import describe

__all__ = [
    "COLORS",
    "epoch_axis",
    "load_inputs",
    "over_seeds",
    "pyplot",
    "runs",
    "save",
    "short",
    "smooth",
    "title_of",
]

#: sizes for a figure printed at its own width (7-8 inches: a page's text width)
RC_PARAMS = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.3,
    "pdf.fonttype": 42,
}


def pyplot():
    """matplotlib's pyplot, drawing to files (Agg) at the figures' sizes.

    The figures' declarations (names, options, inputs, headings, captions,
    :mod:`memorization.workflow.figures`) are read by the Snakefile on every start;
    matplotlib is loaded only by the job that draws.
    """
    import matplotlib  # heavy: loaded by the drawing jobs only, not by the Snakefile

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: as above

    plt.rcParams.update(RC_PARAMS)
    return plt


COLORS = {"easy": "tab:blue", "difficult": "tab:red", "full": "black", "test": "tab:green"}


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _load(artifact: str, path):
    """Open an artifact; scores with replicates are seen as one run (their mean scores,
    replicate 0's predictions, the mean per-epoch accuracies)."""
    kind = artifact
    if not isinstance(path, str):
        return [_load(artifact, p) for p in path]
    ds = open_artifact(path, kind)
    if kind != "scores":
        return ds
    from ...trust.replicates import first_replicate  # heavy: torch; the metadata needs none

    return first_replicate(ds)


def load_inputs(fig: Figure, options: Mapping, inputs: Mapping[str, str | list]) -> dict:
    """Open every input artifact, arranged as ``artifacts[option][artifact]`` (or
    ``artifacts[artifact]`` for a figure that ``reads`` run-wide artifacts)."""
    if fig.reads:
        return {a: _load(a, inputs[a]) for a in fig.reads}
    arts: dict = {}
    for key, artifacts in fig.experiments.items():
        value = options[key]
        if isinstance(value, str):
            arts[key] = {a: _load(a, inputs[f"{key}__{a}"]) for a in artifacts}
        else:
            per = [{} for _ in value]
            for a in artifacts:
                paths = _as_list(inputs[f"{key}__{a}"])
                if a == "sweep":  # every experiment's levels, in order
                    chunks = _split_sweep(paths, value)
                else:
                    chunks = [[p] for p in paths]
                for i, chunk in enumerate(chunks):
                    per[i][a] = _load(a, chunk if a == "sweep" else chunk[0])
            arts[key] = per
    return arts


def _split_sweep(paths: list[str], names: list[str]) -> list[list[str]]:
    return [[p for p in paths if f"/{name}/sweep/" in p] for name in names]


# --- drawing helpers ---------------------------------------------------------------------


def runs(ds) -> list:
    """The independent trainings of a study artifact (one per seed), or the artifact."""
    if "seed" not in ds.dims:
        return [ds]
    return [ds.isel(seed=k) for k in range(ds.sizes["seed"])]


def over_seeds(values):
    """The mean over a study's seeds (the values as they are without a seed dimension)."""
    return values.mean("seed") if "seed" in getattr(values, "dims", ()) else values


def smooth(values, window: int) -> np.ndarray:
    """Centred sliding-window mean (the window shrinks at the edges); window<=1: unchanged."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or values.size == 0:
        return values
    half = window // 2
    out = np.empty_like(values)
    for i in range(values.size):
        lo, hi = max(0, i - half), min(values.size, i + half + 1)
        out[i] = values[lo:hi].mean()
    return out


def epoch_axis(ax, epochs=None) -> None:
    """An integer epoch axis ending at the last epoch (not one tick beyond)."""
    from matplotlib.ticker import MaxNLocator  # heavy: loaded by the drawing jobs only

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs is not None and len(epochs):
        ax.set_xlim(float(epochs[0]), float(epochs[-1]))


#: a line every figure drawn in this context prints under itself (which estimate drew
#: the subsets, where not the turn-over score; empty: none)
FOOTNOTE: ContextVar[str] = ContextVar("FOOTNOTE", default="")


def save(fig, output: str | os.PathLike, about=()) -> None:
    """Write the figure as PDF; what it shows (each artifact's experiment, data, model and
    training, from provenance) goes into the PDF's metadata, not into long titles."""
    described = "; ".join(dict.fromkeys(title_of(ds) for ds in about))
    metadata = {"Creator": "memorization workflow", "Subject": described} if described else {}
    if FOOTNOTE.get():
        fig.text(0.01, -0.02, FOOTNOTE.get(), fontsize=6, va="top")
    try:
        atomic_write(
            output,
            lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight", metadata=metadata),
        )
    finally:
        pyplot().close(fig)


def title_of(ds, with_study: bool = True, labels: bool = True) -> str:
    """``<experiment>: <dataset, model, labels>[, lr L, E epochs]`` from provenance."""
    cfg = summary(config_of(ds))
    text = f"{ds.attrs.get('experiment', '?')}: {describe(cfg, labels)}"
    if with_study and cfg.get("lr") is not None:
        text += f", lr {cfg['lr']:g}, {cfg['epochs']} epochs"
    return text


def short(ds) -> str:
    """The experiment's name, for a panel title (the details are in the PDF's metadata)."""
    return str(ds.attrs.get("experiment", "?"))
