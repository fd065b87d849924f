"""K plain models trained at once as one vectorised ensemble.

Model ``k`` of an ensemble is exactly what :func:`train_sequential` (the
ordinary :func:`memorization.method.training.fit` loop) makes from the same three
things, to float tolerance:

- its initialisation: ``model.build(in_shape, turnover=False, seed=seeds[k])``;
- its training subset: the rows where ``subsets[k]`` (boolean over the training
  rows) is true, passed to ``fit`` as ``positions``;
- its batch order: every epoch a ``torch.randperm`` of its subset drawn from a
  generator seeded with ``seeds[k] + 1``, as ``fit`` draws it,

and the optimizer of :class:`~memorization.method.optim.OptimSpec` on the
mean cross-entropy of each batch: SGD with momentum and weight decay, or AdamW
(bias-corrected moments, decoupled weight decay), as ``torch.optim.SGD`` and
``torch.optim.AdamW`` do it, after clipping each model's gradient by its own global
norm where ``clip_norm`` says so; the learning rate of each epoch is
:func:`~memorization.method.optim.epoch_lr` (the step, cosine and warm-up schedules).

All models take their ``s``-th step together. Subsets of equal size (as
:func:`memorization.trust.truth.draw_subsets` draws them: exactly ``round(fraction *
N)`` rows each) give every model the same number of batches of the same sizes.
Subsets of different sizes work too: the batches of a step are padded to the
longest with rows of weight 0, and a model whose epoch has fewer batches sits
the extra steps out (no update, its momentum or moments and its step count untouched).

How a step is computed (``path``):

- ``"func"``: any model, through ``torch.func``: the models' parameters stacked
  (``stack_module_state``) and the per-model gradient of the batch loss from
  ``vmap(grad(functional_call))``.
- ``"sparse_mlp"``: the one-hidden-layer :class:`~memorization.method.models.mlp.MLP` with
  hand-written batched products, fast when most inputs sit at one value per
  feature (MNIST: 81 % of the standardised pixels are the background value).
  The inputs are split exactly into that per-feature value ``base`` plus a
  sparse remainder ``R``: the hidden layer is ``R W^T + base W^T + b`` and its
  weight gradient ``R^T dZ + base (Σ dZ)``, where the products with ``R`` go
  through ``embedding_bag`` over the nonzeros only, and the hidden units in
  blocks of ``hidden_block`` so a block of weights stays in cache. It computes
  the same sums as the dense model in another order (float tolerance).
- ``"auto"``: ``"sparse_mlp"`` for an MLP whose training inputs are at most
  :data:`SPARSE_DENSITY` nonzero after removing ``base``, else ``"func"``.

VGG-11 and the CCT run through ``"func"`` (``vmap`` turns their convolutions
into grouped ones and their attention into batched attention).
"""

from __future__ import annotations

import copy
import logging
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, stack_module_state, vmap
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..data.tensors import TensorSplit
from ..method.models.mlp import MLP
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec, epoch_lr
from ..method.precision import autocast
from ..method.training import fit

__all__ = [
    "PATHS",
    "SPARSE_DENSITY",
    "Ensemble",
    "Predictions",
    "batch_order",
    "build_models",
    "default_chunk",
    "input_density",
    "predict_split",
    "train_ensemble",
    "train_in_chunks",
    "train_sequential",
]

log = logging.getLogger(__name__)

PATHS = ("auto", "func", "sparse_mlp")

#: ``path="auto"`` takes the sparse MLP path when at most this fraction of the training
#: inputs differ from their feature's most common value
SPARSE_DENSITY = 0.35


def batch_order(seed: int) -> torch.Generator:
    """The generator of a model's batch order: the one :func:`~memorization.method.training.fit`
    seeds with ``seed + 1``."""
    return torch.Generator().manual_seed(int(seed) + 1)


def build_models(
    model: ModelSpec, in_shape: Sequence[int], seeds: Sequence[int]
) -> list[nn.Module]:
    """One freshly initialised plain model per seed (seeded first)."""
    return [model.build(tuple(in_shape), turnover=False, seed=int(seed)) for seed in seeds]


