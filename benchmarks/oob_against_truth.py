"""Measurement: out-of-bag forms and variants against a Feldman-Zhang truth, with
turn-over and CSL at the same data, in one process.

Usage::

    .venv/bin/python benchmarks/oob_against_truth.py               # about 10 min, 1 thread
    .venv/bin/python benchmarks/oob_against_truth.py --truth 32 --epochs 8 --hidden 256

The MLP (``--hidden`` units) on mnist5k's 4,000 training digits, SGD lr 0.06, momentum
0.9, batch 128, ``--epochs`` epochs. The truth: ``--truth`` models, each on a random half
(:func:`memorization.trust.truth.train_shard`, its own seeds), with its split-half
agreement. Then, each on the same data with the same training:

- out-of-bag sub-networks at K in {4, 8, 16} full width, narrow (width 2/K: one run of
  compute in all) and forked (half the epochs as one plain network), every form;
- turn-over (the MLP's own masks, keep 0.5), one run: final and cumulative loss forms;
- CSL (cumulative sample loss) averaged over 1, 2 and 4 plain runs.

Printed per estimator: ROC AUC for truth > 0.25, top-10 % overlap, Spearman, its cost in
plain runs (:func:`memorization.trust.oob.cost_runs`) and its measured seconds.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from memorization.data import prepare_dataset, to_tensors
from memorization.infra.clock import compute_clock
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import train_turnover
from memorization.trust.ensemble import train_ensemble
from memorization.trust.metrics import quality
from memorization.trust.oob import FORMS, OOBSpec, cost_runs, train_oob
from memorization.trust.truth import train_shard, truth_dataset

#: CPU seconds, the clock the out-of-bag artifact's train_seconds are on (it runs on a CPU)
clock = compute_clock("cpu")


def _csl(model, train, opt, runs: int) -> tuple[np.ndarray, float]:
    """Cumulative sample loss averaged over ``runs`` plain runs (end-of-epoch losses)."""
    total = np.zeros(len(train))

    def record(ens, epoch):
        total[:] += ens.predict(train).loss.sum(0)

    start = clock()
    seeds = [1000 + r for r in range(runs)]
    subsets = np.ones((runs, len(train)), dtype=bool)
    train_ensemble(model, train, opt, seeds, subsets, after_epoch=record)
    return total / runs, clock() - start


def _row(name, est, truth, runs, seconds):
    q = quality(est, truth)
    print(f"{name:<34}{q['auc']:>7.3f}{q['top_overlap']:>8.3f}{q['spearman']:>9.3f}"
          f"{runs:>7.2f}{seconds:>9.1f}", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth", type=int, default=48, help="truth models (random halves)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = to_tensors(prepare_dataset("mnist5k"), "train")
    model = ModelSpec.from_config("mlp", {"hidden": args.hidden}).with_classes(10)
    opt = OptimSpec(epochs=args.epochs, lr=0.06, momentum=0.9, batch_size=128)
    start = clock()
    merged = train_shard(model, train, None, opt, n_models=args.truth, fraction=0.5, seed=99)
    truth_ds = truth_dataset(merged)
    truth = truth_ds["memorization"].values
    half = truth_ds["memorization_half"].values
    print(f"MLP-{args.hidden}, {len(train)} digits, {args.epochs} epochs; truth {args.truth} "
          f"models in {clock() - start:.0f} s, {(truth > 0.25).sum()} examples "
          f"> 0.25; torch {torch.__version__}, {args.threads} thread(s)")  # fmt: skip
    print(f"{'estimator':<34}{'AUC':>7}{'top10%':>8}{'Spearman':>9}{'runs':>7}{'seconds':>9}")
    _row("truth half vs other half", half[0], half[1], args.truth / 4, 0)
    variants = [(f"oob K{k}", OOBSpec(k), 1.0) for k in (4, 8, 16)]
    variants += [(f"oob K{k} narrow", OOBSpec(k, width=2 / k), 2 / k) for k in (8, 16)]
    variants += [("oob K8 fork0.5", OOBSpec(8, fork=0.5), 1.0)]
    for name, spec, flops in variants:
        out = train_oob(model, train, opt, spec, seed=0)
        runs = cost_runs(spec, opt.epochs, flops)
        for form in FORMS:
            est = out[f"oob_{form}"].values
            _row(f"{name} {form}", est, truth, runs, out.attrs["train_seconds"])
    tmodel = ModelSpec.from_config("mlp", {"hidden": args.hidden}).with_classes(10)
    t0 = clock()
    run = train_turnover(tmodel, train, opt, seed=0, progress=False)
    seconds = clock() - t0
    _row("turnover R1 loss", run.final["memorization"], truth, 1.67, seconds)
    _row("turnover R1 cumulative", run.cumulative["cumulative_memorization"], truth, 1.67, seconds)
    for runs in (1, 2, 4):
        est, seconds = _csl(model, train, opt, runs)
        _row(f"CSL over {runs} runs", est, truth, runs * (1 + 1 / 3), seconds)


if __name__ == "__main__":
    main()
