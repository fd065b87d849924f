"""The step backend of the one-hidden-layer MLP: batched products over sparse inputs.

The products run over the nonzeros of each input minus its feature's most common value.

Fast when most inputs sit at one value per feature (MNIST: 81 % of the standardised
pixels are the background value). The inputs are split exactly into that per-feature
value ``base`` plus a sparse remainder ``R``: the hidden layer is ``R W^T + base W^T + b``
and its weight gradient ``R^T dZ + base (Σ dZ)``, where the products with ``R`` go
through ``embedding_bag`` over the nonzeros only, and the hidden units in blocks of
``hidden_block`` so a block of weights stays in cache. It computes the same sums as the
dense model in another order (float tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SparseMLPStep", "SparseRows", "input_density"]


def input_density(x: Tensor) -> float:
    """Fraction of entries of ``x`` (flattened rows) that differ from their feature's mode."""
    flat = x.flatten(1)
    return float((flat != torch.mode(flat, dim=0).values).float().mean())


@dataclass
class SparseRows:
    """Rows of a matrix as ``base`` (per feature) plus a sparse remainder, CSR-like."""

    indptr: Tensor  # [n + 1] int64
    feature: Tensor  # [nnz] int64
    value: Tensor  # [nnz] float, the remainder x - base at nonzeros

    @classmethod
    def of(cls, x: Tensor, base: Tensor) -> SparseRows:
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


class SparseMLPStep:
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
        self.train_rows = SparseRows.of(x, self.base)
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

    def _nonzeros(self, rows: SparseRows, flat: Tensor, keep: Tensor | None, n: int):
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
        rows = SparseRows.of(x.flatten(1), self.base)
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