def _check_subsets(subsets: np.ndarray, n_models: int, n_rows: int) -> np.ndarray:
    subsets = np.asarray(subsets, dtype=bool)
    if subsets.shape != (n_models, n_rows):
        raise ValueError(f"subsets must be [{n_models}, {n_rows}] booleans, got {subsets.shape}")
    empty = np.flatnonzero(~subsets.any(axis=1))
    if len(empty):
        raise ValueError(f"models {empty.tolist()} have an empty training subset")
    return subsets


# --------------------------------------------------------------------------- sequential
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
    subsets = _check_subsets(subsets, len(seeds), len(train))
    device = train.x.device
    models = []
    for seed, subset in zip(seeds, subsets, strict=True):
        (net,) = build_models(model, train.x.shape[1:], [seed])
        net = net.to(device)
        positions = torch.from_numpy(np.flatnonzero(subset))
        fit(net, train, opt, seed=int(seed), positions=positions, progress=progress)
        models.append(net)
    return models


# --------------------------------------------------------------------------- optimizer
@dataclass
class _Stacked:
    """The optimizer of an :class:`~memorization.method.optim.OptimSpec` on stacked
    [K, ...] tensors: ``torch.optim.SGD`` (dampening 0, no Nesterov) or
    ``torch.optim.AdamW``, after ``clip_grad_norm_`` of each model's own gradient."""

    opt: OptimSpec

    def __post_init__(self) -> None:
        self.buffers: list[Tensor] | None = None  # SGD momentum, or Adam's first moments
        self.second: list[Tensor] | None = None  # Adam's second moments
        self.steps: Tensor | None = None  # [K] steps each model took (Adam)

    def step(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        lr: float,
        active: Tensor | None,
        model_dim: int = 0,
    ) -> None:
        """One update of every model; ``active`` [K] bool (None: all) says which take it.

        The models are indexed along ``model_dim`` of every tensor. A model that sits
        the step out keeps its parameters, its momentum or moments and its step count.
        """
        k = params[0].shape[model_dim]

        def per_model(v: Tensor, like: Tensor) -> Tensor:  # [K] broadcast along model_dim
            shape = [1] * like.dim()
            shape[model_dim] = k
            return v.view(shape)

        def select(new: Tensor, old: Tensor) -> Tensor:
            return new if active is None else torch.where(per_model(active, new), new, old)

        if self.opt.clip_norm is not None:
            grads = _clip(grads, self.opt.clip_norm, model_dim, per_model)
        if self.opt.optimizer == "adamw":
            self._adamw(params, grads, lr, active, k, per_model, select)
        else:
            self._sgd(params, grads, lr, select)

    def _sgd(self, params, grads, lr, select) -> None:
        momentum, decay = self.opt.momentum, self.opt.weight_decay
        if decay:
            grads = [g.add(p, alpha=decay) for g, p in zip(grads, params, strict=True)]
        if momentum:
            first = self.buffers is None
            if first:
                self.buffers = [torch.zeros_like(g) for g in grads]
            for buf, g in zip(self.buffers, grads, strict=True):
                new = g if first else buf.mul(momentum).add_(g)
                buf.copy_(select(new, buf))
            grads = self.buffers
        for p, g in zip(params, grads, strict=True):
            p.add_(select(g, torch.zeros_like(g)), alpha=-lr)

    def _adamw(self, params, grads, lr, active, k, per_model, select) -> None:
        beta1, beta2 = self.opt.betas
        if self.buffers is None:
            self.buffers = [torch.zeros_like(p) for p in params]
            self.second = [torch.zeros_like(p) for p in params]
            self.steps = torch.zeros(k, dtype=torch.float64, device=params[0].device)
        self.steps += 1 if active is None else active.to(self.steps.dtype)
        t = self.steps.clamp(min=1)  # a model yet to take a step: any value, it is not used
        step_size = (lr / (1 - beta1**t)).to(params[0].dtype)
        root2 = (1 - beta2**t).sqrt().to(params[0].dtype)
        for p, g, m, v in zip(params, grads, self.buffers, self.second, strict=True):
            m.copy_(select(m.lerp(g, 1 - beta1), m))
            v.copy_(select(v.mul(beta2).addcmul_(g, g, value=1 - beta2), v))
            denom = (v.sqrt() / per_model(root2, p)).add_(self.opt.eps)
            new = p.mul(1 - lr * self.opt.weight_decay).sub_(m * per_model(step_size, p) / denom)
            p.copy_(select(new, p))


