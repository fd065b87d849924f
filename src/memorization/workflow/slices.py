"""What decides an artifact: a typed slice of an experiment, one class per kind of stage.

A slice holds the resolved settings a stage's artifact depends on and nothing else.
The workflow passes :meth:`Slice.params` (nested YAML-able mappings) to the rule
through Snakemake's ``params`` (so changing a setting reruns exactly the stages it
decides); the stage turns them back with :meth:`Slice.from_params`, stores them in
the artifact's provenance with their hash, and the next stage checks the hash of
every artifact it reads (:func:`memorization.workflow.artifacts.check_origin`).
Execution settings (device, threads) are never part of a slice. Fields that are
``None`` are left out of the params, so an option a stage does not use never
reruns it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..data.spec import DatasetSpec
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from .specs import GradstatsSpec, LabelSpec, TruthSpec

__all__ = [
    "DatasetSlice",
    "EstimatesSlice",
    "InfluenceSlice",
    "LabelsSlice",
    "OptionsSlice",
    "ScoresSlice",
    "Slice",
    "StudySlice",
    "SubsetsSlice",
    "TruthSlice",
]


def _to_params(value: Any) -> Any:
    if hasattr(value, "params") and callable(value.params):
        return value.params()
    if dataclasses.is_dataclass(value):
        return {f.name: _to_params(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_params(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_params(v) for k, v in value.items()}
    return value


def _from_params(kind: Any, value: Any) -> Any:
    """``value`` (params) as an instance of the annotated type ``kind``."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _from_params(options[0], value)
    if origin is tuple:
        return tuple(value)
    if isinstance(kind, type) and hasattr(kind, "from_params"):
        return kind.from_params(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{k: _from_params(hints[k], v) for k, v in value.items()})
    return value


class Slice:
    """The round trip to and from rule params, shared by every slice class."""

    def params(self) -> dict:
        return _to_params_fields(self)

    @classmethod
    def from_params(cls, params: Mapping) -> Slice:
        hints = typing.get_type_hints(cls)
        return cls(**{k: _from_params(hints[k], v) for k, v in params.items()})


def _to_params_fields(obj) -> dict:
    return {
        f.name: _to_params(getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if getattr(obj, f.name) is not None
    }


# --- the slices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSlice(Slice):
    """A prepared dataset."""

    dataset: DatasetSpec


@dataclass(frozen=True)
class LabelsSlice(Slice):
    """The training labels of an experiment."""

    dataset: DatasetSpec
    labels: LabelSpec


@dataclass(frozen=True)
class ScoresSlice(Slice):
    """A turn-over training and its scores: of the training split on its labels, or
    of the test split (``labels`` None); one replicate, or the merge of ``replicates``."""

    split: str
    dataset: DatasetSpec
    seed: int
    model: ModelSpec
    optim: OptimSpec
    score_temperature: float
    labels: LabelSpec | None = None
    replicate: int | None = None
    replicates: int | None = None


@dataclass(frozen=True)
class EstimatesSlice(Slice):
    """Every memorization estimate of an experiment (estimates.nc): its turn-over scores,
    its peers and, where the experiment asks for them, its out-of-bag options."""

    scores: ScoresSlice
    peers: StudySlice
    oob: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SubsetsSlice(Slice):
    """The easy and difficult subsets of a split's scores, or (``subsets_from``) of a
    variable of the experiment's estimates."""

    scores: ScoresSlice
    size: int
    score_form: str
    subsets_from: str | None = None
    estimates: EstimatesSlice | None = None


@dataclass(frozen=True)
class StudySlice(Slice):
    """A plain-training study: its labels, model, optimizer and what else it reads."""

    dataset: DatasetSpec
    labels: LabelSpec
    model: ModelSpec
    study: OptimSpec
    subsets: SubsetsSlice | None = None
    subsets_test: SubsetsSlice | None = None
    control: bool | None = None
    gradstats: GradstatsSpec | None = None
    #: independent trainings (seeds) of the study, for the claims' intervals (None: one)
    seeds: int | None = None
    #: the peers' runs record per-example gradient norms (None: yes, as they always did;
    #: False: losses and correctness only, ``peer_gradients: false``)
    gradients: bool | None = None


@dataclass(frozen=True)
class TruthSlice(Slice):
    """The Feldman-Zhang ground truth: one shard of its models, or all merged."""

    dataset: DatasetSpec
    labels: LabelSpec
    model: ModelSpec
    study: OptimSpec
    truth: TruthSpec
    shard: int | None = None


@dataclass(frozen=True)
class InfluenceSlice(Slice):
    """Turn-over influence pairs of the training examples on the test examples."""

    scores: ScoresSlice
    top_k: int


@dataclass(frozen=True)
class OptionsSlice(Slice):
    """A run-wide output (a figure, the validation table, the claims): its options."""

    options: Mapping[str, Any]

    def params(self) -> dict:
        return {"options": _to_params(dict(self.options))}


def summary(params: Mapping) -> dict:
    """A flat view of a slice's params for titles and tables: ``dataset`` (its name), the
    model's params (``model`` and its options), ``corrupt``/``corruption``, the training's
    ``lr``/``epochs`` (a study's, else the turn-over training's) and ``cosine_pairs``."""
    out: dict = {}

    def walk(node: Mapping) -> None:
        for key, value in node.items():
            if not isinstance(value, Mapping):
                continue
            if key == "dataset":
                out.setdefault("dataset", value.get("name"))
            elif key == "model":
                for k, v in value.items():
                    out.setdefault(k, v)
            elif key == "labels":
                out.setdefault("corrupt", value.get("corrupt"))
                out.setdefault("corruption", value.get("corruption"))
            elif key in ("study", "optim"):
                out.setdefault("lr", value.get("lr"))
                out.setdefault("epochs", value.get("epochs"))
            elif key == "gradstats":
                out.setdefault("cosine_pairs", value.get("cosine_pairs"))
            else:
                walk(value)

    walk(params)
    return out
