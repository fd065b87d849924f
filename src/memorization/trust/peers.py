"""Peer estimators of memorization from one plain training run.

The experiment's model is trained once, plainly (no turn-over masks), with
:func:`memorization.method.training.fit`. At the end of every epoch (a checkpoint, as
in the TracIn paper) the model is evaluated, in eval mode, on every training
example: its loss, whether it is classified correctly, and the squared norm of
its loss gradient ``||∇_θ ℓ_i||²`` over all trainable parameters, exact and
without materialising per-example gradients (the gradient-statistics fast path,
:func:`memorization.studies.per_example.batch_statistics`). From these records, every
estimator is oriented so that **higher means more memorized**:

- ``tracin_self_influence``: TracIn self-influence (Pruthi et al. 2020),
  ``Σ_e lr_e ||∇ℓ_i(θ_e)||²`` over the checkpoints ``θ_e`` after epochs
  ``e = 1..E``, ``lr_e`` the learning rate of epoch ``e``;
- ``final_loss``: the training loss of the example after the last epoch;
- ``slow_learning``: 1 - learning speed, the learning speed being the mean
  training accuracy of the example over the E checkpoints (Jiang et al. 2021's
  cheap proxy of the C-score, which is high for easy examples);
- ``forgetting_events``: forgetting events (Toneva et al. 2019), the number of
  transitions from correct to incorrect between consecutive checkpoints; an
  example that is never classified correctly at any checkpoint ("never
  learnt", ranked above every forgotten one by Toneva et al.) gets ``E``, more
  than any learnt example can have (at most ``E // 2``);
- ``cumulative_loss``: cumulative sample loss (CSL; Ravikumar et al., ICML 2025), the
  sum of the example's training loss over the run. Ravikumar et al. sum the loss of every
  iteration in which the example is trained on; here it is the sum of the **end-of-epoch**
  losses ``Σ_e ℓ_i(θ_e)`` (eval mode, the same records as ``final_loss``), which costs
  nothing beyond the records already kept.

Toneva et al. record correctness at every mini-batch presentation; here it is
recorded at the end-of-epoch checkpoints, on all training examples at once.

Without gradients (``gradients=False``, the experiment option ``peer_gradients: false``)
a checkpoint records only the losses and correctness, one forward pass over the training
set (no backward pass), and the peers are those that read nothing else: every peer but
TracIn self-influence (:data:`GRADIENT_PEER_NAMES`), with the same values as with the
gradient records (same seeds, same training).

Cost: recording a checkpoint (one forward/backward over the training set with the
per-example statistics, ``batch_size`` 256) took about 2 training epochs of CPU time
on the MLP-4096 (mnist5k, one thread), so a recorded run costs about 3 plain runs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from ..data.tensors import TensorSplit
from ..infra.clock import WALL_CLOCK, clock_kind, compute_clock
from ..method.masks import splitmix64
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec, epoch_lr
from ..method.training import fit
from ..studies.per_example import batch_statistics
from .peer_records import (
    GRADIENT_PEER_NAMES,
    PEER_NAMES,
    PEERS,
    Peer,
    cumulative_loss,
    forgetting_events,
    peers_of_first_runs,
    peers_recorded,
    slow_learning,
    tracin_self_influence,
)

__all__ = [
    "GRADIENT_PEER_NAMES",
    "PEER_NAMES",
    "PEERS",
    "Peer",
    "average_peers",
    "checkpoint_records",
    "cumulative_loss",
    "estimators_from_records",
    "forgetting_events",
    "peer_estimates",
    "peer_seeds",
    "peers_of_first_runs",
    "peers_over_runs",
    "peers_recorded",
    "record_plain_run",
    "slow_learning",
    "tracin_self_influence",
]

log = logging.getLogger(__name__)

#: examples per batch of a checkpoint record (an evaluation batch: the records do not
#: depend on it; not the training batch of the plain run)
RECORD_BATCH = 256


def checkpoint_records(
    model: nn.Module,
    split: TensorSplit,
    method: str = "auto",
    batch_size: int = RECORD_BATCH,
    gradients: bool = True,
) -> dict[str, np.ndarray]:
    """Loss, correctness and (``gradients``) exact squared gradient norm of every
    example, in eval mode; without ``gradients`` one forward pass, no backward pass.

    Leaves the model's ``.grad`` cleared and its train/eval mode as it found it.
    """
    was_training = model.training
    model.eval()
    loss, correct, sq = [], [], []
    for s in range(0, len(split), batch_size):
        x, y = split.x[s : s + batch_size], split.y[s : s + batch_size]
        with torch.no_grad():
            logits = model(x)
        correct.append((logits.argmax(1) == y).cpu())
        if not gradients:
            losses = F.cross_entropy(logits, y, reduction="none")
            loss.append(losses.float().cpu())
            continue
        # (the squared norms come with the cosine statistics only)
        stats = batch_statistics(model, x, y, method, cosine=True)
        loss.append(stats.losses.float().cpu())
        sq.append(stats.sq_norms.cpu())
    if gradients:
        model.zero_grad(set_to_none=True)
    model.train(was_training)
    out = {"loss": torch.cat(loss).numpy(), "correct": torch.cat(correct).numpy()}
    if gradients:
        out["grad_sq_norm"] = torch.cat(sq).numpy()
    return out


def record_plain_run(
    model: nn.Module,
    train: TensorSplit,
    opt: OptimSpec,
    *,
    seed: int,
    method: str = "auto",
    batch_size: int = RECORD_BATCH,
    progress: bool = False,
    gradients: bool = True,
) -> xr.Dataset:
    """Train ``model`` in place with ``fit`` and record every checkpoint (epochs 1..E).

    Returns ``loss``, ``correct`` and (``gradients``) ``grad_sq_norm`` over (``epoch``,
    ``example``), ``lr`` (the learning rate of each epoch) and ``accuracy`` (training
    accuracy) per epoch; attributes ``train_seconds`` (seconds of the training alone, one
    plain run, on the compute clock :mod:`memorization.infra.clock` names in ``clock``)
    and ``record_seconds`` (of the checkpoint records).
    """
    records: list[dict[str, np.ndarray]] = []
    recording = [0.0]
    clock = compute_clock(train.x.device)

    def after_epoch(epoch: int) -> dict[str, float]:
        start = clock()
        records.append(checkpoint_records(model, train, method, batch_size, gradients))
        recording[0] += clock() - start
        return {"train_acc": float(records[-1]["correct"].mean())}

    start = clock()
    fit(model, train, opt, seed=seed, after_epoch=after_epoch, desc="plain run", progress=progress)
    total = clock() - start
    if gradients:
        loss_records = opt.epochs * forward_pass_seconds(model, train, batch_size)
    else:  # the records are the forward passes themselves
        loss_records = recording[0]
    epochs = np.arange(1, opt.epochs + 1)
    ds = xr.Dataset(
        {name: (("epoch", "example"), np.stack([r[name] for r in records])) for name in records[0]},
        coords={"epoch": epochs, "example": train.examples},
    )
    ds["lr"] = ("epoch", np.array([epoch_lr(opt, e - 1) for e in epochs]))
    ds["accuracy"] = ds["correct"].mean("example")
    # measured seconds (the compute clock): the plain training alone, and the records
    ds.attrs.update(
        clock=clock_kind(train.x.device),
        train_seconds=round(total - recording[0], 3),
        record_seconds=round(recording[0], 3),
        loss_record_seconds=round(loss_records, 3),
    )
    return ds


def forward_pass_seconds(model: nn.Module, train: TensorSplit, batch_size: int) -> float:
    """Seconds (the compute clock) of one forward pass over the training set (eval mode,
    no gradients): what recording only the losses and correctness of an epoch costs, the
    records of the peers that read no gradients. Run after the training; it changes
    nothing."""
    was_training = model.training
    model.eval()
    clock = compute_clock(train.x.device)
    start = clock()
    with torch.no_grad():
        for s in range(0, len(train.y), batch_size):
            model(train.x[s : s + batch_size])
    seconds = clock() - start
    model.train(was_training)
    return seconds


def estimators_from_records(records: xr.Dataset) -> xr.Dataset:
    """Every estimator of :data:`PEERS` from :func:`record_plain_run`'s records; from
    records without gradient norms every one but those that read them, and the attributes
    ``peer_gradients`` (0) and ``peers_without_gradients`` (the peers left out) say so."""
    ds = records.copy()
    gradients = "grad_sq_norm" in records
    present = peers_recorded(gradients)
    for peer in present:
        ds[peer.name] = ("example", np.asarray(peer.compute(records)))
    ds.attrs["estimators"] = [p.name for p in present]
    ds.attrs.update(_gradient_attrs(gradients))
    return ds


def _gradient_attrs(gradients: bool) -> dict:
    """Nothing with the gradient records (the artifact as it always was); without them,
    that they were not recorded and which peers are absent."""
    if gradients:
        return {}
    return {"peer_gradients": 0, "peers_without_gradients": list(GRADIENT_PEER_NAMES)}


def peer_estimates(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seed: int,
    *,
    method: str = "auto",
    batch_size: int = RECORD_BATCH,
    progress: bool = False,
    gradients: bool = True,
) -> xr.Dataset:
    """One plain run of the experiment's model (seeded, built plain, trained with
    ``fit``) and every peer estimator (without ``gradients``: every one that reads no
    gradient norms)."""
    net = model.build(tuple(train.x.shape[1:]), turnover=False, seed=seed).to(train.x.device)
    records = record_plain_run(
        net,
        train,
        opt,
        seed=seed,
        method=method,
        batch_size=batch_size,
        progress=progress,
        gradients=gradients,
    )
    return estimators_from_records(records)


def peer_seeds(seed: int, runs: int) -> list[int]:
    """The seeds of the peers' ``runs`` plain runs. One run: the experiment's own seed (as
    it always was). R > 1 runs: R seeds hashed from the experiment's seed with a salt of
    their own, so none is the seed of a turn-over replicate
    (:func:`memorization.trust.replicates.replicate_seed`) or, but by a 1-in-2^31 chance,
    of a ground-truth model (drawn by ``SeedSequence``)."""
    if runs < 1:
        raise ValueError(f"peer runs must be at least 1, not {runs}")
    if runs == 1:
        return [int(seed)]
    salt = np.uint64(0x9EE5)
    mixed = [splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(k) + salt)) for k in range(runs)]
    return [int(m % np.uint64(2**31 - 1)) for m in mixed]


def average_peers(runs: Sequence[xr.Dataset], seeds: Sequence[int]) -> xr.Dataset:
    """One peers dataset from R single-run ones: every estimator of :data:`PEERS` they hold
    the mean over the runs; the per-epoch records (loss, correctness, gradient norms where
    recorded, accuracy) kept per run along ``run``, with ``run_seed`` and
    ``run_train_seconds``."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    for k, run in enumerate(runs[1:], 1):
        if not np.array_equal(run["example"].values, first["example"].values):
            raise ValueError(f"peer run {k} records other examples than run 0")
    stacked = xr.concat(list(runs), dim="run", join="exact", coords="minimal")
    stacked = stacked.assign_coords(run=np.arange(len(runs)))
    names = [name for name in PEER_NAMES if name in first]
    out = stacked.drop_vars(names)
    out["lr"] = first["lr"]
    for name in names:
        out[name] = stacked[name].astype(np.float64).mean("run")
    out["run_seed"] = ("run", np.asarray(seeds, dtype=np.int64))
    out["run_train_seconds"] = ("run", [float(r.attrs.get("train_seconds", np.nan)) for r in runs])
    out.attrs = {"estimators": names, "peer_runs": len(runs)}
    out.attrs.update(_gradient_attrs("grad_sq_norm" in first))
    return out


def peers_over_runs(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seed: int,
    runs: int = 1,
    **kwargs,
) -> xr.Dataset:
    """The peer estimators averaged over ``runs`` independent plain runs (seeds
    :func:`peer_seeds`; ``kwargs`` those of :func:`peer_estimates`, ``gradients=False``
    among them); attribute ``train_seconds_per_run``: the mean measured seconds of
    one run's plain training (the checkpoint records not counted)."""
    seeds = peer_seeds(seed, runs)
    single = [peer_estimates(model, train, opt, s, **kwargs) for s in seeds]
    out = average_peers(single, seeds)
    seconds = [float(r.attrs["train_seconds"]) for r in single]
    out.attrs["clock"] = single[0].attrs.get("clock", WALL_CLOCK)
    out.attrs["train_seconds_per_run"] = round(float(np.mean(seconds)), 3)
    for key in ("record_seconds", "loss_record_seconds"):
        out.attrs[f"{key}_per_run"] = round(
            float(np.mean([float(r.attrs[key]) for r in single])), 3
        )
    return out
