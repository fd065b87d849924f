"""Mixed precision and channels-last against fp32: a turn-over epoch, a scoring pass and
a gradient-statistics step, side by side in one run.

Each case runs in fp32 and in the mixed precisions asked for (bf16 on a CPU with bf16
kernels; bf16 and fp16 on a GPU), interleaved so that drifts in the machine's load hit
all of them; the table gives the median time and its ratio to fp32 of the same case.

    python benchmarks/bench_precision.py [--examples 8000] [--hidden 4096] [--repeats 3]
        [--vgg-examples 2000] [--vgg-width 0.5] [--precisions bf16] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.precision import autocast_forward, supports
from memorization.method.scoring import score_examples
from memorization.method.training import fit
from memorization.studies.per_example import contributions


def _split(n: int, shape: tuple[int, ...], device, seed: int = 0) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    return TensorSplit(x, torch.randint(0, 10, (n,), generator=g), np.arange(n)).to(device)


def _cases(args, device) -> dict[str, Callable[[str, bool], Callable[[], None]]]:
    """case -> (precision, channels_last) -> a function that runs it once."""
    mlp = ModelSpec.from_config("mlp", {"hidden": args.hidden}).with_classes(10)
    vgg = ModelSpec.from_config("vgg11", {"width": args.vgg_width}).with_classes(10)
    digits = _split(args.examples, (1, 28, 28), device)
    images = _split(args.vgg_examples, (3, 32, 32), device, seed=1)

    def epoch(spec, split):
        def make(precision, channels_last):
            opt = OptimSpec(1, 0.05, batch_size=args.batch_size, momentum=0.9)
            opt = OptimSpec(**{**vars(opt), "precision": precision, "channels_last": channels_last})
            net = spec.build(tuple(split.x.shape[1:]), seed=0).to(device)
            masks = net.turnover_masks(0, split.examples, device)
            return lambda: fit(net, split, opt, seed=0, masks=masks, progress=False)

        return make

    def scoring(precision, channels_last):
        net = mlp.build((1, 28, 28), seed=0).to(device)
        masks = net.turnover_masks(0, digits.examples, device)
        return lambda: score_examples(net, digits, masks, 1024, precision=precision)

    def gradstats(precision, channels_last):
        net = mlp.build((1, 28, 28), turnover=False, seed=0).to(device)
        x, y = digits.x[: args.batch_size], digits.y[: args.batch_size]
        # mixed precision takes the per-example (func) method; fp32 the default's hooks
        method = "hooks" if precision == "fp32" else "func"
        mixed = autocast_forward(net, precision, device)
        return lambda: contributions(mixed, x, y, method=method)

    def gradstats_func(precision, channels_last):
        net = mlp.build((1, 28, 28), turnover=False, seed=0).to(device)
        x, y = digits.x[: args.batch_size], digits.y[: args.batch_size]
        mixed = autocast_forward(net, precision, device)
        return lambda: contributions(mixed, x, y, method="func")

    return {
        f"turn-over epoch, MLP 784-{args.hidden}-10, {args.examples} digits": epoch(mlp, digits),
        f"turn-over epoch, VGG-11 width {args.vgg_width}, {args.vgg_examples} 32x32 images": epoch(
            vgg, images
        ),
        f"scoring pass (both sub-networks), MLP-{args.hidden}, {args.examples} digits": scoring,
        f"gradient statistics step, MLP-{args.hidden}, batch {args.batch_size} "
        "(fp32: hooks; mixed: func)": gradstats,
        f"gradient statistics step, MLP-{args.hidden}, batch {args.batch_size}, "
        "func in both": gradstats_func,
    }


def _variants(case: str, precisions: list[str], device) -> list[tuple[str, bool]]:
    out = [("fp32", False)] + [(p, False) for p in precisions]
    if "VGG" in case:  # the layout only matters for convolutions
        out += [("fp32", True)] + [(p, True) for p in precisions]
    return out


def _time(fn: Callable[[], None], device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=8000)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--vgg-examples", type=int, default=2000)
    ap.add_argument("--vgg-width", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--precisions", nargs="+", default=None, help="default: bf16 (+fp16 on CUDA)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (timed with synchronisation)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    wanted = args.precisions or (["bf16", "fp16"] if device.type == "cuda" else ["bf16"])
    precisions = [p for p in wanted if supports(p, device)]
    for p in sorted(set(wanted) - set(precisions)):
        print(f"skipped: {p} (no native {p} kernels on this {device.type})")
    print(f"{device}, {args.threads} threads, median of {args.repeats} (after a warm-up)")
    print(f"{'case':<78} {'arithmetic':<22} {'time':>9} {'/ fp32':>7}")
    for case, make in _cases(args, device).items():
        runs = {v: make(*v) for v in _variants(case, precisions, device)}
        times: dict[tuple[str, bool], list[float]] = {v: [] for v in runs}
        for fn in runs.values():
            fn()  # warm-up (oneDNN picks its kernels on the first call)
        for _ in range(args.repeats):
            for v, fn in runs.items():
                times[v].append(_time(fn, device))
        med = {v: statistics.median(t) for v, t in times.items()}
        for (precision, layout), t in med.items():
            name = precision + (" + channels_last" if layout else "")
            ratio = t / med[("fp32", False)]
            print(f"{case:<78} {name:<22} {t:>8.3f}s {ratio:>7.2f}")


if __name__ == "__main__":
    main()
