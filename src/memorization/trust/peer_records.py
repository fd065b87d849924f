"""The peer estimators' records, one per estimator: its variable's name, how it is computed
from a plain run's records (numpy only), its long name, units and colour. The schemas,
the validation table and the workflow's parse read them without importing torch
(:mod:`.peers` records the plain runs and re-exports these names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "GRADIENT_PEER_NAMES",
    "PEER_NAMES",
    "PEERS",
    "Peer",
    "cumulative_loss",
    "forgetting_events",
    "peers_by_run",
    "peers_of_first_runs",
    "peers_recorded",
    "slow_learning",
    "tracin_self_influence",
]

_NATS = "nats"
_SQ_GRAD = "nats^2 per squared parameter unit"


@dataclass(frozen=True)
class Peer:
    """One peer estimator, the one place it is declared: its variable ``name`` (in
    ``peers.nc``, ``estimates.nc`` and the validation table), ``compute`` (its values over
    the examples from :func:`record_plain_run`'s records, oriented so that higher means
    more memorized), the variable's ``long_name`` and ``units``, and the ``color`` the
    validation figure draws it in. The PEERS schema, the validation table and figure and
    ``estimates.nc`` all derive from :data:`PEERS`."""

    name: str
    compute: Callable[[xr.Dataset], np.ndarray]
    long_name: str
    units: str = "1"
    color: str = "black"
    #: whether it reads per-example gradient norms (then it pays the gradient records);
    #: else it reads only the losses and correctness of a forward pass per epoch
    gradients: bool = False


def forgetting_events(correct: np.ndarray) -> np.ndarray:
    """Forgetting events per example from a correctness history [E, N] (bool).

    Counts t with correct[t-1] and not correct[t]; examples never correct get E.
    """
    correct = np.asarray(correct, dtype=bool)
    events = (correct[:-1] & ~correct[1:]).sum(0)
    return np.where(correct.any(0), events, correct.shape[0]).astype(np.int64)


def slow_learning(correct: np.ndarray) -> np.ndarray:
    """1 - learning speed: 1 - mean correctness over the epochs, from [E, N] bools."""
    return 1.0 - np.asarray(correct, dtype=np.float64).mean(0)


def tracin_self_influence(sq_norms: np.ndarray, lrs: np.ndarray) -> np.ndarray:
    """Σ_e lr_e · ||∇ℓ_i(θ_e)||² from squared gradient norms [E, N] and rates [E]."""
    return np.asarray(lrs, dtype=np.float64) @ np.asarray(sq_norms, dtype=np.float64)


def cumulative_loss(losses: np.ndarray) -> np.ndarray:
    """Cumulative sample loss (CSL): Σ_e ℓ_i(θ_e) from the end-of-epoch losses [E, N].

    Ravikumar et al. (ICML 2025) sum the loss of every iteration that trains on the
    example; this sums the losses recorded at the end of every epoch (eval mode), which
    the plain run keeps anyway.
    """
    return np.asarray(losses, dtype=np.float64).sum(0)


def _final_loss(records: xr.Dataset) -> np.ndarray:
    return records["loss"].values[-1].astype(np.float64)


#: every peer estimator, in the order tables and figures list them (add a record to add one)
PEERS: tuple[Peer, ...] = (
    Peer(
        "tracin_self_influence",
        lambda r: tracin_self_influence(r["grad_sq_norm"].values, r["lr"].values),
        "TracIn self-influence: sum over epochs of lr * ||grad loss||^2",
        _SQ_GRAD,
        "tab:red",
        gradients=True,
    ),
    Peer("final_loss", _final_loss, "training loss after the last epoch", _NATS, "tab:orange"),
    Peer(
        "slow_learning",
        lambda r: slow_learning(r["correct"].values),
        "1 - learning speed (mean training accuracy over the epochs)",
        "1",
        "tab:green",
    ),
    Peer(
        "forgetting_events",
        lambda r: forgetting_events(r["correct"].values),
        "forgetting events (correct -> incorrect); never learnt: number of epochs",
        "",
        "tab:brown",
    ),
    Peer(
        "cumulative_loss",
        lambda r: cumulative_loss(r["loss"].values),
        "cumulative sample loss (CSL): sum over epochs of the end-of-epoch training loss",
        _NATS,
        "gold",
    ),
)

#: the peers' names (their variables in peers.nc and estimates.nc), each higher = more memorized
PEER_NAMES = tuple(p.name for p in PEERS)

#: the peers that read per-example gradient norms (absent with ``peer_gradients: false``)
GRADIENT_PEER_NAMES = tuple(p.name for p in PEERS if p.gradients)


def peers_recorded(gradients: bool = True) -> tuple[Peer, ...]:
    """The peers a plain run's records yield: every one of :data:`PEERS`, or without the
    per-example gradient records (``gradients`` False) those that read only the losses
    and correctness."""
    return PEERS if gradients else tuple(p for p in PEERS if not p.gradients)


def peers_by_run(peers: xr.Dataset) -> dict[str, np.ndarray]:
    """Every peer a peers artifact holds, per plain run ([runs, examples]): recomputed run
    by run from the per-run records (``loss``, ``correct``, ``grad_sq_norm`` over ``run``),
    which the artifact averages; a single-run artifact (no ``run`` dimension) holds its
    one run's values."""
    names = [p for p in PEERS if p.name in peers]
    if "run" not in peers.dims:
        return {p.name: peers[p.name].values.astype(np.float64)[None] for p in names}
    runs = [peers.isel(run=k) for k in range(peers.sizes["run"])]
    return {
        p.name: np.stack([np.asarray(p.compute(r), dtype=np.float64) for r in runs]) for p in names
    }


def peers_of_first_runs(
    peers: xr.Dataset, runs: int, by_run: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Every peer a peers artifact holds, averaged over its first ``runs`` plain runs only,
    as the artifact averages all of them (with all its runs: the artifact's own values).
    ``by_run``: :func:`peers_by_run` of ``peers``, where the caller has it already."""
    held = int(peers.sizes.get("run", 1))
    if not 1 <= runs <= held:
        raise ValueError(f"the peers artifact holds {held} plain run(s), not {runs}")
    by_run = peers_by_run(peers) if by_run is None else by_run
    return {name: values[:runs].mean(0) for name, values in by_run.items()}
