"""Turn-over training and scoring cost on a model of your own (torchvision, timm, factory).

The model is built by name as the workflow builds it (``turnover: head`` by default: masks
on the classifier's input), with the plain network (no masks) as the baseline, measured
side by side in one run (only the ratios mean something on a shared machine). Targets:
a turn-over epoch <= 1.15x a plain epoch; scoring every training example through both
sub-networks <= 0.7x a plain epoch.

    python benchmarks/bench_external.py [--model torchvision:resnet18] [--examples 2048]
        [--shape 3 32 32] [--batch-size 128] [--repeats 5] [--threads 1] [--option KEY=VALUE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import score_examples
from memorization.method.training import fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="torchvision:resnet18")
    ap.add_argument(
        "--option",
        action="append",
        default=["small_input=false"],
        help="a model option KEY=VALUE (YAML value); may repeat",
    )
    ap.add_argument("--examples", type=int, default=2048)
    ap.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32])
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    options = dict(o.split("=", 1) for o in args.option)
    options = {k: yaml.safe_load(v) for k, v in options.items()}
    spec = ModelSpec.from_config(args.model, options).with_classes(args.classes)
    g = torch.Generator().manual_seed(0)
    n, shape = args.examples, tuple(args.shape)
    split = TensorSplit(
        torch.randn(n, *shape, generator=g),
        torch.randint(0, args.classes, (n,), generator=g),
        np.arange(n),
    )
    opt = OptimSpec(epochs=1, lr=0.05, momentum=0.9, batch_size=args.batch_size)
    scorer = spec.build(shape, seed=0)
    masks = scorer.turnover_masks(0, split.examples)

    def plain():
        fit(spec.build(shape, turnover=False, seed=0), split, opt, seed=0, progress=False)

    def turnover():
        fit(spec.build(shape, seed=0), split, opt, seed=0, masks=masks, progress=False)

    def scoring():
        score_examples(scorer, split, masks, batch_size=256)

    times: dict[str, list[float]] = {"plain": [], "turnover": [], "scoring": []}
    plain()  # warm-up
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all three
        for name, fn in (("plain", plain), ("turnover", turnover), ("scoring", scoring)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    # the fastest run of each: the least disturbed by other work on a shared machine
    med = {k: min(v) for k, v in times.items()}
    print(
        f"{args.model} {options}, {n} examples of {shape}, batch {args.batch_size}, "
        f"{args.threads} thread(s), fastest of {args.repeats}"
    )
    print(f"  masks: {len(scorer.mask_units)} site(s), {scorer.mask_units} bits")
    for k, v in med.items():
        print(f"  {k:9s} {v:8.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times[k])})")
    print(
        f"turn-over epoch / plain epoch      = {med['turnover'] / med['plain']:.3f}  "
        "(target <= 1.15)"
    )
    print(
        f"scoring all examples / plain epoch = {med['scoring'] / med['plain']:.3f}  "
        "(target <= 0.70)"
    )


if __name__ == "__main__":
    main()
