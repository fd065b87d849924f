"""Gradient statistics during plain training (figure 4): contribution (eq. 4) and
cosine similarity (eq. 3) of the easy, difficult and full examples per epoch.

The training is exactly the ``all`` run of
:func:`memorization.studies.dynamics.training_dynamics` (same seed, same batches); the
contributions come from the training steps themselves (:mod:`.gradstats` computes
them exactly without materialising per-example gradients).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr

from ..data.tensors import TensorSplit
from ..method.checkpoint import Checkpoint, Records
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from ..method.training import fit
from .gradstats import contributions, cosine_similarity
from .plain import SUBSETS, members, plain_model

__all__ = ["COSINE_PAIRS", "gradient_statistics"]

#: what the cosine similarity is taken over (see :func:`gradient_statistics`)
COSINE_PAIRS = ("probe", "batch")


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
    """
    if cosine_pairs not in COSINE_PAIRS:
        raise ValueError(f"cosine_pairs must be 'probe' or 'batch', got {cosine_pairs!r}")
    if cosine_pairs == "probe" and not probe_size:
        raise ValueError("the probe cosine similarity needs a probe_size")
    rows = members(train_subsets, len(train))
    probes = _probes(rows, probe_size, seed) if cosine_pairs == "probe" else {}
    net = plain_model(model, train, seed)
    member_t = {s: torch.from_numpy(m).to(train.x.device) for s, m in rows.items()}
    sums = _EpochSums()
    contribution = np.full((opt.epochs, len(SUBSETS)), np.nan)
    cosine = np.full((opt.epochs, len(SUBSETS)), np.nan)
    if checkpoint is not None:  # the within-epoch sums too: a signal saves mid-epoch
        checkpoint.track(Records(contribution=contribution, cosine=cosine, **sums.records()))

    def step(x, y, batch_rows):
        net.train()
        if cosine_pairs == "batch":  # on the parameters this batch's gradient is taken at
            for s in SUBSETS:
                sel = member_t[s][batch_rows]
                n = int(sel.sum())
                if n >= 2:
                    mean = cosine_similarity(net, x[sel], y[sel], method=method, chunk_size=256)
                    sums.pair_sum[s] += mean * n * (n - 1)
                    sums.pair_count[s] += n * (n - 1)
        loss, contrib = contributions(net, x, y, method=method)
        contrib = contrib.detach()
        for s in SUBSETS:
            sel = member_t[s][batch_rows]
            sums.epoch_sum[s] += float(contrib[sel].double().sum())
            sums.epoch_count[s] += int(sel.sum())
        return loss

    def after_epoch(epoch: int) -> dict[str, float]:
        net.eval()
        for k, s in enumerate(SUBSETS):
            contribution[epoch - 1, k] = sums.contribution(s)
            if cosine_pairs == "batch":
                cosine[epoch - 1, k] = sums.pair_cosine(s)
                continue
            probe = torch.from_numpy(probes[s]).to(train.x.device)
            cosine[epoch - 1, k] = cosine_similarity(
                net, train.x[probe], train.y[probe], method=method, chunk_size=256
            )
        return {f"cos_{s}": cosine[epoch - 1, k] for k, s in enumerate(SUBSETS)}

    fit(
        net,
        train,
        opt,
        seed=seed,
        step=step,
        after_epoch=after_epoch,
        checkpoint=checkpoint,
        desc="plain training with gradient statistics",
        progress=progress,
    )
    ds = xr.Dataset(
        {
            "contribution": (("epoch", "subset"), contribution),
            "cosine_similarity": (("epoch", "subset"), cosine),
            "probe_size": (("subset",), np.array([len(probes.get(s, ())) for s in SUBSETS])),
        },
        coords={"epoch": np.arange(1, opt.epochs + 1), "subset": list(SUBSETS)},
    )
    return ds
