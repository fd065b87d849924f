"""Standard error of the Feldman-Zhang ground truth per retrained model, by design.

Trains M models of one small problem under each design (random subsets of a fraction,
complementary pairs of halves), then, for K models out of the M, reports:

- ``se``: the mean over examples of the estimate's own standard error (the binomial
  formula of :func:`memorization.trust.truth.memorization_estimate`);
- ``sd``: the spread of the estimate between disjoint groups of K models (the root mean
  over examples of their variance; the measured standard error, no formula);
- ``r_half``: the Spearman correlation of two disjoint groups of K/2 models (split half),
  and the Spearman-Brown reliability of K models, ``2 r / (1 + r)``;
- ``no_est``: the share of examples without an estimate (in or out of every model).

::

    .venv/bin/python benchmarks/truth_design.py --models 128 --hidden 256 --epochs 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from memorization.data.prepare import prepare_dataset
from memorization.data.tensors import to_tensors
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.trust.metrics import spearman, spearman_brown
from memorization.trust.truth import memorization_estimate, train_shard


def _groups(k: int, m: int, pairs: bool) -> list[np.ndarray]:
    """Disjoint groups of k models out of m (whole pairs for the pairs design)."""
    step = 2 if pairs else 1
    return [np.arange(g, g + k) for g in range(0, m - k + 1, k)] if k % step == 0 else []


def _row(in_train, correct, k: int, pairs: bool) -> dict[str, float]:
    groups = _groups(k, len(in_train), pairs)
    ests = [memorization_estimate(in_train[g], correct[g]) for g in groups]
    mem = np.stack([e["memorization"] for e in ests])
    se = float(np.nanmean(np.stack([e["se"] for e in ests])))
    sd = float(np.sqrt(np.nanmean(np.nanvar(mem, 0, ddof=1)))) if len(groups) > 1 else np.nan
    halves = _groups(k // 2, 2 * (k // 2), pairs)
    r = np.nan
    if len(halves) == 2:
        a, b = (memorization_estimate(in_train[h], correct[h])["memorization"] for h in halves)
        r = spearman(a, b)
    return {
        "groups": len(groups),
        "se": se,
        "sd": sd,
        "r_half": r,
        "reliability": spearman_brown(r),
        "no_est": float(np.isnan(mem).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--models", type=int, default=128, help="M models per design")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.06)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = prepare_dataset(args.dataset)
    train = to_tensors(data, "train")
    model = ModelSpec.from_config("mlp", {"hidden": args.hidden}).with_classes(data.sizes["class"])
    opt = OptimSpec(epochs=args.epochs, lr=args.lr, batch_size=256)
    designs = {"random 0.7": ("random", 0.7), "random 0.5": ("random", 0.5),
               "pairs 0.5": ("pairs", 0.5)}  # fmt: skip
    print(f"{args.dataset}: {len(train)} training examples, MLP-{args.hidden}, "
          f"{args.epochs} epochs, {args.models} models per design")  # fmt: skip
    print("| design | K | groups | mean formula SE | SD between groups | split-half Spearman "
          "| Spearman-Brown reliability | no estimate | memorized > 0.25 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for label, (design, fraction) in designs.items():
        start = time.perf_counter()
        ds = train_shard(model, train, None, opt, n_models=args.models, fraction=fraction,
                         seed=0, design=design)  # fmt: skip
        seconds = time.perf_counter() - start
        in_train, correct = ds["in_train"].values, ds["correct"].values
        full = memorization_estimate(in_train, correct)["memorization"]
        memorized = float(np.nanmean(full > 0.25))
        for k in sorted({8, 16, 32, 64, args.models}):
            if k > args.models:
                continue
            r = _row(in_train, correct, k, design == "pairs")
            print(f"| {label} | {k} | {r['groups']} | {r['se']:.4f} | {r['sd']:.4f} | "
                  f"{r['r_half']:.3f} | {r['reliability']:.3f} | {r['no_est']:.4f} | "
                  f"{memorized:.3f} |")  # fmt: skip
        print(f"({label}: {args.models} models trained in {seconds:.0f} s)")


if __name__ == "__main__":
    main()