def _clip(grads: list[Tensor], max_norm: float, model_dim: int, per_model) -> list[Tensor]:
    """Each model's gradient scaled to a global norm of at most ``max_norm``, as
    ``clip_grad_norm_`` scales one model's (the norm over all its tensors)."""
    norms = torch.stack(
        [torch.linalg.vector_norm(g.movedim(model_dim, 0).flatten(1), dim=1) for g in grads]
    )
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    return [g * per_model(coef, g) for g in grads]


# --------------------------------------------------------------------------- steps
class _FuncStep:
    """Batch gradients of all models through ``vmap(grad(functional_call))``; with a
    mixed ``precision`` the forward and the loss run under autocast, the stacked
    parameters and the optimizer's state stay float32."""

    name = "func"
    model_dim = 0

    def __init__(
        self, models: list[nn.Module], x_train: Tensor, y_train: Tensor, precision: str = "fp32"
    ) -> None:
        self.template = copy.deepcopy(models[0]).to("meta")
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self.x, self.y = x_train, y_train

        def loss_one(p, b, x, y, w):
            with autocast(precision, x.device):  # fp32: no autocast at all
                logits = functional_call(self.template, (p, b), (x,))
                return (F.cross_entropy(logits, y, reduction="none") * w).sum()

        def logits_one(p, b, x):
            with autocast(precision, x.device):
                return functional_call(self.template, (p, b), (x,))

        self._grad = vmap(grad(loss_one))
        self._logits = vmap(logits_one, in_dims=(0, 0, None))

    def tensors(self) -> list[Tensor]:
        return list(self.params.values())

    def gradients(self, rows: Tensor, weights: Tensor) -> list[Tensor]:
        g = self._grad(self.params, self.buffers, self.x[rows], self.y[rows], weights)
        return [g[k] for k in self.params]

    def logits(self, x: Tensor) -> Tensor:
        return self._logits(self.params, self.buffers, x)

    def state_dicts(self) -> list[dict[str, Tensor]]:
        k = next(iter(self.params.values())).shape[0]
        both = {**self.params, **self.buffers}
        return [{n: v[i].clone() for n, v in both.items()} for i in range(k)]


@dataclass
class _SparseRows:
    """Rows of a matrix as ``base`` (per feature) plus a sparse remainder, CSR-like."""

    indptr: Tensor  # [n + 1] int64
    feature: Tensor  # [nnz] int64
    value: Tensor  # [nnz] float, the remainder x - base at nonzeros

    @classmethod
    def of(cls, x: Tensor, base: Tensor) -> _SparseRows:
        resid = x - base
        nz = resid != 0
        counts = nz.sum(1)
        indptr = torch.zeros(len(x) + 1, dtype=torch.int64, device=x.device)
        indptr[1:] = torch.cumsum(counts, 0)
        rows, feature = nz.nonzero(as_tuple=True)
        return cls(indptr, feature, resid[rows, feature])

    def gather(self, rows: Tensor, keep: Tensor | None = None):
        """Nonzeros of ``rows`` (flat, in row order; rows where ``keep`` is false have none):
        (position of their row in ``rows``, feature, value) and each row's count."""
        lengths = self.indptr[rows + 1] - self.indptr[rows]
        if keep is not None:
            lengths = lengths * keep
        total = int(lengths.sum())
        pos = torch.repeat_interleave(
            torch.arange(len(lengths), device=lengths.device), lengths, output_size=total
        )
        first = torch.cumsum(lengths, 0) - lengths
        src = (self.indptr[rows] - first)[pos] + torch.arange(total, device=lengths.device)
        return pos, self.feature[src], self.value[src], lengths


