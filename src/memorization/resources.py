"""Wall time and memory of a training job, estimated from its experiment's size.

The rules that train declare ``runtime`` (minutes, SLURM's ``--time``) and ``mem_mb``
(host memory, ``--mem``) with these functions, so a cluster job asks for what its
experiment needs: a figure job does not wait in the queue for 4 hours and 16 GB, and a
200-epoch VGG-11 is not killed after 4 hours. A profile's ``set-resources`` still
overrides them for one rule.

Work is counted in forward passes of one example (``F`` FLOPs, counted once per model
on the meta device with :mod:`torch.utils.flop_counter`): a training step costs 3 (the
backward pass is about twice the forward), an evaluation 1, scoring both sub-networks
2, a step with per-example gradient statistics ``3 * GRADSTATS_FACTOR`` (scoring counts
every replicate of an experiment that has ``replicates``). A stage is a
list of :class:`Pass` es (examples per epoch, epochs, cost, batch size), with the
epochs and batch size the stage trains with (:class:`memorization.experiment.Experiment`
resolves the studies' overrides); see :data:`STAGE_PASSES` for each stage's. Then::

    seconds = sum(examples * epochs * cost) * F / throughput
              + sum(ceil(examples / batch_size) * epochs) * STEP_SECONDS
    runtime = ceil_to(SETUP_MINUTES + MARGIN * seconds / 60, 5 minutes) * attempt

with ``throughput`` = ``GPU_FLOPS`` (a job holding a GPU), or ``CPU_FLOPS_PER_THREAD *
threads`` when the config's ``device`` is ``cpu``. Host memory::

    bytes  = 16 per pixel of the dataset (both splits: the uint8 artifact, float32
               tensors and their normalisation temporaries)
             + 16 per parameter (weights, gradients, momentum, a checkpoint)
             [device cpu: + 4 * 3 * batch_size * activations (a training step's layer
              outputs and their gradients) + 4 * 256 * parameters for gradstats (the
              per-example gradients of a 256-example chunk)]
    mem_mb = ceil_to(MEM_MARGIN * (BASE_MB + bytes / 1e6), 1000) * attempt

The constants are deliberately pessimistic: a job that runs out of time or memory is
lost (or resumed from its last checkpoint), one that asks for too much only waits
longer in the queue. Both grow with ``attempt`` (Snakemake's ``--retries``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from .experiment import Experiment

__all__ = [
    "STAGE_PASSES",
    "ModelCost",
    "Pass",
    "compute_seconds",
    "mem_mb",
    "model_cost",
    "runtime_minutes",
    "stage_passes",
]

# --- constants (see the module docstring for the formula) -----------------------------

TRAIN, EVAL, SCORE = 3.0, 1.0, 2.0
"""Forward-pass equivalents per example: a training step, an evaluation, both sub-networks."""
GRADSTATS_FACTOR = 4.0
"""A step with per-example gradient statistics, in plain steps (measured 2.0-2.2x for the
hook-based MLP/VGG-11 path; more for the torch.func path of the transformer)."""
EVAL_BATCH = 1024
"""Batch size of the scoring and evaluation passes."""
GPU_FLOPS = 2e12
"""Effective FLOP/s of a training job on one GPU. Assumed, not measured: float32 training of
small models with small batches reaches a fraction of a card's peak, and the value is set
low enough for older cards too."""
CPU_FLOPS_PER_THREAD = 1.5e10
"""Effective FLOP/s per torch thread on a CPU (measured 2-3e10 for the MLP and 1-2e10 for a
narrow VGG-11 on a shared 2-core machine)."""
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
    """``examples`` per epoch for ``epochs`` epochs, ``cost`` forward passes each."""

    examples: int
    epochs: int
    cost: float
    batch_size: int

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


def _experiment(exp: Experiment | Mapping) -> Experiment:
    if isinstance(exp, Experiment):
        return exp
    return Experiment.from_config(str(exp.get("name", "")), exp)


def _dataset(exp: Experiment):
    from .data import DATASETS

    return DATASETS[exp.dataset]


@cache
def _model_cost(name: str, shape: tuple[int, ...], n_classes: int, options: tuple) -> ModelCost:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .models import build_model

    with torch.device("meta"):
        model = build_model(name, shape, n_classes, **dict(options))
        x = torch.empty(1, *shape)
    outputs: list[int] = []

    def count(module, args, out):
        outputs.append(out.numel() if isinstance(out, torch.Tensor) else 0)

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    params = sum(p.numel() for p in model.parameters())
    return ModelCost(float(counter.get_total_flops()), int(params), int(sum(outputs)))


def model_cost(exp: Experiment | Mapping) -> ModelCost:
    """The experiment's model, built on the meta device (no memory, no compute)."""
    exp = _experiment(exp)
    info = _dataset(exp)
    options = tuple(
        (k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(exp.model_options.items())
    )
    return _model_cost(exp.model, tuple(info.shape), len(info.classes), options)


def _score(exp: Experiment, n: int, merge: bool = False, test: bool = False) -> list[Pass]:
    """One turn-over run (train, both sub-networks scored every epoch); with R > 1
    replicates the score job only merges their files. The test split's run takes as many
    steps as the training split's (``Experiment.test_optim``)."""
    if merge and exp.replicates > 1:
        return []
    opt = exp.test_optim() if test else exp.optim
    return [Pass(n, opt.epochs, TRAIN, opt.batch_size), Pass(n, opt.epochs, SCORE, EVAL_BATCH)]


def _estimators(exp: Experiment, info) -> list[Pass]:
    """One plain run, every example's exact gradient norm recorded after every epoch."""
    opt = exp.optim
    return [
        Pass(info.n_train, opt.epochs, TRAIN, opt.batch_size),
        Pass(info.n_train, opt.epochs, TRAIN * GRADSTATS_FACTOR, GRADSTATS_CHUNK),
    ]


def _truth_shard(exp: Experiment, info) -> list[Pass]:
    """This shard's models, each on its fraction of the training set, then evaluated on
    both splits."""
    truth, opt = exp.truth, exp.optim
    models = -(-truth.models // truth.shards)
    trained = int(round(truth.fraction * info.n_train))
    return [
        Pass(trained * models, opt.epochs, TRAIN, opt.batch_size),
        Pass((info.n_train + info.n_test) * models, 1, EVAL, EVAL_BATCH),
    ]


def _influence(exp: Experiment, info) -> list[Pass]:
    """One turn-over run, then both sub-networks of every training example on every test
    example (the MLP's fast path costs far less: an upper bound)."""
    pairs = info.n_train * info.n_test if exp.model != "mlp" else info.n_test * 64
    return _score(exp, info.n_train) + [Pass(pairs, 1, SCORE, EVAL_BATCH)]


def _plain_run(exp: Experiment, study: str, trained: int, evaluated: int) -> list[Pass]:
    opt = exp.study_optim(study)
    return [
        Pass(trained, opt.epochs, TRAIN, opt.batch_size),
        Pass(evaluated, opt.epochs + 1, EVAL, EVAL_BATCH),
    ]


def _dynamics(exp: Experiment, info) -> list[Pass]:
    n, t = info.n_train, info.n_test
    passes = _plain_run(exp, "dynamics", n, n + t)
    if exp.control:  # the same without the difficult subset
        passes += _plain_run(exp, "dynamics", n - int(exp.subset_size or 0), n + t)
    return passes


def _gradstats(exp: Experiment, info) -> list[Pass]:
    opt = exp.study_optim("gradstats")
    probe = 3 * min(int(exp.probe_size or 0), int(exp.subset_size or 0))
    cost = TRAIN * GRADSTATS_FACTOR
    return [
        Pass(info.n_train, opt.epochs, cost, opt.batch_size),
        Pass(probe, opt.epochs, cost, GRADSTATS_CHUNK),
    ]


def _crosstrain(exp: Experiment, info) -> list[Pass]:
    return _plain_run(exp, "crosstrain", int(exp.subset_size or 0), info.n_train) * 2


def _sweep_level(exp: Experiment, info) -> list[Pass]:
    return _plain_run(exp, "sweep", info.n_train, info.n_train + info.n_test)


STAGE_PASSES: dict[str, Callable[[Experiment, object], list[Pass]]] = {
    # turn-over training on the training split, both sub-networks scored every epoch
    "score": lambda exp, info: _score(exp, info.n_train, merge=True),
    # one of R > 1 independent turn-over replicates
    "score_replicate": lambda exp, info: _score(exp, info.n_train),
    # the same on the test split
    "score_test": lambda exp, info: _score(exp, info.n_test, test=True),
    # plain training on all examples (and, with `control`, without the difficult
    # subset), train and test splits evaluated before training and after every epoch
    "dynamics": _dynamics,
    # plain training with per-example gradient statistics, three probes per epoch
    "gradstats": _gradstats,
    # two runs, on the easy and on the difficult subset, the training split evaluated
    "crosstrain": _crosstrain,
    # one plain run at one corruption level, train and test evaluated
    "sweep_level": _sweep_level,
    # one plain run recording every example's loss, correctness and gradient norm
    "estimators": _estimators,
    # a shard of the Feldman-Zhang models
    "truth_shard": _truth_shard,
    # one turn-over run and the influence of every training example on every test one
    "influence": _influence,
}
"""Each training rule's passes over examples, from its experiment and dataset; a new
training rule adds its entry here (``rule -> f(Experiment, DatasetInfo) -> [Pass, ...]``)."""


def stage_passes(stage: str, exp: Experiment | Mapping) -> list[Pass]:
    """The passes over examples that ``stage`` makes for experiment ``exp``."""
    if stage not in STAGE_PASSES:
        raise ValueError(f"no resource estimate for stage {stage!r}; known: {sorted(STAGE_PASSES)}")
    exp = _experiment(exp)
    return STAGE_PASSES[stage](exp, _dataset(exp))


def _ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def compute_seconds(
    stage: str, exp: Experiment | Mapping, *, device: str = "auto", threads: int = 1
) -> float:
    """Estimated compute time of ``stage``, before margin and set-up."""
    passes = stage_passes(stage, exp)
    flops = model_cost(exp).flops * sum(p.forwards for p in passes)
    rate = CPU_FLOPS_PER_THREAD * max(1, int(threads)) if device == "cpu" else GPU_FLOPS
    return flops / rate + STEP_SECONDS * sum(p.steps for p in passes)


def runtime_minutes(
    stage: str,
    exp: Experiment | Mapping,
    *,
    device: str = "auto",
    threads: int = 1,
    attempt: int = 1,
) -> int:
    """Minutes of wall time to ask for (a multiple of 5), ``attempt`` times the first's."""
    seconds = compute_seconds(stage, exp, device=device, threads=threads)
    return _ceil_to(SETUP_MINUTES + MARGIN * seconds / 60, 5) * max(1, int(attempt))


def mem_mb(stage: str, exp: Experiment | Mapping, *, device: str = "auto", attempt: int = 1) -> int:
    """Host memory to ask for in MB (a multiple of 1000), ``attempt`` times the first's."""
    exp = _experiment(exp)
    info, cost = _dataset(exp), model_cost(exp)
    pixels = (info.n_train + info.n_test) * math.prod(info.shape)
    total = 16 * pixels + 16 * cost.params
    if device == "cpu":
        total += 4 * 3 * exp.optim.batch_size * cost.activations
        if stage == "gradstats":
            total += 4 * GRADSTATS_CHUNK * cost.params
    mb = BASE_MB + total / 1e6
    return _ceil_to(MEM_MARGIN * mb, 1000) * max(1, int(attempt))
