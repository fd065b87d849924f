"""Gradient statistics during plain training (figure 4): contribution (eq. 4) and
cosine similarity (eq. 3) of the easy, difficult and full examples per epoch.

The training is exactly the ``all`` run of
:func:`memorization.studies.dynamics.training_dynamics` (same seed, same batches); the
contributions come from the training steps themselves (:mod:`.gradstats` computes
them exactly without materialising per-example gradients).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr

from ..data.tensors import TensorSplit
from ..method.checkpoint import Checkpoint, Records
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from ..method.precision import autocast_forward
from ..method.training import fit
from .gradient_choices import COSINE_PAIRS
from .per_example import contributions, cosine_similarity, resolve_method
from .plain import SUBSETS, members, plain_model

__all__ = ["COSINE_PAIRS", "gradient_statistics"]

log = logging.getLogger(__name__)


def _probes(rows: Mapping[str, np.ndarray], probe_size: int, seed: int) -> dict[str, np.ndarray]:
    """``probe_size`` examples of each subset, drawn once with the seed."""
    rng = np.random.default_rng([seed, 0xC05])
    return {
        s: np.sort(rng.choice(np.flatnonzero(m), size=min(probe_size, int(m.sum())), replace=False))
        for s, m in rows.items()
    }


class _EpochSums:
    """Within-epoch sums of the contributions and of the within-batch pairwise cosines."""

    def __init__(self) -> None:
        self.epoch_sum = {s: 0.0 for s in SUBSETS}
        self.epoch_count = {s: 0 for s in SUBSETS}
        self.pair_sum = {s: 0.0 for s in SUBSETS}  # sum of pairwise cosines within batches
        self.pair_count = {s: 0 for s in SUBSETS}

    def records(self) -> dict:
        return dict(vars(self))

    def contribution(self, s: str) -> float:
        value = self.epoch_sum[s] / max(self.epoch_count[s], 1)
        self.epoch_sum[s], self.epoch_count[s] = 0.0, 0
        return value

    def pair_cosine(self, s: str) -> float:
        value = self.pair_sum[s] / self.pair_count[s] if self.pair_count[s] else np.nan
        self.pair_sum[s], self.pair_count[s] = 0.0, 0
        return value


class _Recorder:
    """What the training steps and the end of every epoch record (see
    :func:`gradient_statistics`)."""

    def __init__(self, net, train, rows, probes, epochs, cosine_pairs, method) -> None:
        self.net, self.train, self.probes = net, train, probes
        self.cosine_pairs, self.method = cosine_pairs, method
        self.member = {s: torch.from_numpy(m).to(train.x.device) for s, m in rows.items()}
        self.sums = _EpochSums()
        self.contribution = np.full((epochs, len(SUBSETS)), np.nan)
        self.cosine = np.full((epochs, len(SUBSETS)), np.nan)

    def records(self) -> Records:
        # the within-epoch sums too: a signal saves mid-epoch
        return Records(contribution=self.contribution, cosine=self.cosine, **self.sums.records())

    def step(self, x, y, batch_rows):
        """A training step that also records the contributions (and the batch's pairs)."""
        self.net.train()
        if self.cosine_pairs == "batch":  # on the parameters this batch's gradient is taken at
            for s in SUBSETS:
                sel = self.member[s][batch_rows]
                n = int(sel.sum())
                if n >= 2:
                    mean = cosine_similarity(
                        self.net, x[sel], y[sel], method=self.method, chunk_size=256
                    )
                    self.sums.pair_sum[s] += mean * n * (n - 1)
                    self.sums.pair_count[s] += n * (n - 1)
        loss, contrib = contributions(self.net, x, y, method=self.method)
        contrib = contrib.detach()
        for s in SUBSETS:
            sel = self.member[s][batch_rows]
            self.sums.epoch_sum[s] += float(contrib[sel].double().sum())
            self.sums.epoch_count[s] += int(sel.sum())
        return loss

    def after_epoch(self, epoch: int) -> dict[str, float]:
        self.net.eval()
        for k, s in enumerate(SUBSETS):
            self.contribution[epoch - 1, k] = self.sums.contribution(s)
            if self.cosine_pairs == "batch":
                self.cosine[epoch - 1, k] = self.sums.pair_cosine(s)
                continue
            probe = torch.from_numpy(self.probes[s]).to(self.train.x.device)
            self.cosine[epoch - 1, k] = cosine_similarity(
                self.net,
                self.train.x[probe],
                self.train.y[probe],
                method=self.method,
                chunk_size=256,
            )
        return {f"cos_{s}": self.cosine[epoch - 1, k] for k, s in enumerate(SUBSETS)}


def _arithmetic(net, method: str, precision: str) -> tuple[str, str]:
    """(method, precision) of the statistics. The hooks method reads activations and output
    gradients of one dtype, so under a mixed precision it runs in fp32 (exact, and on the
    paper's MLP about 80x faster than the per-example method in bf16); the per-example
    (func) method runs in the training's precision. ``"auto"`` resolved, as the statistics
    would resolve it."""
    resolved = resolve_method(net, method)
    if precision == "fp32" or resolved == "func":
        return resolved, precision
    log.info(
        "gradient statistics: the %s method computes in fp32 (precision %s)", resolved, precision
    )
    return resolved, "fp32"


def gradient_statistics(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seed: int,
    train_subsets: Mapping[str, np.ndarray],
    probe_size: int | None = None,
    *,
    cosine_pairs: str = "probe",
    method: str = "auto",
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Contribution (eq. 4) and cosine similarity (eq. 3) per epoch and subset.

    The cosine similarity is taken over one of two pair sets (``cosine_pairs``):

    - ``probe``: fixed probe samples (``probe_size`` examples of each subset, drawn
      once with the seed), measured after every epoch;
    - ``batch``: the pairs of the subset's examples within each training batch (the
      paper's footnote 2: per-example gradients of the batch, before its update),
      averaged over all such pairs of the epoch.

    The training steps are the statistics' own forward and backward passes, so they run in
    the statistics' arithmetic, recorded in the attributes ``statistics_method`` and
    ``statistics_precision``: under ``opt.precision`` bf16 the hooks method (exact, from
    activations and output gradients of one dtype) computes in fp32, the per-example (func)
    method in bf16. fp16 is refused (a training step of its own applies no loss scaler).
    """
    if cosine_pairs not in COSINE_PAIRS:
        raise ValueError(f"cosine_pairs must be 'probe' or 'batch', got {cosine_pairs!r}")
    if opt.precision == "fp16":  # before any model is built (fit would refuse it too)
        raise ValueError(
            "precision: fp16 needs loss scaling, which the gradient statistics' training step "
            "(exact per-example statistics from one backward pass) does not do: use bf16 or fp32"
        )
    if cosine_pairs == "probe" and not probe_size:
        raise ValueError("the probe cosine similarity needs a probe_size")
    rows = members(train_subsets, len(train))
    probes = _probes(rows, probe_size, seed) if cosine_pairs == "probe" else {}
    net = plain_model(model, train, seed)
    method, precision = _arithmetic(net, method, opt.precision)
    # the forward passes in that precision; backward and the sums as they are
    mixed = autocast_forward(net, precision, train.x.device)
    rec = _Recorder(mixed, train, rows, probes, opt.epochs, cosine_pairs, method)
    if checkpoint is not None:
        checkpoint.track(rec.records())
    fit(
        net,
        train,
        opt,
        seed=seed,
        step=rec.step,
        after_epoch=rec.after_epoch,
        checkpoint=checkpoint,
        desc="plain training with gradient statistics",
        progress=progress,
    )
    return xr.Dataset(
        {
            "contribution": (("epoch", "subset"), rec.contribution),
            "cosine_similarity": (("epoch", "subset"), rec.cosine),
            "probe_size": (("subset",), np.array([len(probes.get(s, ())) for s in SUBSETS])),
        },
        coords={"epoch": np.arange(1, opt.epochs + 1), "subset": list(SUBSETS)},
        # how the statistics were computed: under bf16 the hooks method stays fp32
        attrs={"statistics_method": method, "statistics_precision": precision},
    )
