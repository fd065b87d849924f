"""Every stage of the workflow, one record each: the one vocabulary of the pipeline.

A stage's name is its rule's name, the kind recorded in its artifact, and the name of
its log and benchmark files. Its record says where its artifact lies (``path``, under
the config's results folder, with Snakemake wildcards), what decides it (``slice``:
the typed config slice, built from an experiment and the wildcards), what it holds
(``schema``), which function makes it (``run``), whether it trains (and so holds a GPU,
checkpoints and gets cluster resources from ``passes``, its cost in passes over
examples) and what an experiment must define for it (``needs``). The report's stages
(a figure, the claims table, an experiment's overview page) are named by their dotted path
(:class:`Named`) and imported when a job runs one: the report layer imports the workflow,
never the reverse. Every other table
(paths, provenance slices, cluster resources, the config check's needs, the SLURM
profile's per-rule settings, which a test holds against this registry) derives from it.

Adding a stage: its function, schema and slice builder in a module of
:mod:`memorization.workflow.stages`, its record here, its rule in ``rules/``, and the
figure or table that shows it (ARCHITECTURE.md walks through one).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

from .artifacts import Schema
from .context import StageContext
from .resources import Pass
from .slices import OptionsSlice, Slice
from .specs import Experiment
from .stages import data, estimates, oob, scores, studies, trust

__all__ = ["STAGES", "Named", "Paths", "Stage", "stage"]

#: the module of the report layer's stage functions
REPORT = "memorization.report.stages"


@dataclass(frozen=True)
class Named:
    """A stage function named ``"package.module:function"``, imported when it is called:
    how the workflow runs the report's stages without importing the report."""

    path: str

    def resolve(self) -> Callable[[StageContext], None]:
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, ctx: StageContext) -> None:
        self.resolve()(ctx)


@dataclass(frozen=True)
class Stage:
    """One stage of the workflow (see the module docstring)."""

    name: str
    path: str
    run: Callable[[StageContext], None]
    doc: str
    #: experiment: one artifact per experiment (and wildcards); dataset: per dataset;
    #: run: one for the whole config (figures, tables)
    scope: str = "experiment"
    slice: Callable[..., Slice] | None = None
    schema: Schema | None = None
    trains: bool = False
    passes: Callable[[Experiment], list[Pass]] | None = None
    #: the integer wildcards of the path besides ``exp``, and the values they take
    wildcards: tuple[str, ...] = ()
    expand: Callable[[Experiment], list[dict]] | None = None
    #: experiment keys this stage's artifact needs (checked when a figure reads it)
    needs: tuple[str, ...] = ()
    #: other outputs of the rule: name -> path pattern
    outputs: Mapping[str, str] = field(default_factory=dict)

    def slice_of(self, exp: Experiment, **wildcards) -> Slice:
        """The slice deciding this stage's artifact of ``exp`` (wildcards as ints)."""
        if self.slice is None:
            raise ValueError(f"stage {self.name!r} has no experiment slice")
        return self.slice(exp, **{k: int(wildcards[k]) for k in self.wildcards})


_SUBSETS = ("subset_size",)

