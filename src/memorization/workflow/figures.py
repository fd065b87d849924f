"""The figures a config can ask for: their options and the artifacts they read.

A :class:`Figure` declares what the workflow needs to know of a figure to check a config
and plan its jobs: its options (a JSON schema per option, checked with the config, so a
typo such as ``windw`` is refused), which of its options name experiments and which
artifacts it reads from each, its title and caption. The report layer draws it: the module
of :mod:`memorization.report.figures` with the figure's name defines its ``draw`` and
``claims``. The workflow never imports the report; the report reads the workflow's
artifacts and these declarations.

Adding a figure is one declaration in :data:`FIGURES` and one drawing module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ..trust.metrics import MEMORIZED, REPLICATES_COMPARED

__all__ = ["EXPERIMENT", "EXPERIMENT_LIST", "FIGURES", "WINDOW", "Figure", "figure", "figure_needs"]

#: the option every figure with curves takes
WINDOW = {"type": "integer", "minimum": 1, "default": 1, "description": "sliding-window width"}
EXPERIMENT = {"type": "string", "description": "experiment drawn"}
EXPERIMENT_LIST = {
    "type": "array",
    "items": {"type": "string"},
    "minItems": 1,
    "description": "experiments drawn, one panel (row) each",
}
EXPERIMENTS = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
    ],
    "description": "experiment(s) with truth: settings (clean labels), e.g. one per "
    "architecture, each scored against its own ground truth",
}


@dataclass(frozen=True)
class Figure:
    """A figure: its name, options and the artifacts it reads.

    ``experiments`` maps each option that names an experiment (a string) or a list
    of experiments to the artifacts (stage names of :mod:`memorization.workflow.registry`)
    the figure reads from each. Its drawing gets them loaded as
    ``artifacts[option][artifact]`` (a Dataset, or a list of them for the sweep), or for a
    list option a list of such mappings, one per experiment.
    """

    name: str
    title: str
    caption: str
    options: Mapping[str, dict]
    experiments: Mapping[str, tuple[str, ...]]
    required: tuple[str, ...] = field(default=())
    #: when set, the figure draws these run-wide artifacts (e.g. ``validation``) instead
    #: of the experiments' own; ``experiments`` then says what those are made from
    reads: tuple[str, ...] = field(default=())

    @property
    def heading(self) -> str:
        """``Figure N: title`` for the paper's figures, the title for the others."""
        number = self.name[3:] if re.fullmatch(r"fig\d+", self.name) else None
        return f"Figure {number}: {self.title}" if number else self.title

    def defaults(self) -> dict:
        """The options' defaults (an option without one has none)."""
        return {k: v["default"] for k, v in self.options.items() if "default" in v}

    def schema(self) -> dict:
        """JSON schema of this figure's options (unknown options are refused)."""
        return {
            "type": "object",
            "properties": dict(self.options),
            "required": list(self.required or self.experiments),
            "additionalProperties": False,
        }

    def needs(self, options: Mapping) -> list[tuple[str, str, str]]:
        """(option, experiment, artifact) for every artifact the figure reads."""
        out = []
        for key, artifacts in self.experiments.items():
            value = options.get(key)
            names = [value] if isinstance(value, str) else list(value or [])
            out.extend((key, name, a) for name in names for a in artifacts)
        return out

    def inputs(self, options: Mapping, paths) -> dict[str, str | list[str]]:
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


def _grid(name: str, caption: str) -> Figure:
    """Figures 7 and 8: the lowest and highest scores of each class, as images."""
    return Figure(
        name=name,
        title="Lowest and highest memorization scores",
        caption=caption,
        options={
            "experiment": EXPERIMENT,
            "per_class": {"type": "integer", "minimum": 1, "maximum": 20, "default": 4},
        },
        experiments={"experiment": ("scores", "dataset")},
    )


