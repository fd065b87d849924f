"""Turn-over training and scoring cost against plain training, on the paper's MLP.

Measured side by side in one run (these machines are shared and noisy: only the
ratios mean something). Targets: a turn-over epoch <= 1.10x a plain epoch;
scoring every training example through both sub-networks <= 0.6x a plain epoch.

    python benchmarks/bench_turnover.py [--examples 60000] [--hidden 4096] [--repeats 3]
                                        [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from memorization.data import TensorSplit
from memorization.method.masks import TurnOverMasks
from memorization.method.models.mlp import MLP
from memorization.method.optim import OptimSpec
from memorization.method.scoring import score_examples
from memorization.method.training import fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=60000)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu", help="cpu or cuda (timed with synchronisation)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = args.examples
    split = TensorSplit(
        torch.randn(n, 1, 28, 28, generator=g),
        torch.randint(0, 10, (n,), generator=g),
        np.arange(n),
    ).to(device)
    opt = OptimSpec(epochs=1, lr=0.06, batch_size=args.batch_size)
    t0 = time.perf_counter()
    masks = TurnOverMasks(0, [args.hidden], split.examples, device)
    bank_s = time.perf_counter() - t0

    def plain():
        model = MLP((1, 28, 28), 10, hidden=args.hidden).to(device)
        fit(model, split, opt, seed=0, progress=False)

    def turnover():
        model = MLP((1, 28, 28), 10, hidden=args.hidden).to(device)
        fit(model, split, opt, seed=0, masks=masks, progress=False)

    scoring_model = MLP((1, 28, 28), 10, hidden=args.hidden).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def scoring():
        score_examples(scoring_model, split, masks, batch_size=1024)

    times: dict[str, list[float]] = {"plain": [], "turnover": [], "scoring": []}
    plain()  # warm-up
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all three
        for name, fn in (("plain", plain), ("turnover", turnover), ("scoring", scoring)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"MLP 784-{args.hidden}-10, {n} examples, batch {args.batch_size}, {device}, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    print(f"  mask bank for {n} examples: {bank_s:.2f} s (once per run)")
    for k, v in med.items():
        print(f"  {k:9s} {v:8.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times[k])})")
    print(
        f"turn-over epoch / plain epoch     = {med['turnover'] / med['plain']:.3f}  "
        "(target <= 1.10)"
    )
    print(
        f"scoring all examples / plain epoch = {med['scoring'] / med['plain']:.3f}  "
        "(target <= 0.60)"
    )


if __name__ == "__main__":
    main()