# fmt: off
#: stage name -> its record, in DAG order
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("dataset", "data/{dataset}.nc", data.dataset,
              "A dataset by name, as one NetCDF file (images or image files, labels, split).",
              scope="dataset", slice=data.dataset_slice, schema=data.DATASET),
        Stage("labels", "{exp}/labels.nc", data.labels,
              "The training labels, `corrupt` of them replaced by random labels.",
              slice=data.labels_slice, schema=data.LABELS),
        Stage("scores_replicate", "{exp}/replicates/scores_r{rep}.nc", scores.scores,
              "One of R > 1 independent turn-over trainings (its own seed and masks).",
              slice=scores.scores_slice, schema=scores.SCORES, trains=True,
              passes=scores.scores_passes, wildcards=("rep",),
              expand=scores.replicate_wildcards),
        Stage("scores", "{exp}/scores.nc", scores.scores,
              "Turn-over training on the training labels and every example's memorization "
              "score; with `replicates: R` > 1, the merge of the R replicates.",
              slice=scores.scores_slice, schema=scores.SCORES, trains=True,
              passes=partial(scores.scores_passes, merge=True)),
        Stage("scores_test", "{exp}/scores_test.nc", scores.scores,
              "Turn-over training on the test split, to rank the test examples.",
              slice=scores.scores_test_slice, schema=scores.SCORES, trains=True,
              passes=partial(scores.scores_passes, test=True)),
        Stage("subsets", "{exp}/subsets.nc", scores.subsets,
              "The easy and difficult subsets: the lowest and highest memorization scores.",
              slice=scores.subsets_slice, schema=scores.SUBSETS, needs=_SUBSETS),
        Stage("subsets_test", "{exp}/subsets_test.nc", scores.subsets,
              "The easy and difficult subsets of the test split.",
              slice=scores.subsets_test_slice, schema=scores.SUBSETS, needs=_SUBSETS),
        Stage("dynamics", "{exp}/dynamics.nc", studies.dynamics,
              "Plain training; accuracy on easy/difficult/full train and test examples per "
              "epoch (with `control`, also trained without the difficult subset).",
              slice=studies.dynamics_slice, schema=studies.DYNAMICS, trains=True,
              passes=studies.dynamics_passes, needs=_SUBSETS),
        Stage("gradstats", "{exp}/gradstats.nc", studies.gradstats,
              "Contribution and cosine similarity of per-example gradients in plain training.",
              slice=studies.gradstats_slice, schema=studies.GRADSTATS, trains=True,
              passes=studies.gradstats_passes, needs=_SUBSETS),
        Stage("crosstrain", "{exp}/crosstrain.nc", studies.crosstrain,
              "Train on the easy subset only and on the difficult subset only.",
              slice=studies.crosstrain_slice, schema=studies.CROSSTRAIN, trains=True,
              passes=studies.crosstrain_passes, needs=_SUBSETS),
        Stage("sweep", "{exp}/sweep/corrupt{level}.nc", studies.sweep,
              "Plain training at one corruption level of the sweep (appendix E).",
              slice=studies.sweep_slice, schema=studies.DYNAMICS, trains=True,
              passes=studies.sweep_passes, wildcards=("level",),
              expand=studies.sweep_wildcards, needs=("corruption_levels",)),
        Stage("peers", "{exp}/peers.nc", trust.peers,
              "Peer estimators (TracIn self-influence, final loss, learning speed, "
              "forgetting) from one plain run.",
              slice=scores.peers_slice, schema=trust.PEERS, trains=True,
              passes=trust.peers_passes),
        Stage("estimates", "{exp}/estimates.nc", estimates.estimates,
              "Every memorization estimate of the experiment (turn-over forms, peers, "
              "out-of-bag where asked for) with its family and cost in plain runs.",
              slice=estimates.estimates_slice, schema=estimates.ESTIMATES),
        Stage("truth_shard", "{exp}/truth/shard{shard}.nc", trust.truth_shard,
              "Models [k0, k1) of the Feldman-Zhang ground truth, trained together.",
              slice=trust.truth_shard_slice, schema=trust.TRUTH_SHARD, trains=True,
              passes=trust.truth_shard_passes, wildcards=("shard",),
              expand=trust.truth_wildcards, needs=("truth",)),
        Stage("truth", "{exp}/truth.nc", trust.truth,
              "Feldman-Zhang memorization and influence from every shard's models.",
              slice=trust.truth_slice, schema=trust.TRUTH, needs=("truth",)),
        Stage("influence", "{exp}/influence.nc", trust.influence,
              "Turn-over influence (eq. 5): the top training examples of every test example.",
              slice=trust.influence_slice, schema=trust.INFLUENCE, trains=True,
              passes=trust.influence_passes),
        Stage("oob", "{exp}/oob.nc", oob.oob,
              "Out-of-bag sub-networks: K networks on balanced halves, each example scored "
              "by those that never saw it against those that did.",
              slice=oob.oob_slice, schema=oob.OOB, trains=True, passes=oob.oob_passes),
        Stage("validation", "validation.nc", trust.validation,
              "Quality and cost of every memorization estimator (the validation figure's "
              "table).", scope="run", slice=OptionsSlice, schema=trust.VALIDATION),
        Stage("overview", "{exp}/overview.pdf", Named(f"{REPORT}:overview"),
              "One page per experiment: score histogram, sub-network accuracy, the most and "
              "least memorized examples (what a config without figures builds).",
              slice=estimates.overview_slice),
        Stage("figure", "{fig}.pdf", Named(f"{REPORT}:figure"),
              "A figure of the paper, drawn from artifacts only (never trains), and its "
              "claims.", scope="run", outputs={"claims": "claims/{fig}.json"}),
        Stage("claims", "claims.md", Named(f"{REPORT}:claims"),
              "Which of the paper's claims this run's artifacts support, with the numbers.",
              scope="run", outputs={"json": "claims.json"}),
    )
}
# fmt: on


def stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    return STAGES[name]


@dataclass(frozen=True)
class Paths:
    """Concrete paths of one workflow run: ``Paths("results").of("scores", exp="a")``."""

    results: str = "results"
    #: experiment name -> the experiment (its dataset, replicates, shards, sweep levels)
    experiments: Mapping[str, Experiment] = field(default_factory=dict)

    def pattern(self, name: str, output: str | None = None) -> str:
        """The Snakemake pattern of a stage's artifact (or of its other ``output``)."""
        record = stage(name)
        path = record.path if output is None else record.outputs[output]
        return f"{self.results}/{path}"

    def of(self, name: str, exp: str | None = None, **wildcards) -> str | list[str]:
        """The path of stage ``name``'s artifact of experiment ``exp``; for a stage with
        wildcards and none given, the list of every one of the experiment's (replicates,
        shards, sweep levels)."""
        record = stage(name)
        if record.scope == "dataset":
            return self.pattern(name).format(dataset=self.experiments[exp].dataset.name)
        if record.scope == "run":
            return self.pattern(name).format(**wildcards)
        if record.wildcards and not set(record.wildcards) <= set(wildcards):
            every = record.expand(self.experiments[exp]) if record.expand else []
            return [self.pattern(name).format(exp=exp, **w) for w in every]
        return self.pattern(name).format(exp=exp, **wildcards)