#: every figure, in the order they are listed
_DECLARED = (
    Figure(
        name="fig2",
        title="Memorization scores",
        caption="Histograms of memorization scores (log count axis): (a) true labels, (b) with "
        "random labels.",
        options={
            "clean": {
                **EXPERIMENT,
                "description": "experiment without random labels (panel a)",
            },
            "corrupted": {
                **EXPERIMENT,
                "description": "experiment with random labels (panel b)",
            },
            "bins": {"type": "integer", "minimum": 2, "default": 60},
        },
        experiments={"clean": ("scores",), "corrupted": ("scores",)},
    ),
    Figure(
        name="fig3",
        title="Dynamics with random labels",
        caption="Training accuracy of the full training set and of its easy and difficult "
        "subsets, and the test accuracy, with random labels in the training set (the mean over "
        "the study's seeds).",
        options={"experiment": EXPERIMENT, "window": WINDOW},
        experiments={"experiment": ("dynamics",)},
    ),
    Figure(
        name="fig4",
        title="Gradient statistics",
        caption="Mean pairwise cosine similarity of per-example gradients (eq. 3) and mean "
        "contribution (v_i·g)/‖g‖ to the mini-batch update (eq. 4), easy vs difficult examples "
        "(the mean over the study's seeds).",
        options={"experiment": EXPERIMENT, "window": WINDOW},
        experiments={"experiment": ("gradstats",)},
    ),
    Figure(
        name="fig5",
        title="Dynamics on real data",
        caption="Training and test accuracy of the easy, difficult and full subsets of real "
        "data (the mean over the study's seeds); dotted lines: the control run trained without "
        "the difficult subset.",
        options={"experiments": EXPERIMENT_LIST, "window": WINDOW},
        experiments={"experiments": ("dynamics",)},
    ),
    Figure(
        name="fig6",
        title="Cross-subset training",
        caption="Accuracy on the easy and difficult subsets when training only on (a) the easy "
        "subset, (b) the difficult subset (the mean over the study's seeds).",
        options={"experiment": EXPERIMENT, "window": WINDOW},
        experiments={"experiment": ("crosstrain",)},
    ),
    _grid(
        "fig7",
        "The lowest (top) and highest (bottom) memorization scores of each class (paper: MNIST).",
    ),
    _grid(
        "fig8",
        "The lowest (top) and highest (bottom) memorization scores of each class "
        "(paper: CIFAR-10 with VGG-11).",
    ),
    Figure(
        name="fig9",
        title="Sub-network accuracy",
        caption="Training accuracy of the muted and unmuted sub-networks after every epoch "
        "(dotted: the muted sub-networks on held-out examples).",
        options={"experiments": EXPERIMENT_LIST},
        experiments={"experiments": ("scores",)},
    ),
    Figure(
        name="fig10",
        title="Corruption sweep",
        caption="Training and test accuracy of plain training at several numbers of random "
        "labels in the training set (the test labels are untouched; the mean over the study's "
        "seeds).",
        options={"experiment": EXPERIMENT, "window": WINDOW},
        experiments={"experiment": ("sweep",)},
    ),
    # beyond the paper: the influence pairs and the validation against ground truth
    Figure(
        name="influence",
        title="Influence pairs",
        caption="Test images beside the training images whose removal (the muted sub-network) "
        "raises their loss most (turn-over influence, eq. 5).",
        options={
            "experiment": EXPERIMENT,
            "examples": {"type": "integer", "minimum": 1, "maximum": 50, "default": 8},
            "top": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        },
        experiments={"experiment": ("influence", "dataset")},
    ),
    Figure(
        name="validation",
        title="Memorization estimators against ground truth",
        caption="Quality of every memorization estimator against the Feldman-Zhang ground truth "
        "(clean data, one row per architecture) and for fitted random labels, against its "
        "measured cost in plain training runs, with 95 % intervals from resampling the examples.",
        options={
            "clean": EXPERIMENTS,
            "noisy": {
                **EXPERIMENT,
                "description": "experiment with random labels, trained to fit",
            },
            "replicates": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "minItems": 1,
                "default": list(REPLICATES_COMPARED),
            },
            "threshold": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 1,
                "default": MEMORIZED,
            },
            "variants": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "more turn-over experiments on a clean experiment's data and labels "
                "(e.g. another keep_fraction), scored against the truth of the first clean "
                "experiment of the same model (else the first clean experiment)",
            },
            "noisy_variants": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "more turn-over experiments on the noisy experiment's labels",
            },
        },
        experiments={
            "clean": ("scores", "peers", "truth", "influence", "estimates"),
            "noisy": ("scores", "peers"),
            "variants": ("scores",),
            "noisy_variants": ("scores",),
        },
        required=("clean", "noisy"),
        reads=("validation",),
    ),
)

#: figure name (the config's key under ``figures:``) -> its declaration
FIGURES: dict[str, Figure] = {fig.name: fig for fig in _DECLARED}


def figure(name: str) -> Figure:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    return FIGURES[name]


def figure_needs(figures) -> Iterator[tuple[str, Mapping, str, str, str]]:
    """(figure, its options, option, experiment, artifact) for every artifact each figure
    of a config's ``figures:`` reads; a figure the schema refuses (unknown, options not a
    mapping or of the wrong type) is skipped: the schema's errors say what is wrong."""
    for fig_name, options in (figures if isinstance(figures, Mapping) else {}).items():
        fig = FIGURES.get(fig_name)
        if fig is None or not isinstance(options, Mapping):
            continue
        try:
            needs = fig.needs(options)
        except TypeError:  # an option of the wrong type
            continue
        for option, exp_name, artifact in needs:
            yield str(fig_name), options, option, exp_name, artifact