class _SparseMLPStep:
    """Batch gradients of K one-hidden-layer MLPs from the inputs' nonzeros.

    The hidden units are cut into ``nb`` blocks of ``blk``; block ``j`` of all K models
    is held as ``w1[j]`` [K, D, blk] (hidden weights, transposed), ``b1[j]`` [K, blk]
    and ``w2[j]`` [K, C, blk] (output weights). A step runs block by block, so one
    block's weights and activations stay in cache.
    """

    name = "sparse_mlp"
    model_dim = 0

    def __init__(
        self,
        models: list[nn.Module],
        x_train: Tensor,
        y_train: Tensor,
        hidden_block: int,
        base: Tensor | None = None,
    ) -> None:
        h, d = models[0].hidden.weight.shape
        self.k, self.d, self.h = len(models), d, h
        self.c = models[0].output.weight.shape[0]
        self.blk = _block_size(h, hidden_block)
        x = x_train.flatten(1)
        self.base = torch.mode(x, dim=0).values if base is None else base
        self.train_rows = _SparseRows.of(x, self.base)
        self._base_column = self.base[None, :, None].expand(self.k, d, 1)
        self.y = y_train
        w1 = torch.stack([m.hidden.weight.detach() for m in models]).mT  # K, D, H
        b1 = torch.stack([m.hidden.bias.detach() for m in models])  # K, H
        w2 = torch.stack([m.output.weight.detach() for m in models])  # K, C, H
        cut = range(0, h, self.blk)
        self.w1 = [w1[:, :, j : j + self.blk].contiguous() for j in cut]
        self.b1 = [b1[:, j : j + self.blk].contiguous() for j in cut]
        self.w2 = [w2[:, :, j : j + self.blk].contiguous() for j in cut]

    def tensors(self) -> list[Tensor]:
        return [*self.w1, *self.b1, *self.w2]

    def _forward(self, nonzeros, n: int) -> tuple[list[Tensor], Tensor]:
        """Hidden activations per block [K, n, blk] and logits [K, n, C].

        ``nonzeros`` = (bag, model, feature, value, lengths) of the K·n rows, model k's
        row i being bag k·n + i.
        """
        _, model, feature, value, lengths = nonzeros
        index = feature + self.d * model
        offsets = torch.cumsum(lengths, 0) - lengths
        hidden, logits = [], None
        for w1, b1, w2 in zip(self.w1, self.b1, self.w2, strict=True):
            z = F.embedding_bag(
                index,
                w1.view(-1, self.blk),
                offsets,
                mode="sum",
                per_sample_weights=value,
            ).view(self.k, n, self.blk)
            const = torch.matmul(self.base, w1).add_(b1)
            h = z.add_(const[:, None, :]).relu_()
            out = torch.bmm(h, w2.mT)
            logits = out if logits is None else logits.add_(out)
            hidden.append(h)
        return hidden, logits

    def _nonzeros(self, rows: _SparseRows, flat: Tensor, keep: Tensor | None, n: int):
        bag, feature, value, lengths = rows.gather(flat, keep)
        per_model = lengths.view(self.k, n).sum(1)
        model = torch.repeat_interleave(
            torch.arange(self.k, device=flat.device), per_model, output_size=len(feature)
        )
        return bag, model, feature, value, lengths

    def gradients(self, rows: Tensor, weights: Tensor) -> list[Tensor]:
        k, d, n = self.k, self.d, rows.shape[1]
        nonzeros = self._nonzeros(self.train_rows, rows.reshape(-1), weights.reshape(-1) != 0, n)
        hidden, logits = self._forward(nonzeros, n)
        g = torch.softmax(logits, dim=-1)
        g.scatter_add_(-1, self.y[rows][..., None], g.new_full((k, n, 1), -1.0))
        g.mul_(weights[..., None])
        # the hidden weights' gradient R^T dZ sums over the nonzeros grouped by
        # (model, feature); the base adds base ⊗ Σ_i dZ_i
        bag, model, feature, value, _ = nonzeros
        key = (model * d + feature).to(torch.int32)
        order = torch.sort(key, stable=True).indices
        counts = torch.bincount(key, minlength=k * d)
        offsets = torch.cumsum(counts, 0) - counts
        index, value = bag[order], value[order]
        dw1, db1, dw2 = [], [], []
        for h, w2 in zip(hidden, self.w2, strict=True):
            dw2.append(torch.bmm(g.mT, h))
            dz = torch.ops.aten.threshold_backward(torch.bmm(g, w2), h, 0)  # ReLU'
            db = dz.sum(1)
            dw = F.embedding_bag(
                index, dz.view(-1, self.blk), offsets, mode="sum", per_sample_weights=value
            ).view(k, d, self.blk)
            dw1.append(dw.baddbmm_(self._base_column, db[:, None, :]))
            db1.append(db)
        return [*dw1, *db1, *dw2]

    def logits(self, x: Tensor) -> Tensor:
        n = len(x)
        rows = _SparseRows.of(x.flatten(1), self.base)
        tiled = torch.arange(n, device=x.device).repeat(self.k)
        return self._forward(self._nonzeros(rows, tiled, None, n), n)[1]

    def state_dicts(self) -> list[dict[str, Tensor]]:
        w1 = torch.cat(self.w1, 2).mT  # K, H, D
        b1 = torch.cat(self.b1, 1)
        w2 = torch.cat(self.w2, 2)
        return [
            {
                "hidden.weight": w1[i].clone(),
                "hidden.bias": b1[i].clone(),
                "output.weight": w2[i].clone(),
            }
            for i in range(self.k)
        ]


