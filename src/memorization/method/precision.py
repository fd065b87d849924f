"""The arithmetic of training and scoring: fp32, or mixed precision (bf16, fp16), and the
channels-last memory layout of convolutional models.

``precision`` (an :class:`~memorization.method.optim.OptimSpec` field) picks it:

- ``fp32``: everything in float32, no autocast at all (bit-identical to a run that never
  heard of the option);
- ``bf16``: the forward pass and the loss run under :func:`torch.autocast` with bfloat16
  (matrix products and convolutions in bf16, reductions such as the cross-entropy in
  float32); parameters, gradients and the optimizer's state stay float32. bfloat16 has
  float32's exponent range, so no loss scaling is needed. Fast where the hardware has bf16
  matrix units: CPUs with AMX-BF16 or AVX512-BF16, NVIDIA GPUs from Ampere on;
- ``fp16``: autocast with float16 and a loss scaler (:class:`torch.amp.GradScaler`, which
  multiplies the loss before the backward pass so that small gradients do not underflow,
  unscales them before the optimizer's step and skips a step whose gradients overflowed).
  GPUs have it; a CPU only where oneDNN has float16 kernels (AMX-FP16), else PyTorch would
  emulate it slowly, and the config check refuses it.

Scores and losses are always computed in float32 from the logits (``logits.float()``), so
the precision changes the network's arithmetic, never the score's.

``channels_last`` stores image batches and convolution weights as N, H, W, C, the layout
oneDNN and cuDNN convolutions are fastest in; a model without convolutions has nothing to
convert (:func:`has_convolutions`).
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from .optim import OPTIONS

__all__ = [
    "DTYPES",
    "PRECISIONS",
    "autocast",
    "autocast_forward",
    "has_convolutions",
    "loss_scaler",
    "supports",
    "to_channels_last",
    "to_channels_last_batch",
]

log = logging.getLogger(__name__)

#: the values of the ``precision`` option, from its declaration
PRECISIONS = tuple(OPTIONS["precision"].schema["enum"])

#: the autocast dtype of each mixed precision
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _device_type(device: torch.device | str) -> str:
    return torch.device(device).type


def _cpu_has(precision: str) -> bool:
    """Whether oneDNN has native kernels of this dtype on this CPU (private torch API:
    where it is missing, assume not)."""
    probe = {
        "bf16": "_is_mkldnn_bf16_supported",
        "fp16": "_is_mkldnn_fp16_supported",
    }[precision]
    try:
        return bool(getattr(torch.ops.mkldnn, probe)())
    except (AttributeError, RuntimeError):
        return False


def supports(precision: str, device: torch.device | str) -> bool:
    """Whether ``device`` computes in ``precision`` natively (fp32: always).

    CUDA: bf16 where :func:`torch.cuda.is_bf16_supported` (Ampere and later), fp16 on
    every card. CPU: where oneDNN has kernels of that dtype (bf16: AVX512-BF16 or AMX;
    fp16: AMX-FP16 or AVX512-FP16 kernels); elsewhere PyTorch would emulate them, slower
    than fp32.
    """
    _check(precision)
    kind = _device_type(device)
    if precision == "fp32":
        return True
    if kind == "cuda":
        return precision == "fp16" or bool(torch.cuda.is_bf16_supported())
    if kind == "cpu":
        return _cpu_has(precision)
    return False


def autocast(precision: str, device: torch.device | str):
    """The context the forward pass and the loss run in: :func:`torch.autocast` with
    ``precision``'s dtype on ``device``'s type, or a null context for fp32."""
    _check(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(_device_type(device), dtype=DTYPES[precision])


def loss_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler | None:
    """fp16's loss scaler on ``device`` (CUDA, or a CPU: PyTorch's scaler runs on both);
    None for fp32 and bf16, which need none."""
    _check(precision)
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(_device_type(device))


class _AutocastForward(nn.Module):
    """``module`` whose forward runs under :func:`autocast` (the backward pass, and what
    a caller computes from the outputs, run outside it)."""

    def __init__(self, module: nn.Module, precision: str, device) -> None:
        super().__init__()
        self.module = module
        self.precision, self.device = precision, device

    def forward(self, *args, **kwargs):
        with autocast(self.precision, self.device):
            out = self.module(*args, **kwargs)
        return out.float() if isinstance(out, torch.Tensor) else out


def autocast_forward(module: nn.Module, precision: str, device) -> nn.Module:
    """``module`` itself for fp32, else a wrapper (sharing its parameters) whose forward
    runs under autocast and returns float32 outputs (the loss is then taken in float32, as
    under autocast): for code that runs forward, backward and its own float32/float64 sums
    in one call (the gradient statistics), where only the forward should be mixed."""
    _check(precision)
    return module if precision == "fp32" else _AutocastForward(module, precision, device)


def has_convolutions(model: nn.Module) -> bool:
    """Whether ``model`` has a 2-d convolution (the layers channels-last is for)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def to_channels_last(model: nn.Module) -> bool:
    """Convert ``model``'s 4-d parameters and buffers to channels-last in place; returns
    whether it did (False, with a note in the log, for a model without convolutions)."""
    if not has_convolutions(model):
        log.info("channels_last: %s has no convolutions; left as it is", type(model).__name__)
        return False
    model.to(memory_format=torch.channels_last)
    return True


def to_channels_last_batch(x: torch.Tensor) -> torch.Tensor:
    """An image batch (4-d: N, C, H, W) in channels-last layout; other inputs as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
