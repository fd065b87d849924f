"""The trained ensemble: K models' stacked parameters, read back as modules or predictions.

A step backend (what one does: :class:`Step`) holds the parameters; the ensemble reads
them back as ordinary modules, state dicts, logits or predictions."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ...data.tensors import TensorSplit

__all__ = ["Ensemble", "Predictions", "Step"]


class Step(Protocol):
    """A step backend: K models' parameters stacked along ``model_dim`` of its tensors."""

    name: str
    model_dim: int

    def tensors(self) -> list[Tensor]:
        """The stacked parameters the optimizer updates in place."""

    def gradients(self, rows: Tensor, weights: Tensor) -> list[Tensor]:
        """Per-model gradients of the weighted batch loss, rows and weights [K, b]."""

    def logits(self, x: Tensor) -> Tensor:
        """Every model's logits on ``x``: [K, n, classes]."""

    def state_dicts(self) -> list[dict[str, Tensor]]:
        """Each model's ``state_dict`` in the plain model's layout."""


@dataclass
class Predictions:
    """Every model's view of some examples: ``correct`` (bool) and ``prob`` (float32, the
    probability of the example's label), both [K, n], and ``loss`` (its cross-entropy)."""

    correct: np.ndarray
    prob: np.ndarray
    loss: np.ndarray


class Ensemble:
    """K trained plain models of one architecture held as stacked parameters."""

    def __init__(self, template: nn.Module, step: Step) -> None:
        self._template = template
        self._step = step

    @property
    def path(self) -> str:
        return self._step.name

    def __len__(self) -> int:
        return self._step.tensors()[0].shape[self._step.model_dim]

    def state_dicts(self) -> list[dict[str, Tensor]]:
        """Each model's ``state_dict`` (in the plain model's layout)."""
        return self._step.state_dicts()

    def model(self, k: int) -> nn.Module:
        """Model ``k`` as an ordinary module."""
        model = copy.deepcopy(self._template)
        model.load_state_dict(self.state_dicts()[k])
        return model

    @torch.no_grad()
    def logits(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Logits of every model on ``x``: [K, n, classes]."""
        return torch.cat(
            [self._step.logits(x[s : s + batch_size]) for s in range(0, len(x), batch_size)], 1
        )

    @torch.no_grad()
    def predict(self, split: TensorSplit, batch_size: int = 1024) -> Predictions:
        """Correctness, label probability and loss of every model on every example."""
        correct, loss = [], []
        for s in range(0, len(split), batch_size):
            logits = self._step.logits(split.x[s : s + batch_size]).float()
            y = split.y[s : s + batch_size]
            logp = F.log_softmax(logits, -1).gather(-1, y[None, :, None].expand(len(logits), -1, 1))
            correct.append((logits.argmax(-1) == y).cpu())
            loss.append(-logp[..., 0].cpu())
        loss_all = torch.cat(loss, 1).numpy()
        return Predictions(
            torch.cat(correct, 1).numpy(), np.exp(-loss_all).astype(np.float32), loss_all
        )
