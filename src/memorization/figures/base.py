"""What every figure module shares: the :class:`Figure` record, loading, drawing helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..artifacts import atomic_write, config_of, open_artifact  # noqa: E402
from ..experiment import describe  # noqa: E402
from ..paths import ARTIFACT_KINDS, Paths  # noqa: E402

__all__ = [
    "COLORS",
    "Figure",
    "epoch_axis",
    "load_inputs",
    "run_figure",
    "save",
    "smooth",
    "title_of",
]

plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "pdf.fonttype": 42})

COLORS = {"easy": "tab:blue", "difficult": "tab:red", "full": "black", "test": "tab:green"}

#: the option every figure with curves takes
WINDOW = {"type": "integer", "minimum": 1, "default": 1, "description": "sliding-window width"}
EXPERIMENT = {"type": "string", "description": "experiment drawn"}
EXPERIMENT_LIST = {
    "type": "array",
    "items": {"type": "string"},
    "minItems": 1,
    "description": "experiments drawn, one panel (row) each",
}


@dataclass(frozen=True)
class Figure:
    """A figure of the paper: options, inputs, drawing and claims.

    ``experiments`` maps each option that names an experiment (a string) or a list
    of experiments to the artifacts (:data:`memorization.paths.PATTERNS` keys) the
    figure reads from each. ``draw(artifacts, options, output)`` and
    ``claims(artifacts, options)`` get the loaded artifacts as
    ``artifacts[option][artifact]`` (a Dataset, or a list of them for the sweep), or
    for a list option a list of such mappings, one per experiment.
    """

    name: str
    title: str
    caption: str
    options: Mapping[str, dict]
    experiments: Mapping[str, tuple[str, ...]]
    draw: Callable
    claims: Callable
    required: tuple[str, ...] = field(default=())
    #: when set, the figure draws these run-wide artifacts (e.g. ``validation``) instead
    #: of the experiments' own; ``experiments`` then says what those are made from
    reads: tuple[str, ...] = field(default=())

    def schema(self) -> dict:
        """JSON schema of this figure's options (unknown options are refused)."""
        return {
            "type": "object",
            "properties": dict(self.options),
            "required": list(self.required or self.experiments),
            "additionalProperties": False,
        }

    def named_experiments(self, options: Mapping) -> list[str]:
        names: list[str] = []
        for key in self.experiments:
            value = options.get(key)
            if isinstance(value, str):
                names.append(value)
            elif isinstance(value, list):
                names.extend(v for v in value if isinstance(v, str))
        return names

    def needs(self, options: Mapping) -> list[tuple[str, str, str]]:
        """(option, experiment, artifact) for every artifact the figure reads."""
        out = []
        for key, artifacts in self.experiments.items():
            value = options.get(key)
            names = [value] if isinstance(value, str) else list(value or [])
            out.extend((key, name, a) for name in names for a in artifacts)
        return out

    def inputs(self, options: Mapping, paths: Paths) -> dict[str, str | list[str]]:
        """Snakemake named inputs: ``<option>__<artifact>`` -> path(s)."""
        if self.reads:
            return {artifact: paths.of(artifact) for artifact in self.reads}
        out: dict[str, str | list[str]] = {}
        for key, artifacts in self.experiments.items():
            value = options[key]
            for artifact in artifacts:
                name = f"{key}__{artifact}"
                if isinstance(value, str):
                    out[name] = paths.of(artifact, value)
                else:
                    found = [paths.of(artifact, v) for v in value]
                    out[name] = [p for item in found for p in _as_list(item)]
        return out


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _load(artifact: str, path):
    """Open an artifact; scores with replicates are seen as one run (their mean scores,
    replicate 0's predictions, the mean per-epoch accuracies)."""
    from ..replicates import first_replicate

    kind = ARTIFACT_KINDS[artifact]
    if not isinstance(path, str):
        return [_load(artifact, p) for p in path]
    ds = open_artifact(path, kind)
    return first_replicate(ds) if kind == "scores" else ds


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


def run_figure(name: str, inputs: Mapping, options: Mapping, output, claims_output=None):
    """Draw figure ``name`` from its input paths; write its claims as JSON if asked."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from . import figure

    fig = figure(name)
    options = {k: v.get("default") for k, v in fig.options.items() if "default" in v} | dict(
        options
    )
    arts = load_inputs(fig, options, inputs)
    fig.draw(arts, options, output)
    if claims_output is not None:
        claims = [asdict(c) for c in fig.claims(arts, options)]
        text = json.dumps(claims, indent=1, allow_nan=False)
        atomic_write(claims_output, lambda tmp: Path(tmp).write_text(text))


# --- drawing helpers ---------------------------------------------------------------------


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


def epoch_axis(ax) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save(fig, output: str | os.PathLike) -> None:
    try:
        atomic_write(output, lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight"))
    finally:
        plt.close(fig)


def title_of(ds, with_study: bool = True, labels: bool = True) -> str:
    """``<experiment>: <dataset, model, labels>[, lr L, E epochs]`` from provenance."""
    cfg = config_of(ds)
    text = f"{ds.attrs.get('experiment', '?')}: {describe(cfg, labels)}"
    study = cfg.get("study") if with_study else None
    optim = study or cfg
    if with_study and "lr" in optim:
        text += f", lr {optim['lr']:g}, {optim['epochs']} epochs"
    return text
