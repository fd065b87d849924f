"""Influence of training examples on test examples with turn-over dropout (eq. 5).

The influence of training example ``i`` on a target ``z`` is the loss of ``i``'s
muted sub-network on ``z`` minus that of its unmuted one (eq. 5; on ``z = z_i`` it is
the memorization score). :func:`top_influence` finds, for every test example, the
``top_k`` training examples with the highest influence on it, a block of test
examples at a time, never holding more than one block of the full matrix.

The one-hidden-layer MLP has a fast exact path: its hidden layer is shared by every
sub-network, so the hidden activations ``h_j`` of a test block are computed once; the
logits of ``i``'s unmuted sub-network on ``j`` are ``s_u Σ_k m_ik h_jk W2[:, k]`` (and
the muted ones use the complement), one matrix product of the training examples' masks
with ``h ⊙ W2[c]`` per class ``c``. Other models run each training example's two
sub-networks over the test block (:func:`influence`: exact, but ``N_train`` forward
passes per block).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from ..data.tensors import TensorSplit
from ..method.masks import TurnOverMasks
from ..method.models.base import TurnOverNet
from ..method.models.mlp import MLP

__all__ = ["influence", "influence_block", "top_turnover_influence"]

log = logging.getLogger(__name__)


@torch.inference_mode()
def influence(
    model: TurnOverNet,
    masks: TurnOverMasks,
    train_rows: torch.Tensor,
    x_target: torch.Tensor,
    y_target: torch.Tensor,
) -> torch.Tensor:
    """Influence of training examples on targets (eq. 5): [len(train_rows), n_targets].

    Entry (i, t) is the loss on target t of training example i's muted sub-network
    minus that of its unmuted one; on its own example it is the memorization score.
    Any model; exact, one pair of forward passes per training example.
    """
    model.eval()
    out = torch.empty(len(train_rows), len(x_target), device=x_target.device)
    for k, row in enumerate(train_rows.tolist()):
        rows = torch.tensor([row], device=x_target.device)
        unmuted = [m.expand(len(x_target), -1) for m in masks.unmuted(rows)]
        muted = [m.expand(len(x_target), -1) for m in masks.muted(rows)]
        logits_u, logits_m = model.forward_pair(x_target, unmuted, muted)
        out[k] = F.cross_entropy(logits_m.float(), y_target, reduction="none") - F.cross_entropy(
            logits_u.float(), y_target, reduction="none"
        )
    return out


@torch.inference_mode()
def influence_block(
    model: TurnOverNet, masks: TurnOverMasks, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """[len(masks), len(x)] influence of every training example on targets ``(x, y)``."""
    model.eval()
    if isinstance(model, MLP):
        return _mlp_block(model, masks, x, y)
    return influence(model, masks, torch.arange(len(masks)), x, y)


def _mlp_block(model: MLP, masks: TurnOverMasks, x, y) -> torch.Tensor:
    h = F.relu(model.hidden(x.flatten(1)))  # [T, K], shared by every sub-network
    w2 = model.output.weight  # [C, K]
    bank = masks.banks[0].to(h.dtype)  # [N, K] 1 = unit of the unmuted sub-network
    scale_u, scale_m = masks.unmuted_scale, masks.muted_scale
    # logits_u[i, t, c] = scale_u * sum_k bank[i, k] h[t, k] w2[c, k]
    hw = h[None, :, :] * w2[:, None, :]  # [C, T, K]
    kept = torch.einsum("ik,ctk->itc", bank, hw)
    full = (h @ w2.T)[None]  # [1, T, C]: every unit
    logits_u = scale_u * kept
    logits_m = scale_m * (full - kept)
    idx = y[None, :, None].expand(len(bank), -1, 1)
    loss_u = -torch.log_softmax(logits_u, -1).gather(2, idx)[..., 0]
    loss_m = -torch.log_softmax(logits_m, -1).gather(2, idx)[..., 0]
    return loss_m - loss_u


def top_turnover_influence(
    model: TurnOverNet,
    masks: TurnOverMasks,
    test: TensorSplit,
    top_k: int = 10,
    block: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """(positions [n_test, top_k] of the training examples, their influence values):
    the ``top_k`` highest turn-over influences on every test example."""
    k = min(top_k, len(masks))
    rows = np.empty((len(test), k), dtype=np.int64)
    values = np.empty((len(test), k), dtype=np.float32)
    for start in range(0, len(test), block):
        sl = slice(start, min(len(test), start + block))
        infl = influence_block(model, masks, test.x[sl], test.y[sl])  # [N, b]
        top = torch.topk(infl, k, dim=0)
        values[sl] = top.values.T.float().cpu().numpy()
        rows[sl] = top.indices.T.cpu().numpy()
        if start // block % 10 == 0:
            log.info("influence: test examples %d-%d of %d", start, sl.stop - 1, len(test))
    return rows, values
