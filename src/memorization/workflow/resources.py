"""Wall time and memory of a training job, estimated from its experiment's size.

The rules that train declare ``runtime`` (minutes, SLURM's ``--time``) and ``mem_mb``
(host memory, ``--mem``) with these functions, so a cluster job asks for what its
experiment needs: a figure job does not wait in the queue for 4 hours and 16 GB, and a
200-epoch VGG-11 is not killed after 4 hours. A profile's ``set-resources`` still
overrides them for one rule.

Work is counted in forward passes of one example (``F`` FLOPs, counted once per model
on the meta device with :mod:`torch.utils.flop_counter`, at the size the model reads:
with ``preprocess: model`` its own input size): a training step costs 3 (the
backward pass is about twice the forward), an evaluation 1, scoring both sub-networks
2, a step with per-example gradient statistics ``3 * GRADSTATS_FACTOR`` (scoring counts
every replicate of an experiment that has ``replicates``). A stage is a
list of :class:`Pass` es (examples per epoch, epochs, cost, batch size), with the
epochs and batch size the stage trains with (:class:`memorization.workflow.specs.Experiment`
resolves the studies' overrides); each training stage's record in the registry
(:mod:`memorization.workflow.registry`) gives its passes. Then::

    seconds = sum(examples * epochs * cost) * F / throughput
              + sum(ceil(examples / batch_size) * epochs) * STEP_SECONDS
    runtime = ceil_to(SETUP_MINUTES + MARGIN * seconds / 60, 5 minutes) * attempt

with ``throughput`` = ``GPU_FLOPS`` (a job holding a GPU), or, when the config's ``device``
is ``cpu``, ``threads`` times the per-thread rate of each kind of operation in the model
(``CPU_FLOPS_PER_THREAD``: matrix products run faster than convolutions, which run faster
than the rest). Host memory::

    bytes  = 16 per pixel of the dataset (both splits: the uint8 artifact, float32
               tensors and their normalisation temporaries; with ``preprocess: model``
               per pixel of the larger of the data's and the model's input size)
             + 16 per parameter (weights, gradients, momentum, a checkpoint)
             [device cpu: + 4 * 3 * batch_size * activations (a training step's layer
              outputs and their gradients) + 4 * 256 * parameters for a stage with
              per-example gradients (those of a 256-example chunk)]
    mem_mb = ceil_to(MEM_MARGIN * (BASE_MB + bytes / 1e6), 1000) * attempt

The constants are deliberately pessimistic: a job that runs out of time or memory is
lost (or resumed from its last checkpoint), one that asks for too much only waits
longer in the queue. Both grow with ``attempt`` (Snakemake's ``--retries``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from ..method.optim import optimizer_state_copies

if TYPE_CHECKING:  # the model's FLOPs need torch: counted when a job's resources are asked
    from .specs import Experiment

__all__ = [
    "EVAL",
    "EVAL_BATCH",
    "GRADSTATS_CHUNK",
    "GRADSTATS_FACTOR",
    "SCORE",
    "TRAIN",
    "ModelCost",
    "Pass",
    "compute_seconds",
    "host_bytes",
    "mem_mb",
    "model_cost",
    "runtime_minutes",
]

# --- constants (see the module docstring for the formula) -----------------------------

TRAIN, EVAL, SCORE = 3.0, 1.0, 2.0
"""Forward-pass equivalents per example: a training step, an evaluation, both sub-networks."""
GRADSTATS_FACTOR = 2.5
"""A step with per-example gradient statistics, in plain steps (measured 2.0-2.2x for the
hook-based MLP/VGG-11 path; more for the torch.func path of the transformer)."""
EVAL_BATCH = 1024
"""Batch size of the scoring and evaluation passes."""
GPU_FLOPS = 2e12
"""Effective FLOP/s of a training job on one GPU. Assumed, not measured: float32 training of
small models with small batches reaches a fraction of a card's peak, and the value is set
low enough for older cards too."""
CPU_FLOPS_PER_THREAD = {
    "matmul": 8e10,
    "convolution": 7e10,
    "narrow_convolution": 2.5e10,
    "other": 1e10,
}
"""Effective FLOP/s per torch thread on a CPU, by the kind of operation the FLOPs are in
(matrix products, convolutions, convolutions that sum over fewer than
:data:`NARROW_CONVOLUTION` inputs per output, the rest: batched products of attention and
anything else). Set a little below what jobs measured on 2 cores of an Intel Xeon and of
an AMD EPYC (2026-12): the MLP-4096's matrix products about 1.0e11, the narrow VGG-11's
convolutions about 3.5e10, a ResNet-18's (64 to 512 channels) about 8e10, the tiny
transformer as a whole about 1.9e10."""
NARROW_CONVOLUTION = 512
"""Inputs per output (input channels per group times the kernel's area) below which a
convolution runs at the ``narrow_convolution`` rate: few channels use a CPU poorly."""
MATMUL_OPS = frozenset({"mm", "addmm", "matmul", "linear"})
CONV_OPS = frozenset({"convolution", "_convolution", "conv2d"})
STEP_SECONDS = 0.004
"""Fixed cost of one batch (Python, kernel launches, masks), whatever its size."""
SETUP_MINUTES = 10.0
"""Start-up (imports, CUDA context, loading the dataset) and writing the artifact."""
MARGIN = 2.0
"""Factor on the estimated compute time."""
BASE_MB = 3000.0
"""Host memory of a Python process with torch, its CUDA libraries and the workflow's."""
MEM_MARGIN = 1.5
"""Factor on the estimated host memory."""
GRADSTATS_CHUNK = 256
"""Examples whose per-example gradients the cosine similarity holds at once."""


@dataclass(frozen=True)
class Pass:
    """``examples`` per epoch for ``epochs`` epochs, ``cost`` forward passes each;
    ``per_example``: the pass holds per-example gradients of a chunk of examples."""

    examples: int
    epochs: int
    cost: float
    batch_size: int
    per_example: bool = False

    @property
    def forwards(self) -> float:
        """Forward-pass equivalents of one example, over all epochs."""
        return self.examples * self.epochs * self.cost

    @property
    def steps(self) -> int:
        """Batches over all epochs."""
        return math.ceil(self.examples / self.batch_size) * self.epochs


@dataclass(frozen=True)
class ModelCost:
    """Size of a model on one example: forward FLOPs, parameters, activations."""

    flops: float
    params: int
    activations: int
    cpu_flops: tuple[tuple[str, float], ...] = ()
    """``flops`` split by kind of operation (the keys of :data:`CPU_FLOPS_PER_THREAD`)."""

    def cpu_seconds_per_flop(self, threads: int = 1) -> float:
        """Seconds per FLOP of this model's mix of operations on ``threads`` CPU threads."""
        if not self.flops:
            return 0.0
        mix = self.cpu_flops or (("other", self.flops),)
        seconds = sum(f / CPU_FLOPS_PER_THREAD[kind] for kind, f in mix)
        return seconds / self.flops / max(1, int(threads))


@cache
def _model_cost(name: str, shape: tuple[int, ...], n_classes: int, options: tuple) -> ModelCost:
    import torch  # heavy dependency: the Snakefile's parse needs none of it
    from torch.utils.flop_counter import FlopCounterMode  # heavy dependency

    from ..method.models.spec import ModelSpec  # heavy dependency: torch

    spec = ModelSpec(name, dict(options), n_classes)
    with torch.device("meta"):
        model = spec.build(shape).eval()  # eval: batch-norm counts one example too
        x = torch.empty(1, *shape)
    outputs: list[int] = []
    narrow = [0.0]  # FLOPs of the narrow convolutions

    def count(module, args, out):
        outputs.append(out.numel() if isinstance(out, torch.Tensor) else 0)
        if isinstance(module, torch.nn.modules.conv._ConvNd) and isinstance(out, torch.Tensor):
            inputs = module.in_channels // module.groups * math.prod(module.kernel_size)
            if inputs < NARROW_CONVOLUTION:
                narrow[0] += 2.0 * out.numel() * inputs

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    params = sum(p.numel() for p in model.parameters())
    by_kind: dict[str, float] = {}
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        op_name = getattr(op, "__name__", str(op)).split(".")[0]
        kind = (
            "matmul" if op_name in MATMUL_OPS else "convolution" if op_name in CONV_OPS else "other"
        )
        by_kind[kind] = by_kind.get(kind, 0.0) + float(flops)
    if by_kind.get("convolution"):
        by_kind["narrow_convolution"] = min(narrow[0], by_kind["convolution"])
        by_kind["convolution"] -= by_kind["narrow_convolution"]
    return ModelCost(
        float(counter.get_total_flops()),
        int(params),
        int(sum(outputs)),
        tuple(sorted(by_kind.items())),
    )


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


#: the input shape of each (model, data shape, options) asked for
_SHAPES: dict[tuple, tuple[int, ...]] = {}


def model_shape(exp: Experiment) -> tuple[int, ...]:
    """The shape (C, H, W) of the images the experiment's model reads: the data's, or
    with ``preprocess: model`` the model's own input size."""
    shape = tuple(int(s) for s in exp.info.shape)
    options = tuple((k, _hashable(v)) for k, v in sorted(exp.model.options.items()))
    key = (exp.model.name, shape, options)
    if key not in _SHAPES:  # the options as given: a dict stays a dict
        from ..method.models import external  # heavy dependency: torch, timm's preprocessing

        pre = external.preprocessing_of(exp.model.name, exp.model.options, shape[0])
        _SHAPES[key] = shape if pre is None else (shape[0], *(int(s) for s in pre.size))
    return _SHAPES[key]


def model_cost(exp: Experiment) -> ModelCost:
    """The experiment's model on the images it reads (:func:`model_shape`), built on the
    meta device (no memory, no compute)."""
    options = tuple((k, _hashable(v)) for k, v in sorted(exp.model.options.items()))
    return _model_cost(exp.model.name, model_shape(exp), len(exp.info.classes), options)


def _ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def compute_seconds(
    passes: list[Pass], exp: Experiment, *, device: str = "auto", threads: int = 1
) -> float:
    """Estimated compute time of a stage's passes, before margin and set-up."""
    cost = model_cost(exp)
    flops = cost.flops * sum(p.forwards for p in passes)
    per_flop = cost.cpu_seconds_per_flop(threads) if device == "cpu" else 1 / GPU_FLOPS
    return flops * per_flop + STEP_SECONDS * sum(p.steps for p in passes)


def runtime_minutes(
    passes: list[Pass],
    exp: Experiment,
    *,
    device: str = "auto",
    threads: int = 1,
    attempt: int = 1,
) -> int:
    """Minutes of wall time to ask for (a multiple of 5), ``attempt`` times the first's."""
    seconds = compute_seconds(passes, exp, device=device, threads=threads)
    return _ceil_to(SETUP_MINUTES + MARGIN * seconds / 60, 5) * max(1, int(attempt))


def host_bytes(passes: list[Pass], exp: Experiment, *, device: str = "auto") -> float:
    """The host memory a job of these passes needs, without any margin (bytes)."""
    info, cost = exp.info, model_cost(exp)
    read = max(math.prod(info.shape), math.prod(model_shape(exp)))  # resized: the larger
    pixels = (info.n_train + info.n_test) * read
    # weights, gradients, one optimizer state copy and the checkpoint's; AdamW's second
    # moment adds one more in memory and in the checkpoint
    extra_state = max(0, optimizer_state_copies(exp.optim) - 1)
    total = 16 * pixels + 16 * cost.params + 8 * extra_state * cost.params
    if device == "cpu":
        total += 4 * 3 * exp.optim.batch_size * cost.activations
        if any(p.per_example for p in passes):
            total += 4 * GRADSTATS_CHUNK * cost.params
    return BASE_MB * 1e6 + total


def mem_mb(passes: list[Pass], exp: Experiment, *, device: str = "auto", attempt: int = 1) -> int:
    """Host memory to ask for in MB (a multiple of 1000), ``attempt`` times the first's."""
    mb = host_bytes(passes, exp, device=device) / 1e6
    return _ceil_to(MEM_MARGIN * mb, 1000) * max(1, int(attempt))