def _block_size(hidden: int, wanted: int) -> int:
    """The largest divisor of ``hidden`` that is at most ``wanted``."""
    for blk in range(min(wanted, hidden), 0, -1):
        if hidden % blk == 0:
            return blk
    return hidden


def input_density(x: Tensor) -> float:
    """Fraction of entries of ``x`` (flattened rows) that differ from their feature's mode."""
    flat = x.flatten(1)
    return float((flat != torch.mode(flat, dim=0).values).float().mean())


def _resolve_path(path: str, models: list[nn.Module], x: Tensor) -> str:
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}; known: {PATHS}")
    is_mlp = type(models[0]) is MLP
    if path == "sparse_mlp" and not is_mlp:
        raise ValueError(f"path 'sparse_mlp' needs the MLP, got {type(models[0]).__name__}")
    if path == "auto":
        path = "sparse_mlp" if is_mlp and input_density(x) <= SPARSE_DENSITY else "func"
    return path


# --------------------------------------------------------------------------- ensemble
@dataclass
class Predictions:
    """Every model's view of some examples: ``correct`` (bool) and ``prob`` (float32, the
    probability of the example's label), both [K, n], and ``loss`` (its cross-entropy)."""

    correct: np.ndarray
    prob: np.ndarray
    loss: np.ndarray


class Ensemble:
    """K trained plain models of one architecture held as stacked parameters."""

    def __init__(self, template: nn.Module, step) -> None:
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


def _precision_path(path: str, precision: str) -> str:
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


def train_ensemble(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seeds: Sequence[int],
    subsets: np.ndarray,
    *,
    path: str = "auto",
    hidden_block: int = 128,
    progress: bool = False,
    desc: str = "ensemble",
    after_epoch: Callable[[Ensemble, int], None] | None = None,
    start: Mapping[str, Tensor] | None = None,
    epochs: tuple[int, int] | None = None,
) -> Ensemble:
    """Train ``len(seeds)`` models together (see the module docstring); returns the ensemble.

    ``subsets`` [K, N] says which rows of ``train`` each model trains on;
    ``after_epoch(ensemble, epoch)`` (1-based) is called after every epoch, e.g. to record
    every model's predictions along training (it must not change the models). The models,
    their momentum and their activations are held at once: train large K in chunks
    (:func:`train_in_chunks`). ``start`` (a plain model's ``state_dict``): every model
    starts from it instead of its own initialisation (branches of a forked run);
    ``epochs`` = (e0, e1): train only epochs [e0, e1) of ``opt``'s schedule.
    """
    subsets = _check_subsets(subsets, len(seeds), len(train))
    device = train.x.device
    models = [m.to(device) for m in build_models(model, train.x.shape[1:], seeds)]
    for m in models if start is not None else ():
        m.load_state_dict(start)
    path = _resolve_path(_precision_path(path, opt.precision), models, train.x)
    if path == "sparse_mlp":
        step = _SparseMLPStep(models, train.x, train.y, hidden_block)
    else:
        step = _FuncStep(models, train.x, train.y, opt.precision)
    template = copy.deepcopy(models[0])
    del models
    ensemble = Ensemble(template, step)
    optimizer = _Stacked(opt)
    positions = [torch.from_numpy(np.flatnonzero(s)).to(device) for s in subsets]
    generators = [batch_order(s) for s in seeds]
    bar = tqdm(
        range(*(epochs or (0, opt.epochs))),
        desc=desc,
        unit="epoch",
        disable=not progress,
        file=sys.stderr,
        ascii=True,
    )
    for epoch in bar:
        lr = epoch_lr(opt, epoch)
        for rows, weights, active in _epoch_batches(positions, generators, opt.batch_size):
            grads = step.gradients(rows, weights)
            optimizer.step(step.tensors(), grads, lr, active, step.model_dim)
        log.info("%s epoch %d/%d lr %.4g", desc, epoch + 1, opt.epochs, lr)
        if after_epoch is not None:
            after_epoch(ensemble, epoch + 1)
    return ensemble


