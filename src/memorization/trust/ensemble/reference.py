"""What model ``k`` of an ensemble is, and the reference that trains it alone with ``fit``.

Model ``k`` is its seed's initialisation, batch order and subset; the reference trains
and predicts with such models one after another."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...data.tensors import TensorSplit
from ...method.models.spec import ModelSpec
from ...method.optim import OptimSpec
from ...method.training import fit
from .stacked import Predictions

__all__ = ["batch_order", "build_models", "check_subsets", "predict_split", "train_sequential"]


def batch_order(seed: int) -> torch.Generator:
    """The generator of a model's batch order: the one :func:`~memorization.method.training.fit`
    seeds with ``seed + 1``."""
    return torch.Generator().manual_seed(int(seed) + 1)


def build_models(
    model: ModelSpec, in_shape: Sequence[int], seeds: Sequence[int]
) -> list[nn.Module]:
    """One freshly initialised plain model per seed (seeded first)."""
    return [model.build(tuple(in_shape), turnover=False, seed=int(seed)) for seed in seeds]


def check_subsets(subsets: np.ndarray, n_models: int, n_rows: int) -> np.ndarray:
    """``subsets`` as [n_models, n_rows] booleans, each model's non-empty (else a ValueError)."""
    subsets = np.asarray(subsets, dtype=bool)
    if subsets.shape != (n_models, n_rows):
        raise ValueError(f"subsets must be [{n_models}, {n_rows}] booleans, got {subsets.shape}")
    empty = np.flatnonzero(~subsets.any(axis=1))
    if len(empty):
        raise ValueError(f"models {empty.tolist()} have an empty training subset")
    return subsets


def train_sequential(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seeds: Sequence[int],
    subsets: np.ndarray,
    *,
    progress: bool = False,
) -> list[nn.Module]:
    """The reference: each model built and trained on its own with ``fit``, one after another."""
    subsets = check_subsets(subsets, len(seeds), len(train))
    device = train.x.device
    models = []
    for seed, subset in zip(seeds, subsets, strict=True):
        (net,) = build_models(model, train.x.shape[1:], [seed])
        net = net.to(device)
        positions = torch.from_numpy(np.flatnonzero(subset))
        fit(net, train, opt, seed=int(seed), positions=positions, progress=progress)
        models.append(net)
    return models


def predict_split(
    models: Sequence[nn.Module], split: TensorSplit, batch_size: int = 1024
) -> Predictions:
    """:class:`Predictions` of ordinary models, one after another (the reference)."""
    correct, prob, loss = [], [], []
    with torch.no_grad():
        for model in models:
            model.eval()
            logits = torch.cat(
                [model(split.x[s : s + batch_size]) for s in range(0, len(split), batch_size)]
            )
            nll = F.cross_entropy(logits.float(), split.y, reduction="none")
            correct.append((logits.argmax(1) == split.y).cpu().numpy())
            loss.append(nll.cpu().numpy())
            prob.append(np.exp(-loss[-1]).astype(np.float32))
    return Predictions(np.stack(correct), np.stack(prob), np.stack(loss))
