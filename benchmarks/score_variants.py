"""Memorization scores with less variance from the same turn-over run.

One turn-over run gives each training example one unmuted and one muted
sub-network, and its memorization score (eq. 6) is noisy mostly because of
which units those are. These scorers spend a little more *evaluation*, never
more training:

- :func:`sharpened_memorization` (the library's, :mod:`memorization.method.scoring`;
  :func:`sharpened_scores` for a split): the
  probability difference ``p_unmuted(y) - p_muted(y)`` with the logits divided
  by a temperature ``T``. ``T = 1`` is the probability form of the score; as
  ``T -> 0`` it becomes the 0/1 form; in between it is a smoothed 0/1
  difference, closer to what the Feldman-Zhang estimator measures (a
  difference of correctness probabilities) and less noisy than either.
- :func:`view_scores`: test-time augmentation. Each example is also evaluated
  shifted by a few pixels (:func:`shift_views`, edge pixels repeated) through
  both of its sub-networks, and each sub-network's loss, label probability and
  correctness are averaged over the views.
- :func:`partition_scores`: the muted units of an example cut into ``parts``
  disjoint sub-networks (:func:`muted_partition`), each rescaled to keep the
  layer's mean activation, their label probabilities averaged. At keep fraction
  ``p = 1/(parts + 1)`` each part has as many units as the unmuted sub-network
  and the same scale: several out-of-sample sub-networks per example.

Measured on mnist5k against a 200-model Feldman-Zhang estimate (MLP-1024), only
the sharpened difference helped (``T = 0.5``, :data:`SHARPEN_TEMPERATURE`), and
only on clean labels: after random labels are fitted, the muted sub-networks
are so poor that every probability form saturates and the loss difference
finds the random labels better. Shifted views and the muted partition made
every score worse on the MLP; they stay here so that the comparison can be
rerun (and tried on convolutional models, which shifts suit better).

Every score is oriented like the paper's: higher means more memorized; ``loss``
forms are muted minus unmuted loss, ``probability`` and ``zero_one`` forms
unmuted minus muted probability (correctness) of the label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from memorization.data import TensorSplit
from memorization.method.masks import TurnOverMasks, splitmix64
from memorization.method.models import TurnOverNet
from memorization.method.scoring import (
    SHARPEN_TEMPERATURE,
    score_examples,
    sharpened_memorization,
)

__all__ = [
    "SHARPEN_TEMPERATURE",
    "muted_partition",
    "partition_scores",
    "sharpened_memorization",
    "sharpened_scores",
    "shift",
    "shift_views",
    "view_scores",
]

#: salt of the hash that orders an example's muted units for the partition
_PARTITION_SALT = np.uint64(0x9A27)


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images ``[B, C, H, W]`` moved ``dy`` pixels down and ``dx`` right, edges repeated."""
    if dy == 0 and dx == 0:
        return x
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"shift ({dy}, {dx}) is as large as the {h}x{w} image")
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))  # left, right, top, bottom
    padded = F.pad(x, pad, mode="replicate")
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + h, left : left + w]


def shift_views(shift_by: int = 1, diagonal: bool = False) -> list[tuple[int, int]]:
    """Offsets ``(dy, dx)`` of the views: the image itself, then shifted by ``shift_by``
    pixels up, down, left and right (and the four diagonals with ``diagonal``)."""
    if shift_by < 1:
        raise ValueError(f"shift_by must be a positive number of pixels, got {shift_by}")
    s = int(shift_by)
    views = [(0, 0), (-s, 0), (s, 0), (0, -s), (0, s)]
    if diagonal:
        views += [(-s, -s), (-s, s), (s, -s), (s, s)]
    return views


def _label_stats(logits: torch.Tensor, y: torch.Tensor):
    logp = F.log_softmax(logits.float(), dim=1)
    nll = -logp.gather(1, y[:, None])[:, 0]
    return nll, nll.neg().exp(), (logits.argmax(1) == y).float()


