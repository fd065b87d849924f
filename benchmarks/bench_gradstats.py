"""Benchmark: per-example gradient statistics, fast hooks path vs BackPACK BatchGrad.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_gradstats.py            # paper's MLP
    PYTHONPATH=src .venv/bin/python benchmarks/bench_gradstats.py --model vgg11 --batch 32

On the paper's MLP (784-4096-10, batch 256, random MNIST-shaped data) it measures,
side by side, a plain training step (forward + backward of the mean loss), the fast
path (``method="hooks"``: ``contributions``, ``cosine_similarity`` and both from one
pass with ``batch_statistics``) and BackPACK ``BatchGrad`` computing the same
statistics; then the fast path's peak memory at two batch sizes and two widths.

Every measurement runs in a fresh subprocess. Time: median of ``--repeats`` calls
after one warm-up call. Peak memory: after the warm-up, the kernel's peak-RSS mark
(VmHWM) is reset to the current RSS by writing ``5`` to ``/proc/self/clear_refs``; the
reported peak is VmHWM after one call minus VmRSS right before it, i.e. the largest
amount of extra resident memory the call needed. The workers run with glibc's mmap
threshold fixed at 64 KiB, so every tensor of that size or more is mmap'ed and given
back to the kernel when freed, and RSS follows the live tensors (otherwise memory
that the warm-up freed could be reused without showing up). Where clear_refs is
not writable, the first call is measured instead, as ru_maxrss after it minus the RSS
before it (then the warm-up's one-off costs are included; the output says so).
"CPU" is the worker's process CPU time per call (all threads). On a machine shared
with other jobs, ``--threads 1`` gives steadier numbers: with several threads every
parallel op waits for its slowest thread, which penalises many small ops.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

KIB = 1024
MIB = 1024 * 1024

SRC = Path(__file__).resolve().parents[1] / "src"


# --------------------------------------------------------------------------- worker
def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KIB
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _build(spec: dict):
    import torch

    from memorization.method.models.mlp import MLP
    from memorization.method.models.vgg import VGG11

    torch.manual_seed(0)
    if spec["model"] == "mlp":
        shape = (1, 28, 28)
        model = MLP(shape, 10, hidden=spec["hidden"])
    else:
        shape = (3, 32, 32)
        model = VGG11(shape, 10, width=spec["width"])
    x = torch.randn(spec["batch"], *shape)
    y = torch.randint(0, 10, (spec["batch"],))
    return model, x, y


def _operation(spec: dict, model, x, y):
    import torch.nn.functional as F

    from memorization.studies import per_example

    what, method = spec["what"], spec.get("method", "hooks")
    if what == "plain":

        def op():
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()

    elif what == "contributions":

        def op():
            per_example.contributions(model, x, y, method)

    elif what == "cosine":

        def op():
            per_example.cosine_similarity(model, x, y, method)

    elif what == "both":

        def op():
            per_example.batch_statistics(model, x, y, method, cosine=True)

    elif what == "batchgrad":
        from memorization.studies.per_example.backpack_reference import batch_gradients

        def op():
            batch_gradients(model, x, y)  # BackPACK's backward alone, no statistics

    else:
        raise ValueError(what)
    return op


def worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    model, x, y = _build(spec)
    op = _operation(spec, model, x, y)
    out = {"params": sum(p.numel() for p in model.parameters())}

    if _reset_peak():
        op()  # warm-up: one-off allocations, kernel selection, lazy imports
        gc.collect()
        _reset_peak()
        before = _rss_bytes()
        t0 = time.perf_counter()
        op()
        first = time.perf_counter() - t0
        out["peak_bytes"] = _hwm_bytes() - before
        out["peak_method"] = "VmHWM reset"
    else:
        gc.collect()
        before = _rss_bytes()
        t0 = time.perf_counter()
        op()
        first = time.perf_counter() - t0
        out["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB - before
        out["peak_method"] = "ru_maxrss, first call"
    repeats = spec["repeats"] if first < 1.0 else min(spec["repeats"], 3)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        op()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out["time"] = statistics.median(times)
    out["cpu"] = statistics.median(cpu)
    out["repeats"] = repeats
    return out


# --------------------------------------------------------------------------- driver
def measure(spec: dict) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    # glibc keeps freed blocks below its (adaptive) mmap threshold resident, so memory a
    # warm-up call freed could be reused unseen: a fixed threshold returns every block of
    # 64 KiB or more to the kernel on free, and RSS follows the live tensors
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "131072")
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_mem(b: float) -> str:
    return f"{b / MIB:9.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("mlp", "vgg11"), default="mlp")
    parser.add_argument("--batch", type=int, default=None, help="default: 256 (MLP), 32 (VGG)")
    parser.add_argument("--hidden", type=int, default=4096, help="MLP hidden units")
    parser.add_argument("--width", type=float, default=1.0, help="VGG-11 width multiplier")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--no-backpack", action="store_true", help="skip BackPACK")
    parser.add_argument("--no-scaling", action="store_true", help="skip the memory scaling")
    parser.add_argument("--with-func", action="store_true", help="also time method='func'")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    batch = args.batch or (256 if args.model == "mlp" else 32)
    base = {
        "model": args.model,
        "batch": batch,
        "hidden": args.hidden,
        "width": args.width,
        "threads": args.threads,
        "repeats": args.repeats,
    }
    arch = f"MLP 784-{args.hidden}-10" if args.model == "mlp" else f"VGG-11 width {args.width}"
    print(f"{arch}, batch {batch}, {args.threads} torch threads, CPU")
    rows = [
        ("plain step (forward+backward)", {"what": "plain"}),
        ("hooks: contributions", {"what": "contributions", "method": "hooks"}),
        ("hooks: cosine_similarity", {"what": "cosine", "method": "hooks"}),
        ("hooks: batch_statistics (both)", {"what": "both", "method": "hooks"}),
    ]
    if args.with_func:
        rows.append(("func: batch_statistics (both)", {"what": "both", "method": "func"}))
    if not args.no_backpack:
        rows.append(("backpack: BatchGrad backward only", {"what": "batchgrad"}))
        rows.append(("backpack: batch_statistics (both)", {"what": "both", "method": "backpack"}))
    results = {}
    print(f"{'':38s}{'wall (median)':>14s}{'CPU (median)':>14s}{'peak extra memory':>20s}")
    for label, extra in rows:
        r = measure({**base, **extra})
        results[label] = r
        print(
            f"{label:38s}{r['time']:12.4f} s{r['cpu']:12.4f} s"
            f"{fmt_mem(r['peak_bytes']):>20s}  (n={r['repeats']})"
        )
    params = results[rows[0][0]]["params"]
    print(f"peak memory measured by: {results[rows[0][0]]['peak_method']}")
    print(f"parameters P = {params:,}; B x P float32 = {fmt_mem(batch * params * 4).strip()}")

    plain = results["plain step (forward+backward)"]
    contrib = results["hooks: contributions"]
    cos = results["hooks: cosine_similarity"]
    both = results["hooks: batch_statistics (both)"]
    sep_time = contrib["time"] + cos["time"]
    sep_peak = max(contrib["peak_bytes"], cos["peak_bytes"])
    print()
    print(f"hooks contributions / plain step:              {contrib['time'] / plain['time']:6.2f}x")
    print(f"hooks batch_statistics (both) / plain step:    {both['time'] / plain['time']:6.2f}x")
    print(f"hooks contributions + cosine_similarity / plain: {sep_time / plain['time']:4.2f}x")
    mlp = args.model == "mlp"  # the targets are for the paper's MLP
    bp_label = "backpack: batch_statistics (both)"
    if bp_label in results:
        bp = results[bp_label]
        print(
            f"speedup over BackPACK (one pass):              "
            f"{bp['time'] / both['time']:6.1f}x" + ("   (target >= 20x)" if mlp else "")
        )
        print(f"speedup over BackPACK (two calls):             {bp['time'] / sep_time:6.1f}x")
        bg = results["backpack: BatchGrad backward only"]
        print(f"speedup over BatchGrad backward alone:         {bg['time'] / both['time']:6.1f}x")
        print(
            f"peak-memory reduction vs BackPACK (one pass):  "
            f"{bp['peak_bytes'] / max(both['peak_bytes'], 1):6.1f}x"
            + ("   (target >= 50x)" if mlp else "")
        )
        print(
            f"peak-memory reduction vs BackPACK (two calls): "
            f"{bp['peak_bytes'] / max(sep_peak, 1):6.1f}x"
        )
    if args.no_scaling:
        return

    print()
    print("fast path (hooks, batch_statistics) peak extra memory vs size:")
    if args.model == "mlp":
        sizes = [(batch // 2, args.hidden), (batch, args.hidden), (batch, args.hidden // 4)]
    else:
        sizes = [(batch // 2, args.width), (batch, args.width), (batch, args.width / 2)]
    knob = "hidden" if args.model == "mlp" else "width"
    print(f"{'batch':>7s}{knob:>8s}{'params':>12s}{'B x P float32':>16s}{'hooks peak':>16s}")
    for b, size in sizes:
        r = measure({**base, "batch": b, knob: size, "what": "both", "method": "hooks"})
        print(
            f"{b:7d}{size:8g}{r['params']:12,d}{fmt_mem(b * r['params'] * 4):>16s}"
            f"{fmt_mem(r['peak_bytes']):>16s}"
        )


if __name__ == "__main__":
    main()