def _epoch_batches(
    positions: list[Tensor], generators: list[torch.Generator], batch_size: int
) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
    """One epoch's steps: (rows [K, b], weights [K, b], active [K] or None).

    Model k's batches are ``fit``'s: its positions in a fresh random order, cut into
    ``batch_size`` pieces. ``weights`` is 1/len(batch) on a model's rows and 0 on padding.
    """
    device = positions[0].device
    orders = [
        pos[torch.randperm(len(pos), generator=g).to(device)]
        for pos, g in zip(positions, generators, strict=True)
    ]
    sizes = [len(o) for o in orders]
    n_steps = max(math.ceil(s / batch_size) for s in sizes)
    equal = len(set(sizes)) == 1
    if equal:
        stacked = torch.stack(orders)
    for s in range(n_steps):
        lo = s * batch_size
        if equal:
            rows = stacked[:, lo : lo + batch_size]
            weights = torch.full(rows.shape, 1.0 / rows.shape[1], device=device)
            yield rows, weights, None
            continue
        pieces = [o[lo : lo + batch_size] for o in orders]
        width = max(len(p) for p in pieces)
        rows = torch.zeros(len(pieces), width, dtype=torch.int64, device=device)
        weights = torch.zeros(len(pieces), width, device=device)
        for k, p in enumerate(pieces):
            rows[k, : len(p)] = p
            if len(p):
                weights[k, : len(p)] = 1.0 / len(p)
        active = torch.tensor([len(p) > 0 for p in pieces], device=device)
        yield rows, weights, None if bool(active.all()) else active


def default_chunk(model: ModelSpec, opt: OptimSpec, budget_mib: float = 128) -> int:
    """Models per chunk so that a step's activations stay near ``budget_mib``
    (MLP: about four [K, batch, hidden] float tensors; other models: 8)."""
    if model.name != "mlp":
        return 8
    hidden = int(model.options.get("hidden", 4096))
    per_model = 4 * opt.batch_size * hidden * 4 / 2**20
    return max(1, int(budget_mib // per_model))


def train_in_chunks(
    model: ModelSpec,
    train: TensorSplit,
    opt: OptimSpec,
    seeds: Sequence[int],
    subsets: np.ndarray,
    evaluate: Callable[[Ensemble, int], None],
    *,
    chunk_size: int | None = None,
    path: str = "auto",
    hidden_block: int = 128,
    progress: bool = False,
    after_epoch: Callable[[Ensemble, int, int], None] | None = None,
) -> None:
    """Train the models ``chunk_size`` at a time and call ``evaluate(ensemble, k0)`` on
    each chunk (models ``k0 .. k0 + len(ensemble)``) before dropping it;
    ``after_epoch(ensemble, k0, epoch)`` after every epoch of each chunk."""
    subsets = np.asarray(subsets, dtype=bool)
    if chunk_size is None:
        chunk_size = default_chunk(model, opt)
    for k0 in range(0, len(seeds), chunk_size):
        k1 = min(k0 + chunk_size, len(seeds))
        ens = train_ensemble(
            model,
            train,
            opt,
            seeds[k0:k1],
            subsets[k0:k1],
            path=path,
            hidden_block=hidden_block,
            progress=progress,
            desc=f"ensemble models {k0}-{k1 - 1}",
            after_epoch=None if after_epoch is None else partial(_at_chunk, after_epoch, k0),
        )
        evaluate(ens, k0)


def _at_chunk(after_epoch, k0: int, ensemble: Ensemble, epoch: int) -> None:
    after_epoch(ensemble, k0, epoch)


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
