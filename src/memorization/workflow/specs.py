"""The workflow config, parsed once into typed specs.

The config names datasets (optional, ``datasets:``) and experiments
(``experiments: {name: {dataset, model, ...}}``), each a flat mapping of the keys in
:data:`EXPERIMENT_OPTIONS` and its model's options. :class:`Experiment` is the
parsed experiment: a :class:`~memorization.data.spec.DatasetSpec`, a
:class:`~memorization.method.models.spec.ModelSpec`, the labels, the turn-over
training (:class:`~memorization.method.optim.OptimSpec`), the subsets and one
``OptimSpec`` per plain-training study with its overrides resolved
(``dynamics_lr``, ``crosstrain_milestones``, ...). Every default is an
:class:`~memorization.infra.options.Option` in the table that declares the key; the
JSON schema is generated from the same tables (:mod:`.schema`).

What decides each artifact is a typed slice of an experiment (:mod:`.slices`), built
by the stage's record in the registry (:mod:`.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..data.corruption import CORRUPTION_MODES
from ..data.sources import dataset_info, dataset_spec
from ..data.spec import DatasetInfo, DatasetSpec
from ..infra.options import Option, resolve
from ..method.forms import SCORE_FORMS, SHARPEN_TEMPERATURE
from ..method.models.spec import ModelSpec
from ..method.optim import OPTIONS as OPTIM_OPTIONS
from ..method.optim import OptimSpec
from ..studies.gradient_choices import COSINE_PAIRS
from ..studies.gradient_choices import METHODS as GRADSTATS_METHODS
from ..trust.oob_spec import OPTIONS as OOB_OPTIONS
from ..trust.truth_spec import TRUTH_OPTIONS

__all__ = [
    "EXPERIMENT_OPTIONS",
    "STUDIES",
    "STUDY_OVERRIDES",
    "TRUTH_OPTIONS",
    "Experiment",
    "GradstatsSpec",
    "LabelSpec",
    "TruthSpec",
    "describe",
]

#: plain-training studies; each may override the experiment's optimizer settings
STUDIES = ("dynamics", "gradstats", "crosstrain", "sweep")
#: what a study may override: ``<study>_<key>``
STUDY_OVERRIDES = ("lr", "epochs", "milestones")

_STUDY_DOCS = {
    "dynamics": "the dynamics study (figures 3 and 5)",
    "gradstats": "the gradient statistics (figure 4)",
    "crosstrain": "the cross-subset runs (figure 6)",
    "sweep": "the corruption sweep (figure 10)",
}

_INT1 = {"type": "integer", "minimum": 1}


def _study_options() -> dict[str, Option]:
    out = {}
    for study in STUDIES:
        what = _STUDY_DOCS[study]
        for key in STUDY_OVERRIDES:
            base = OPTIM_OPTIONS[key]
            out[f"{study}_{key}"] = Option(
                None, f"{key} of {what} (default: the experiment's)", base.schema
            )
    return out


#: every experiment key but the model's own options, with its default and schema
EXPERIMENT_OPTIONS: dict[str, Option] = {
    "dataset": Option(
        doc="a built-in dataset (mnist5k, digits, mnist, fashion_mnist, cifar10) or one "
        "defined under datasets:",
        schema={"type": "string"},
    ),
    "model": Option(
        doc="mlp, vgg11, cct, torchvision:NAME, timm:NAME or package.module:function",
        schema={"type": "string"},
    ),
    # --- labels
    "corrupt": Option(
        0, "number of training labels replaced by random labels", {"type": "integer", "minimum": 0}
    ),
    "corruption": Option(
        "uniform",
        "uniform: drawn from all classes (the paper); different: from the other classes",
        {"type": "string", "enum": list(CORRUPTION_MODES)},
    ),
    "seed": Option(
        doc="seed of the labels, masks, initialisation and batch order",
        schema={"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    ),
    # --- turn-over training (scores)
    **OPTIM_OPTIONS,
    "replicates": Option(
        1,
        "independent turn-over trainings (masks and seeds derived from seed), one job each, "
        "averaged in scores.nc",
        {"type": "integer", "minimum": 1, "maximum": 64},
    ),
    "score_form": Option(
        "loss",
        "the score the subsets rank by: loss difference (eq. 6), probability difference, 0/1 "
        "difference, or probability difference at softmax temperature score_temperature",
        {"type": "string", "enum": list(SCORE_FORMS)},
    ),
    "score_temperature": Option(
        SHARPEN_TEMPERATURE,
        "softmax temperature of the sharpened score form",
        {"type": "number", "exclusiveMinimum": 0},
    ),
    # --- subsets
    "subset_size": Option(None, "size of the easy and of the difficult subset", _INT1),
    "subsets_from": Option(
        None,
        "the estimate the easy and difficult subsets are drawn from: a variable of "
        "<exp>/estimates.nc (turnover_<form>, a peer such as cumulative_loss or "
        "tracin_self_influence, or an out-of-bag form such as oob_loss); every estimate is "
        "oriented so that higher means more memorized (turn-over: muted minus unmuted; "
        "peers: higher loss, self-influence, forgetting, slower learning; out-of-bag: held "
        "out minus trained on), the difficult subset the highest. Default: the turn-over "
        "score of score_form (the paper's method)",
        {"type": "string"},
    ),
    "test_subset_size": Option(
        None, "easy/difficult test subsets (default: subset_size scaled to the test split)", _INT1
    ),
    # --- plain-training studies
    **_study_options(),
    "control": Option(
        False,
        "dynamics: also train without the difficult subset (figure 5's dotted lines)",
        {"type": "boolean"},
    ),
    "probe_size": Option(
        None,
        "examples per subset for the probe cosine similarity",
        {"type": "integer", "minimum": 2},
    ),
    "cosine_pairs": Option(
        "probe",
        "cosine similarity of a fixed probe after each epoch, or of the pairs within each "
        "training batch (the paper's footnote 2)",
        {"type": "string", "enum": list(COSINE_PAIRS)},
    ),
    "gradstats_method": Option(
        "auto",
        "how per-example gradient statistics are computed (auto: hooks where they apply)",
        {"type": "string", "enum": list(GRADSTATS_METHODS)},
    ),
    "claim_seeds": Option(
        1,
        "independent trainings (seeds) of each plain-training study (dynamics, gradient "
        "statistics, cross-training, sweep): the claims' intervals cover the training's own "
        "variability, so a verdict does not flip with the seed or the machine",
        {"type": "integer", "minimum": 1, "maximum": 16},
    ),
    "corruption_levels": Option(
        None,
        "corruption sweep, figure 10: numbers of random labels",
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
    ),
    "peer_runs": Option(
        1,
        "independent plain runs the peer estimators (peers.nc) are averaged over, seeds "
        "derived from seed (one run: the experiment's own seed), to compare them with an "
        "estimator of the same cost",
        {"type": "integer", "minimum": 1, "maximum": 64},
    ),
    "peer_gradients": Option(
        True,
        "record every example's exact gradient norm after every epoch of the peers' plain "
        "runs, which TracIn self-influence needs; false: losses and correctness only (one "
        "forward pass per epoch), every peer but TracIn, far cheaper on large networks",
        {"type": "boolean"},
    ),
    # --- out-of-bag sub-networks (never part of the default target)
    **OOB_OPTIONS,
    # --- ground truth by retraining (never part of the default target)
    "truth": Option(
        None,
        "Feldman-Zhang ground truth: models retrained on random subsets (<exp>/truth.nc)",
        {"type": "object"},
    ),
}


def study_optim(study: str, optim: OptimSpec, values: Mapping, info: DatasetInfo) -> OptimSpec:
    """A plain study's optimizer: the experiment's, with the study's own ``lr``, ``epochs``
    and ``milestones`` where given. Epochs given without milestones keep the milestones at
    the same share of the training. The cross-training runs on one subset: by default it
    takes as many optimizer steps as the experiment's training (epochs and milestones
    scaled by the training split over the subset), so a 1/6 subset trains 6 times the
    epochs and its learning rate falls at the same step."""
    given = {k: values[f"{study}_{k}"] for k in STUDY_OVERRIDES}
    base = optim
    size = values.get("subset_size")
    if study == "crosstrain" and given["epochs"] is None and size:
        base = optim.scaled(info.n_train / size)
    elif given["epochs"] is not None and given["milestones"] is None:
        base = optim.scaled(given["epochs"] / optim.epochs)
    return replace(
        base,
        lr=float(given["lr"]) if given["lr"] is not None else base.lr,
        epochs=int(given["epochs"]) if given["epochs"] is not None else base.epochs,
        milestones=tuple(given["milestones"])
        if given["milestones"] is not None
        else base.milestones,
    )


@dataclass(frozen=True)
class LabelSpec:
    """The training labels: ``corrupt`` of them drawn at random (``corruption``), by ``seed``."""

    corrupt: int
    corruption: str
    seed: int


@dataclass(frozen=True)
class GradstatsSpec:
    """How the gradient statistics are taken (figure 4)."""

    probe_size: int | None
    cosine_pairs: str
    method: str


@dataclass(frozen=True)
class TruthSpec:
    """Feldman-Zhang ground truth: ``models`` retrainings on random ``fraction`` subsets
    (``design: random``) or on complementary halves (``pairs``), trained by ``shards``
    jobs; ``top_k`` influence pairs kept per test example."""

    models: int = TRUTH_OPTIONS["models"].default
    fraction: float = TRUTH_OPTIONS["fraction"].default
    shards: int = TRUTH_OPTIONS["shards"].default
    top_k: int = TRUTH_OPTIONS["top_k"].default
    design: str = TRUTH_OPTIONS["design"].default

    def params(self) -> dict:
        """The settings; ``design`` only where not the default (so the slices and hashes
        of truths drawn at random stay those they were made with)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.design == TRUTH_OPTIONS["design"].default:
            del out["design"]
        return out

    @property
    def subset_fraction(self) -> float:
        """The share of the training set each model sees (1/2 with pairs)."""
        return 0.5 if self.design == "pairs" else self.fraction

    def shard_range(self, shard: int) -> tuple[int, int]:
        """Models ``[k0, k1)`` of shard ``shard`` (as even as possible)."""
        per, extra = divmod(self.models, self.shards)
        k0 = shard * per + min(shard, extra)
        return k0, k0 + per + (shard < extra)


