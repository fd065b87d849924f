"""The ``estimates`` stage: every memorization estimate of an experiment in one file.

``<exp>/estimates.nc`` holds one variable per estimator and form over ``example``, each
oriented so that **higher means more memorized**, with the attributes

- ``long_name`` (and ``units``): what it is;
- ``family``: ``turnover`` (the turn-over scores, ``turnover_<form>``, averaged over the
  experiment's ``replicates``), ``peer`` (the peer estimators of
  :data:`memorization.trust.peers.PEERS`, averaged over its ``peer_runs``) or the family
  an out-of-bag artifact names (every variable of ``oob.nc`` with a ``family``); with
  ``peer_gradients: false`` the peers that read gradient norms (TracIn) are absent;
- ``cost_runs``: its training compute in plain runs of the experiment's own model;
- ``cost_basis``: ``training_seconds`` (the measured seconds of the artifact's
  training, its per-epoch scoring or records included, over the measured seconds of one
  plain training, which the peers artifact records; on both sides the job's set-up --
  loading the data, building the model, the zero-gradient check, writing -- is not
  counted; both timed on the compute clock of :mod:`memorization.infra.clock`, a CPU
  job's CPU seconds, so that jobs sharing cores still measure their compute) or
  ``operations`` (where a measured side is missing, or the two sides were timed on
  different clocks: the forward-pass equivalents of the stage's passes,
  :mod:`memorization.workflow.resources`, over one plain run's).

It trains nothing: it reads ``scores.nc``, ``peers.nc`` and, where the experiment asks for
the out-of-bag estimator, ``oob.nc``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...infra.clock import WALL_CLOCK
from ...method.forms import SCORE_FORMS
from ...trust.oob_spec import FORMS as OOB_FORMS
from ...trust.peer_records import PEERS, peers_recorded
from ..artifacts import Schema
from ..context import StageContext
from ..resources import SCORE, TRAIN
from ..slices import Slice
from ..specs import Experiment
from .scores import estimates_slice, oob_options
from .trust import peer_record_cost

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "ESTIMATES",
    "OOB_NAMES",
    "SourceSlice",
    "collect_estimates",
    "estimate_names",
    "estimates",
    "estimates_slice",
    "oob_options",
    "overview_slice",
]

log = logging.getLogger(__name__)

ESTIMATES = Schema(
    "Every memorization estimate of the experiment (higher: more memorized), with its cost",
    required={},
)

#: the turn-over score forms as estimates: ``turnover_<form>`` -> the scores' variable
TURNOVER = {f"turnover_{form}": var for form, var in SCORE_FORMS.items()}
#: the out-of-bag estimates (``oob_<form>``); the artifact may add others with a family
OOB_NAMES = tuple(f"oob_{form}" for form in OOB_FORMS)


def estimate_names(oob: bool = False, peer_gradients: bool = True) -> list[str]:
    """The variables an experiment's estimates.nc holds (``oob``: the experiment asks for
    the out-of-bag estimator, whose artifact may add variables of its own;
    ``peer_gradients`` False: no peer that reads gradient norms)."""
    peers = [p.name for p in peers_recorded(peer_gradients)]
    return [*TURNOVER, *peers, *(OOB_NAMES if oob else ())]


@dataclass(frozen=True)
class SourceSlice(Slice):
    """Which estimate drew the experiment's subsets, for the pages that say so (None: the
    turn-over score; then the params are empty, as the overview's always were)."""

    subsets_from: str | None = None


def overview_slice(exp: Experiment) -> SourceSlice:
    return SourceSlice(exp.subsets_from)


# --- costs -----------------------------------------------------------------------------------


def _turnover_operation_runs(replicates: int) -> float:
    """Turn-over: each replicate one training and a scoring pass per epoch."""
    return replicates * (TRAIN + SCORE) / TRAIN


def _peer_operation_runs(runs: int, gradients: bool = True) -> float:
    """Peers: each run one training and its records per epoch (:func:`.trust.peer_record_cost`)."""
    return runs * (TRAIN + peer_record_cost(gradients)) / TRAIN


#: what a measured cost counts, on both sides of the ratio
MEASURED = "training_seconds"


def _scores_seconds(scores: xr.Dataset) -> float:
    """The turn-over training's seconds (its scoring passes included, the job's set-up
    not; summed over the replicates): NaN for an artifact that did not record them."""
    return float(scores.attrs.get("train_seconds", np.nan))


def _peer_seconds(peers: xr.Dataset, gradients: bool = True) -> float:
    """The peer's runs' training seconds and the records it reads: the gradient records
    (TracIn), or for a peer of losses alone one forward pass per epoch where measured (an
    older artifact without it charges every peer the gradient records)."""
    runs = int(peers.attrs.get("peer_runs", 1))
    per_run = float(peers.attrs["train_seconds_per_run"])
    record = peers.attrs.get("record_seconds_per_run", 0.0)
    if not gradients:
        record = peers.attrs.get("loss_record_seconds_per_run", record)
    return runs * (per_run + float(record))


