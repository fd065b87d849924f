"""Out-of-bag sub-networks: a leave-half-out memorization estimate with nothing shared.

K plain networks of the experiment's own architecture are trained together (one
vectorised ensemble, :mod:`memorization.trust.ensemble`), each on a balanced half of
the training set, so that every example is in exactly K/2 of them
(:func:`balanced_halves`: K/2 complementary pairs of random halves, stratified by
label). An example's memorization is a metric averaged over the networks that trained
on it minus over those that did not (the sign such that memorized examples score high):

- ``correct``: fraction correct at the end, in minus out (Feldman and Zhang's estimand
  with half subsets and K/2 models on each side);
- ``prob``: label probability at the end, in minus out;
- ``loss``: cross-entropy at the end, out minus in (nats; turn-over's muted minus
  unmuted loss);
- ``cumulative``: the same loss difference averaged over the recorded epochs of training
  (a trajectory average, as the cumulative sample loss is);
- ``cumulative_prob``: the label-probability gap averaged over the recorded epochs
  (bounded like the truth's 0/1 gap, and without the loss's unbounded tail).

An example's in- and out-networks share no parameter, no batch and no initialisation:
the out-networks never saw it. With ``shared_init`` the two networks of each
complementary pair start from the same initialisation (and batch-order seed): they still
share no data and no learnt parameter, each network's distribution is unchanged (so is
the estimand), and an example's in-network and its pair's out-network differ in their
data alone, which can only lower the variance of their difference where the start
matters (common random numbers). A design where an example is in every network (or in
none) is refused, never scored.

Variants (:class:`OOBSpec`): ``width`` trains narrow copies (the model's width option
times ``width``), ``fork`` trains a fraction of the epochs as one plain network on all
the data and branches the K networks from its state, ``record_every`` sets how often
the networks' losses are recorded (the cost of the trajectory forms).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from ..data.tensors import TensorSplit
from ..infra.clock import clock_kind, compute_clock
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from .ensemble import Ensemble, default_chunk, train_ensemble
from .oob_spec import FORMS, OPTIONS, OOBSpec, cost_runs, narrow
from .truth import memorization_estimate

__all__ = [
    "FORMS",
    "OPTIONS",
    "OOBSpec",
    "balanced_halves",
    "check_design",
    "check_pairs",
    "cost_runs",
    "forward_flops",
    "narrow",
    "network_seeds",
    "oob_forms",
    "train_oob",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- design
def balanced_halves(labels: np.ndarray, networks: int, seed: int = 0) -> np.ndarray:
    """[networks, N] bool: K/2 complementary pairs of random halves, stratified by label.

    Pair ``j`` splits every class at random into two halves (an odd class's extra
    example goes to either side by a coin), network ``2j`` takes one and ``2j + 1`` the
    other: every example is in exactly K/2 networks, each network holds about half of
    every class.
    """
    labels = np.asarray(labels)
    if networks < 2 or networks % 2:
        raise ValueError(f"oob_networks must be even and at least 2, got {networks}")
    out = np.zeros((networks, len(labels)), dtype=bool)
    classes = np.unique(labels)
    for pair in range(networks // 2):
        rng = np.random.default_rng([int(seed), pair, 11])
        side = np.zeros(len(labels), dtype=bool)
        for c in classes:
            rows = rng.permutation(np.flatnonzero(labels == c))
            half = len(rows) // 2 + (len(rows) % 2) * int(rng.integers(2))
            side[rows[:half]] = True
        out[2 * pair], out[2 * pair + 1] = side, ~side
    return out


def check_design(in_train: np.ndarray, examples: np.ndarray | None = None) -> np.ndarray:
    """``in_train`` [K, N] as bool; refuses a design where an example has no network
    that trained on it or none that left it out (it could not be scored)."""
    in_train = np.asarray(in_train, dtype=bool)
    if in_train.ndim != 2 or in_train.shape[0] < 2:
        raise ValueError(f"the design must be [networks >= 2, examples], got {in_train.shape}")
    n_in = in_train.sum(0)
    ids = np.arange(in_train.shape[1]) if examples is None else np.asarray(examples)
    for what, bad in (
        ("no network left out", n_in == len(in_train)),
        ("no network trained on", n_in == 0),
    ):
        if bad.any():
            shown = ", ".join(str(i) for i in ids[bad][:10])
            more = " ..." if bad.sum() > 10 else ""
            raise ValueError(
                f"{int(bad.sum())} examples have {what} them and cannot be scored "
                f"(examples {shown}{more}): every example needs networks on both sides"
            )
    return in_train


def network_seeds(networks: int, seed: int = 0, shared_init: bool = False) -> np.ndarray:
    """Initialisation and batch-order seeds of the K networks (a stream of their own: never
    the seeds of the ground truth's models); ``shared_init``: networks ``2j`` and
    ``2j + 1`` (a complementary pair of halves) get the same seed."""
    if shared_init:
        pairs = [
            np.random.SeedSequence([int(seed), j, 17]).generate_state(1)[0] >> 1
            for j in range(networks // 2)
        ]
        return np.repeat(np.array(pairs, dtype=np.int64), 2)
    return np.array(
        [
            np.random.SeedSequence([int(seed), k, 13]).generate_state(1)[0] >> 1
            for k in range(networks)
        ],
        dtype=np.int64,
    )


def check_pairs(in_train: np.ndarray) -> None:
    """Refuses a design whose networks ``2j`` and ``2j + 1`` are not complementary halves
    (what ``shared_init`` pairs)."""
    bad = [j for j in range(len(in_train) // 2) if (in_train[2 * j] == in_train[2 * j + 1]).any()]
    if bad:
        raise ValueError(
            f"oob_shared_init pairs networks 2j and 2j+1, which must train on complementary "
            f"halves; pairs {bad[:10]} are not"
        )


# --------------------------------------------------------------------------- width
def forward_flops(model: ModelSpec, in_shape: Sequence[int]) -> float:
    """FLOPs of one example's forward pass, counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode  # only for the cost bookkeeping

    with torch.device("meta"):
        net = model.build(tuple(in_shape), turnover=False).eval()
        x = torch.empty(1, *in_shape)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(x)
    return float(counter.get_total_flops())


# --------------------------------------------------------------------------- training
@dataclass
class _Record:
    """Every network's sums over the recorded epochs and its values at the end, [K, N]."""

    loss_sum: np.ndarray
    prob_sum: np.ndarray
    final: dict[str, np.ndarray]
    recorded: int = 0
    seconds: float = 0.0

    @classmethod
    def empty(cls, networks: int, n: int) -> _Record:
        zeros = np.zeros((networks, n))
        return cls(zeros, zeros.copy(), {})


def _recorder(record: _Record, train: TensorSplit, epochs: set[int], last: int, batch: int):
    clock = compute_clock(train.x.device)

    # batches of the training's size for vectorised convolutions (batches of 1,024 ran 2x
    # slower on a CPU); the sparse MLP path is fastest at 1,024
    def after_epoch(ens: Ensemble, k0: int, epoch: int) -> None:
        if epoch not in epochs:
            return
        start = clock()
        pred = ens.predict(train, batch_size=1024 if ens.path == "sparse_mlp" else batch)
        rows = slice(k0, k0 + len(ens))
        record.loss_sum[rows] += pred.loss
        record.prob_sum[rows] += pred.prob
        if epoch == last:
            for name in ("correct", "prob", "loss"):
                record.final.setdefault(name, np.zeros(record.loss_sum.shape))
                record.final[name][rows] = getattr(pred, name)
        record.seconds += clock() - start

    return after_epoch


def _fork_state(model, train, opt, seed, fork_epochs, path):
    """The state of one plain network trained on all the data for the fork's epochs."""
    trunk = train_ensemble(
        model, train, opt, [int(seed)], np.ones((1, len(train)), dtype=bool),
        path=path, desc="oob fork", epochs=(0, fork_epochs),
    )  # fmt: skip
    return trunk.state_dicts()[0]


def train_oob(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    spec: OOBSpec,
    *,
    seed: int = 0,
    in_train: np.ndarray | None = None,
    chunk_size: int | None = None,
    path: str = "auto",
) -> xr.Dataset:
    """Train the K networks (in chunks of ``chunk_size``) and score every example.

    ``in_train`` [K, N] replaces the drawn design (:func:`balanced_halves`; it is
    checked first, see :func:`check_design`). Returns :func:`oob_forms`'s Dataset with
    ``train_seconds`` (training and recording) and ``record_seconds`` in its attrs, on the
    compute clock its ``clock`` names (:mod:`memorization.infra.clock`).
    """
    if in_train is None:
        in_train = balanced_halves(train.y.cpu().numpy(), spec.networks, seed)
    in_train = check_design(in_train, train.examples)
    if spec.shared_init:
        check_pairs(in_train)
    k = len(in_train)
    net = narrow(model, spec.width)
    seeds = network_seeds(k, seed, spec.shared_init)
    record = _Record.empty(k, len(train))
    recorded = spec.recorded_epochs(opt.epochs)
    after = _recorder(record, train, set(recorded), opt.epochs, opt.batch_size)
    chunk = chunk_size or default_chunk(net, opt)
    clock = compute_clock(train.x.device)
    start = clock()
    fork = spec.fork_epochs(opt.epochs)
    state = _fork_state(net, train, opt, seeds[0] + 1, fork, path) if fork else None
    for k0 in range(0, k, chunk):
        k1 = min(k0 + chunk, k)
        train_ensemble(
            net, train, opt, seeds[k0:k1], in_train[k0:k1], path=path,
            desc=f"oob networks {k0}-{k1 - 1}", start=state, epochs=(fork, opt.epochs),
            after_epoch=lambda ens, epoch, k0=k0: after(ens, k0, epoch),
        )  # fmt: skip
    seconds = clock() - start
    out = oob_forms(in_train, record.final, record.loss_sum / len(recorded),
                    record.prob_sum / len(recorded), train.examples,
                    paired=spec.shared_init)  # fmt: skip
    out.attrs.update(
        clock=clock_kind(train.x.device),
        train_seconds=round(seconds, 3),
        record_seconds=round(record.seconds, 3),
        networks=k,
        recorded_epochs=len(recorded),
        fork_epochs=fork,
    )
    log.info("%d networks trained in %.1f s (recording %.1f s)", k, seconds, record.seconds)
    return out


def _paired_se(in_train: np.ndarray, metric: np.ndarray) -> np.ndarray:
    """Standard error of the mean of the within-pair differences (in minus out) of
    complementary pairs ``2j``/``2j + 1``; NaN with a single pair."""
    first_in = in_train[0::2]
    diff = np.where(first_in, metric[0::2] - metric[1::2], metric[1::2] - metric[0::2])
    pairs = len(diff)
    if pairs < 2:
        return np.full(metric.shape[1], np.nan)
    return diff.std(0, ddof=1) / np.sqrt(pairs)


def oob_forms(
    in_train: np.ndarray,
    final: Mapping[str, np.ndarray],
    mean_loss: np.ndarray,
    mean_prob: np.ndarray,
    examples: np.ndarray,
    *,
    paired: bool = False,
) -> xr.Dataset:
    """Every form of the estimate from the networks' records ([K, N] each): ``final``
    ``correct``/``prob``/``loss`` at the end, ``mean_loss``/``mean_prob`` over the
    recorded epochs. Refuses a design that leaves an example unscored. ``paired``
    (networks ``2j`` and ``2j + 1`` complementary and started alike): each form's
    standard error from the K/2 within-pair differences, which carry the correlation
    the shared start gives them."""
    in_train = check_design(in_train, examples)
    if paired:
        check_pairs(in_train)
    metrics = {  # each form's per-network metric, higher where the example is learnt
        "correct": final["correct"],
        "prob": final["prob"],
        "loss": -np.asarray(final["loss"]),
        "cumulative": -np.asarray(mean_loss),
        "cumulative_prob": mean_prob,
    }
    forms = {name: memorization_estimate(in_train, metric) for name, metric in metrics.items()}
    if paired:
        for name, metric in metrics.items():
            forms[name]["se"] = _paired_se(in_train, np.asarray(metric, dtype=np.float64))
    ds = xr.Dataset(coords={"example": np.asarray(examples)})
    for name, est in forms.items():
        ds[f"oob_{name}"] = ("example", est["memorization"])
        ds[f"oob_{name}_se"] = ("example", est["se"])
    ds["in_train"] = (("network", "example"), in_train)
    ds["n_in"] = ("example", forms["correct"]["n_in"].astype(np.int64))
    ds["n_out"] = ("example", forms["correct"]["n_out"].astype(np.int64))
    if not all(np.isfinite(ds[f"oob_{n}"].values).all() for n in FORMS):
        raise FloatingPointError("an out-of-bag form is not finite: the training diverged")
    return ds