def _forms(stats: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Memorization in its three forms from averaged sub-network statistics."""
    return {
        f"{prefix}memorization": stats["loss_muted"] - stats["loss_unmuted"],
        f"{prefix}probability_memorization": stats["prob_unmuted"] - stats["prob_muted"],
        f"{prefix}zero_one_memorization": stats["correct_unmuted"] - stats["correct_muted"],
    }


@torch.inference_mode()
def view_scores(
    model: TurnOverNet,
    split: TensorSplit,
    masks: TurnOverMasks,
    views: Sequence[tuple[int, int]] | None = None,
    batch_size: int = 1024,
) -> dict[str, np.ndarray]:
    """Both sub-networks' loss, label probability and correctness averaged over shifted views.

    ``views`` are ``(dy, dx)`` offsets (default :func:`shift_views`: the image and
    its four one-pixel shifts); each example is evaluated on every view through its
    own unmuted and muted sub-network. Returns, per example, ``loss_*``, ``prob_*``
    and ``correct_*`` for ``*`` in ``unmuted``/``muted`` (means over the views),
    ``view_memorization`` (mean loss difference), ``view_probability_memorization``
    and ``view_zero_one_memorization``; with the single view ``(0, 0)`` they are
    :func:`memorization.method.scoring.score_examples`'s scores.
    """
    views = shift_views() if views is None else list(views)
    if not views:
        raise ValueError("view_scores needs at least one view")
    model.eval()
    keys = [f"{k}_{s}" for k in ("loss", "prob", "correct") for s in ("unmuted", "muted")]
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    device = split.x.device
    for start in range(0, len(split), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(split)), device=device)
        x, y = split.x[rows], split.y[rows]
        unmuted = masks.unmuted(rows)
        sums = {k: torch.zeros(len(rows), device=device) for k in keys}
        for dy, dx in views:
            pair = model.forward_pair(shift(x, dy, dx), unmuted)
            for subnet, logits in zip(("unmuted", "muted"), pair, strict=True):
                for k, v in zip(("loss", "prob", "correct"), _label_stats(logits, y), strict=True):
                    sums[f"{k}_{subnet}"] += v
        for k in keys:
            out[k].append((sums[k] / len(views)).cpu())
    res = {k: torch.cat(v).numpy() for k, v in out.items()}
    res.update(_forms(res, "view_"))
    return res


def muted_partition(
    masks: TurnOverMasks, positions: torch.Tensor, parts: int
) -> list[list[torch.Tensor]]:
    """The muted units of these examples cut into ``parts`` disjoint sub-networks.

    Returns one mask list per part (one ``[B, units]`` float tensor per masked
    layer). An example's muted units are ordered by a hash of (mask seed, layer,
    example, unit), so the partition is a pure function of those, and dealt into
    ``parts`` near-equal groups; each group's units are scaled by
    ``units / group size`` so that the part keeps the layer's mean activation
    (``1/p`` at ``p = 1/(parts + 1)``, the unmuted sub-network's scale). With
    ``parts=1`` the single part is the muted sub-network itself.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    examples = masks.examples[positions.cpu().numpy()].astype(np.uint64)
    per_part: list[list[torch.Tensor]] = [[] for _ in range(parts)]
    for layer, bank in enumerate(masks.banks):
        muted = ~bank[positions].cpu().numpy()
        units = muted.shape[1]
        n_muted = int(muted[0].sum())  # every example mutes the same number of units
        if n_muted < parts:
            raise ValueError(f"layer {layer} mutes {n_muted} units, fewer than {parts} parts")
        key = splitmix64(np.uint64(masks.seed) ^ splitmix64(np.uint64(layer) + _PARTITION_SALT))
        unit_ids = splitmix64(np.arange(units, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        h = splitmix64(splitmix64(key ^ splitmix64(examples))[:, None] ^ unit_ids[None, :])
        h = np.where(muted, h, np.iinfo(np.uint64).max)  # kept units sort last
        rank = np.empty_like(h, dtype=np.int64)
        np.put_along_axis(rank, np.argsort(h, axis=1, kind="stable"), np.arange(units), axis=1)
        group = np.where(muted, rank % parts, -1)  # deal the muted units round-robin
        for k in range(parts):
            in_part = group == k
            scale = units / in_part.sum(1, keepdims=True)
            m = torch.from_numpy((in_part * scale).astype(np.float32))
            per_part[k].append(m.to(bank.device))
    return per_part


@torch.inference_mode()
def partition_scores(
    model: TurnOverNet,
    split: TensorSplit,
    masks: TurnOverMasks,
    parts: int,
    views: Sequence[tuple[int, int]] | None = None,
    batch_size: int = 1024,
) -> dict[str, np.ndarray]:
    """Memorization with the muted side an ensemble of ``parts`` out-of-sample sub-networks.

    The muted units of each example are split by :func:`muted_partition`; the
    muted label probability is the mean of the parts' probabilities (its loss the
    negative log of that mean, its correctness the parts' mean correctness); the
    unmuted side is the example's unmuted sub-network. With ``views``, both sides
    are also averaged over those shifted views (as :func:`view_scores`). Returns
    the same keys as :func:`view_scores`, the scores prefixed ``partition_``.
    """
    views = [(0, 0)] if views is None else list(views)
    model.eval()
    keys = [f"{k}_{s}" for k in ("loss", "prob", "correct") for s in ("unmuted", "muted")]
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    device = split.x.device
    for start in range(0, len(split), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(split)), device=device)
        x, y = split.x[rows], split.y[rows]
        unmuted = masks.unmuted(rows)
        part_masks = muted_partition(masks, rows, parts)
        sums = {k: torch.zeros(len(rows), device=device) for k in keys}
        for dy, dx in views:
            xv = shift(x, dy, dx)
            loss_u, prob_u, right_u = _label_stats(model(xv, unmuted), y)
            sums["loss_unmuted"] += loss_u
            sums["prob_unmuted"] += prob_u
            sums["correct_unmuted"] += right_u
            log_probs = []
            for part in part_masks:
                logits = model(xv, part)
                log_probs.append(-F.cross_entropy(logits.float(), y, reduction="none"))
                sums["correct_muted"] += (logits.argmax(1) == y).float() / parts
            # the ensemble's label probability: the mean of the parts' (log-mean-exp)
            log_mean = torch.logsumexp(torch.stack(log_probs), 0) - math.log(parts)
            sums["prob_muted"] += log_mean.exp()
            sums["loss_muted"] -= log_mean
        for k in keys:
            out[k].append((sums[k] / len(views)).cpu())
    res = {k: torch.cat(v).numpy() for k, v in out.items()}
    res.update(_forms(res, "partition_"))
    return res


@torch.inference_mode()
def sharpened_scores(
    model: TurnOverNet,
    split: TensorSplit,
    masks: TurnOverMasks,
    temperature: float = SHARPEN_TEMPERATURE,
    batch_size: int = 1024,
) -> np.ndarray:
    """:func:`sharpened_memorization` of every example of ``split`` (its own masks)."""
    return score_examples(model, split, masks, batch_size, temperature)["sharpened_memorization"]