def _clock(ds: xr.Dataset) -> str:
    """The clock an artifact's seconds were measured on (older artifacts: the wall's)."""
    return str(ds.attrs.get("clock", WALL_CLOCK))


def _cost(seconds: float, plain: float | None, operations: float) -> tuple[float, str]:
    if plain and np.isfinite(seconds) and seconds > 0:
        return round(seconds / plain, 4), MEASURED
    return round(float(operations), 4), "operations"


# --- the collection ----------------------------------------------------------------------------


def _variable(values, examples, long_name, units, family, cost) -> xr.DataArray:
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    attrs = {"long_name": str(long_name), "units": str(units), "family": family}
    attrs.update(cost_runs=float(cost[0]), cost_basis=cost[1])
    return xr.DataArray(
        np.asarray(values, dtype=np.float64),
        coords={"example": examples},
        dims="example",
        attrs=attrs,
    )


def _aligned(ds: xr.Dataset, examples: np.ndarray, what: str) -> xr.Dataset:
    """``ds`` over the scores' examples, in their order; refused if it holds others."""
    own = ds["example"].values
    if len(own) != len(examples) or set(own.tolist()) != set(examples.tolist()):
        raise ValueError(f"{what} covers other examples than the turn-over scores")
    return ds if np.array_equal(own, examples) else ds.reindex(example=examples)


def collect_estimates(
    scores: xr.Dataset, peers: xr.Dataset | None = None, oob: xr.Dataset | None = None
) -> xr.Dataset:
    """Every estimate of the three artifacts over the scores' examples (see the module
    docstring), with its family and cost."""
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    examples = scores["example"].values
    plain = None
    if peers is not None and "train_seconds_per_run" in peers.attrs:
        plain = float(peers.attrs["train_seconds_per_run"]) or None

    def plain_on(ds: xr.Dataset) -> float | None:
        """The plain run's seconds where ``ds`` was timed on the same clock, else None."""
        return plain if plain and _clock(ds) == _clock(peers) else None

    reps = int(scores.attrs.get("replicates", 1))
    cost = _cost(_scores_seconds(scores), plain_on(scores), _turnover_operation_runs(reps))
    out = {}
    for name, var in TURNOVER.items():
        if var in scores:
            v = scores[var]
            out[name] = _variable(
                v.values,
                examples,
                v.attrs.get("long_name", var),
                v.attrs.get("units", "1"),
                "turnover",
                cost,
            )
            out[name].attrs["replicates"] = reps
    if peers is not None:
        peers = _aligned(peers, examples, "peers.nc")
        runs = int(peers.attrs.get("peer_runs", 1))
        for peer in PEERS:
            if peer.name in peers:
                seconds = _peer_seconds(peers, peer.gradients) if plain else np.nan
                # each peer pays the records it reads, measured or counted
                cost = _cost(seconds, plain, _peer_operation_runs(runs, peer.gradients))
                out[peer.name] = _variable(
                    peers[peer.name].values, examples, peer.long_name, peer.units, "peer", cost
                )
                out[peer.name].attrs["runs"] = runs
    if oob is not None:
        out.update(_oob_estimates(_aligned(oob, examples, "oob.nc"), examples, plain_on(oob)))
    return xr.Dataset(out, coords={"example": examples})


def _oob_estimates(oob: xr.Dataset, examples: np.ndarray, plain: float | None) -> dict:
    """Every variable of the out-of-bag artifact with a ``family``: measured from its
    ``train_seconds``, else the cost it states itself."""
    seconds = float(oob.attrs.get("train_seconds", np.nan))  # training and its records
    out = {}
    for name, v in oob.data_vars.items():
        if "family" not in v.attrs or "example" not in v.dims or v.ndim != 1:
            continue
        own = float(v.attrs.get("cost_runs", np.nan))
        cost = _cost(seconds, plain, own)
        if cost[1] == "operations":
            cost = (cost[0], str(v.attrs.get("cost_basis", "operations")))
        out[name] = _variable(
            v.values,
            examples,
            v.attrs.get("long_name", name),
            v.attrs.get("units", "1"),
            str(v.attrs["family"]),
            cost,
        )
    return out


# --- the stage ---------------------------------------------------------------------------------


def estimates(ctx: StageContext) -> None:
    """Every memorization estimate of the experiment, with its family and cost (trains
    nothing)."""
    scores = ctx.open("scores")
    peers = ctx.open("peers") if ctx.paths("peers") else None
    oob = ctx.open("oob") if ctx.paths("oob") else None
    ctx.preflight()
    out = collect_estimates(scores, peers, oob)
    for name, v in out.data_vars.items():
        log.info(
            "%-28s %-9s %.2f runs (%s)",
            name,
            v.attrs["family"],
            v.attrs["cost_runs"],
            v.attrs["cost_basis"],
        )
    basis = sorted({str(v.attrs["cost_basis"]) for v in out.data_vars.values()})
    plain = peers.attrs.get("train_seconds_per_run") if peers is not None else None
    extra = {} if plain is None else {"plain_run_seconds": float(plain)}
    ctx.write(out, ESTIMATES, cost_basis=",".join(basis), estimates=list(out.data_vars), **extra)
