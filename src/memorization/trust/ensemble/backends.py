"""Which step backend computes an ensemble's per-model gradients (the ``path`` option).

The automatic choice, the refusals, and building the chosen backend:

- ``"func"`` (:mod:`.func_step`): any model, through ``torch.func``; ``vmap`` turns the
  K models' convolutions into grouped ones and their attention into batched attention,
  which pays on a GPU (one small network leaves the card idle);
- ``"loop"`` (:mod:`.loop_step`): any model, the K models stepped one after another with
  ordinary autograd on the same stacked parameters; on a CPU their convolutions run at a
  single network's dense rate, where ``vmap``'s grouped ones run up to 2 times slower;
- ``"sparse_mlp"`` (:mod:`.sparse_mlp`): the one-hidden-layer MLP with hand-written
  batched products over the inputs' nonzeros (float32 only);
- ``"auto"``: ``"sparse_mlp"`` for an MLP trained in float32 whose training inputs are at
  most :data:`SPARSE_DENSITY` nonzero after removing each feature's most common value,
  else ``"loop"`` for inputs on the CPU and ``"func"`` on a GPU.

Every path trains the same models (each equals its one-by-one reference to float
tolerance) and they differ in speed, with one exception: on subsets of different sizes the
``func`` path's batch normalisation also sees the rows a short batch is padded with, so a
batch-norm network there differs slightly from the one trained alone (the ``loop`` path
runs each model on its own rows only).
"""

from __future__ import annotations

from torch import Tensor, nn

from ...method.models.mlp import MLP
from .func_step import FuncStep
from .loop_step import LoopStep
from .sparse_mlp import SparseMLPStep, input_density
from .stacked import Step

__all__ = ["PATHS", "SPARSE_DENSITY", "build_step", "resolve_path"]

PATHS = ("auto", "func", "loop", "sparse_mlp")

#: ``path="auto"`` takes the sparse MLP path when at most this fraction of the training
#: inputs differ from their feature's most common value
SPARSE_DENSITY = 0.35


def resolve_path(path: str, models: list[nn.Module], x: Tensor, precision: str = "fp32") -> str:
    """``path`` checked against the models and ``precision``; ``"auto"`` resolved from the
    model, the inputs' density, the precision and the inputs' device."""
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; known: {PATHS}")
    if precision == "fp16":
        raise ValueError(
            "precision: fp16 needs loss scaling, which the vectorised ensembles do not do: "
            "use bf16 or fp32"
        )
    is_mlp = type(models[0]) is MLP
    if path == "sparse_mlp" and not is_mlp:
        raise ValueError(f"path 'sparse_mlp' needs the MLP, got {type(models[0]).__name__}")
    if path == "sparse_mlp" and precision != "fp32":
        raise ValueError(
            f"path 'sparse_mlp' computes in float32; precision {precision} "
            "needs path 'func', 'loop' or 'auto'"
        )
    if path == "auto":
        if is_mlp and precision == "fp32" and input_density(x) <= SPARSE_DENSITY:
            return "sparse_mlp"
        return "loop" if x.device.type == "cpu" else "func"
    return path


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
    path = resolve_path(path, models, x_train, precision)
    if path == "sparse_mlp":
        return SparseMLPStep(models, x_train, y_train, hidden_block)
    step = LoopStep if path == "loop" else FuncStep
    return step(models, x_train, y_train, precision, channels_last=channels_last)