@dataclass(frozen=True)
class Experiment:
    """One experiment: data, labels, model, training and the studies' settings."""

    name: str
    dataset: DatasetSpec
    info: DatasetInfo
    model: ModelSpec
    labels: LabelSpec
    optim: OptimSpec
    replicates: int
    score_form: str
    score_temperature: float
    subset_size: int | None
    test_subset_size: int | None
    control: bool
    gradstats: GradstatsSpec
    claim_seeds: int
    corruption_levels: tuple[int, ...]
    truth: TruthSpec | None
    studies: Mapping[str, OptimSpec] = field(default_factory=dict)
    #: the experiment's keys as given (defaults applied), for the config check
    given: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: plain runs the peer estimators are averaged over
    peer_runs: int = 1
    #: whether the peers' runs record per-example gradient norms (TracIn needs them)
    peer_gradients: bool = True
    #: the variable of estimates.nc the subsets are drawn from (None: the turn-over score)
    subsets_from: str | None = None
    #: the keys the experiment's config sets itself (before defaults)
    set_keys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @classmethod
    def from_config(
        cls,
        name: str,
        exp: Mapping,
        datasets: Mapping | None = None,
        data_root: str | Path = "data",
        info: DatasetInfo | None = None,
    ) -> Experiment:
        """Parse a validated experiment mapping; resolve defaults and study overrides."""
        values = resolve(EXPERIMENT_OPTIONS, exp)
        spec = dataset_spec(values["dataset"], datasets)
        info = info or dataset_info(spec, data_root)
        optim = OptimSpec.from_config(values)
        studies = {s: study_optim(s, optim, values, info) for s in STUDIES}
        size, test_size = values["subset_size"], values["test_subset_size"]
        if size is not None and not test_size:
            # test subsets are as large a share of the test split as the training
            # subsets are of the training split
            test_size = max(1, round(size * info.n_test / info.n_train))
        truth = values["truth"]
        return cls(
            name=str(name),
            dataset=spec,
            info=info,
            model=ModelSpec.from_config(values["model"], exp),
            labels=LabelSpec(int(values["corrupt"]), values["corruption"], int(values["seed"])),
            optim=optim,
            replicates=int(values["replicates"]),
            score_form=values["score_form"],
            score_temperature=float(values["score_temperature"]),
            subset_size=size,
            test_subset_size=test_size,
            control=bool(values["control"]),
            gradstats=GradstatsSpec(
                values["probe_size"], values["cosine_pairs"], values["gradstats_method"]
            ),
            claim_seeds=int(values["claim_seeds"]),
            corruption_levels=tuple(values["corruption_levels"] or ()),
            truth=None if truth is None else TruthSpec(**resolve(TRUTH_OPTIONS, truth)),
            studies=studies,
            given=values,
            peer_runs=int(values["peer_runs"]),
            peer_gradients=bool(values["peer_gradients"]),
            subsets_from=values["subsets_from"],
            set_keys=frozenset(map(str, exp)),
        )

    @property
    def seed(self) -> int:
        return self.labels.seed

    def study(self, study: str) -> OptimSpec:
        """The optimizer settings of a plain-training study."""
        return self.studies[study]

    def test_optim(self) -> OptimSpec:
        """The turn-over training that scores the test split: as many optimizer steps as
        the training split's (epochs and milestones scaled by n_train / n_test), so the
        smaller split's model is trained as far."""
        return self.optim.scaled(self.info.n_train / self.info.n_test)

    def with_labels(self, corrupt: int) -> Experiment:
        """The same experiment with ``corrupt`` random labels (a corruption-sweep level)."""
        return replace(self, labels=replace(self.labels, corrupt=int(corrupt)))

    def describe(self) -> str:
        """A short description for titles: dataset, model, labels."""
        return describe(
            {
                **self.model.params(),
                "dataset": self.dataset.name,
                "corrupt": self.labels.corrupt,
                "corruption": self.labels.corruption,
            }
        )


def describe(cfg: Mapping, labels: bool = True) -> str:
    """Dataset, model and labels of a flat description, for titles and tables."""
    model = cfg.get("model", "?")
    detail = {
        "mlp": f"hidden {cfg.get('hidden')}",
        "vgg11": f"width {cfg.get('width')}"
        + (f", last {cfg['masked_layers']} masked" if cfg.get("masked_layers") else ""),
        "cct": f"depth {cfg.get('depth')}, heads {cfg.get('heads')}, embed {cfg.get('embed_dim')}",
    }.get(model)
    corrupt = int(cfg.get("corrupt", 0) or 0)
    text = f"{cfg.get('dataset', '?')}, {model}" + (f" ({detail})" if detail else "")
    if labels:
        mode = cfg.get("corruption", "uniform")
        text += f", {corrupt} random labels ({mode})" if corrupt else ", true labels"
    return text
