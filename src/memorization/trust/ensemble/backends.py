"""Which step backend computes an ensemble's per-model gradients (the ``path`` option).

The automatic choice, the refusals, and building the chosen backend:

- ``"func"`` (:mod:`.func_step`): any model, through ``torch.func``; VGG-11 and the CCT
  run here (``vmap`` turns their convolutions into grouped ones and their attention into
  batched attention);
- ``"sparse_mlp"`` (:mod:`.sparse_mlp`): the one-hidden-layer MLP with hand-written
  batched products over the inputs' nonzeros;
- ``"auto"``: ``"sparse_mlp"`` for an MLP whose training inputs are at most
  :data:`SPARSE_DENSITY` nonzero after removing each feature's most common value, else
  ``"func"``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ...method.models.mlp import MLP
from .func_step import FuncStep
from .sparse_mlp import SparseMLPStep, input_density
from .stacked import Step

__all__ = ["PATHS", "SPARSE_DENSITY", "build_step", "precision_path", "resolve_path"]

PATHS = ("auto", "func", "sparse_mlp")

#: ``path="auto"`` takes the sparse MLP path when at most this fraction of the training
#: inputs differ from their feature's most common value
SPARSE_DENSITY = 0.35


def resolve_path(path: str, models: list[nn.Module], x: Tensor) -> str:
    """``path`` checked against the models, ``"auto"`` resolved from the inputs' density."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; known: {PATHS}")
    is_mlp = type(models[0]) is MLP
    if path == "sparse_mlp" and not is_mlp:
        raise ValueError(f"path 'sparse_mlp' needs the MLP, got {type(models[0]).__name__}")
    if path == "auto":
        path = "sparse_mlp" if is_mlp and input_density(x) <= SPARSE_DENSITY else "func"
    return path


def precision_path(path: str, precision: str) -> str:
    """The path under ``precision``: the sparse MLP's hand-written products are float32,
    so a mixed precision takes the func path (autocast); fp16 needs a loss scaler, which
    the stacked optimizer has not."""
    if precision == "fp32":
        return path
    if precision == "fp16":
        raise ValueError(
            "precision: fp16 needs loss scaling, which the vectorised ensembles do not do: "
            "use bf16 or fp32"
        )
    if path == "sparse_mlp":
        raise ValueError(
            f"path 'sparse_mlp' computes in float32; precision {precision} "
            "needs path 'func' or 'auto'"
        )
    return "func"


def build_step(
    path: str,
    models: list[nn.Module],
    x_train: Tensor,
    y_train: Tensor,
    *,
    precision: str = "fp32",
    hidden_block: int = 128,
    channels_last: bool = False,
) -> Step:
    """The backend of ``path`` (``"auto"`` resolved) holding ``models``' parameters."""
    path = resolve_path(precision_path(path, precision), models, x_train)
    if path == "sparse_mlp":
        return SparseMLPStep(models, x_train, y_train, hidden_block)
    return FuncStep(models, x_train, y_train, precision, channels_last=channels_last)
