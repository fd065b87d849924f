"""Benchmark: K plain models trained as one vectorised ensemble vs one after another.

Usage::

    .venv/bin/python benchmarks/bench_ensemble.py                 # threads 1 and 2
    .venv/bin/python benchmarks/bench_ensemble.py --threads 1 --models 32 --epochs 3

The workload of the Feldman-Zhang ground truth on the default experiment: the
MLP with ``--hidden`` units (1,024) on mnist5k's 4,000 training digits, each model
on its own 70 % subset (2,800 digits, drawn by :func:`memorization.trust.truth.draw_subsets`)
with its own seed, SGD lr 0.06, batch 256, ``--epochs`` epochs. Measured, for each
thread count, in this order and ``--repeats`` times interleaved:

- ``sequential``: :func:`memorization.trust.ensemble.train_sequential` (``fit`` per model)
  on ``--sequential`` models;
- ``ensemble/<path>``: :func:`memorization.trust.ensemble.train_ensemble` on ``--models``
  models at once, for each path (``sparse_mlp``: batched products over the inputs'
  nonzeros; ``func``: ``vmap`` over ``torch.func.functional_call``);

then the predictions of the trained models on all 5,000 digits (what the FZ estimate
needs), sequential vs ensemble. Printed: models per second (wall clock; training
``--epochs`` epochs), process CPU seconds per model, and the ratio to the sequential
loop measured in the same run. One warm-up run of each kind comes first (the first
``fit`` in a process pays a few seconds of one-off setup). On a machine shared with
other jobs the wall-clock ratio moves with their load; the CPU-time ratio less so.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from memorization.data import prepare_dataset, to_tensors
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.trust.ensemble import predict_split, train_ensemble, train_sequential
from memorization.trust.truth import draw_subsets, model_seeds


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=16, help="models in the ensemble")
    ap.add_argument("--sequential", type=int, default=4, help="models in the sequential loop")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--paths", default="sparse_mlp,func")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    data = prepare_dataset("mnist5k")
    train, test = to_tensors(data, "train"), to_tensors(data, "test")
    opt = OptimSpec(epochs=args.epochs, lr=0.06, batch_size=256)
    model = ModelSpec.from_config("mlp", {"hidden": args.hidden}).with_classes(10)
    k = max(args.models, args.sequential)
    seeds = model_seeds(k, seed=0)
    subsets = draw_subsets(len(train), k, 0.7, seed=0)
    paths = args.paths.split(",")
    print(
        f"MLP-{args.hidden}, {len(train)} training digits, subsets of {subsets[0].sum()}, "
        f"batch {opt.batch_size}, {opt.epochs} epochs; ensemble {args.models} models, "
        f"sequential {args.sequential}; torch {torch.__version__}"
    )

    def sequential():
        return train_sequential(
            model, train, opt, seeds[: args.sequential], subsets[: args.sequential]
        )

    def ensemble(path):
        return train_ensemble(
            model, train, opt, seeds[: args.models], subsets[: args.models], path=path
        )

    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        # warm-up (one-off costs of the first fit / vmap / embedding_bag in the process)
        warm = OptimSpec(epochs=1, lr=0.06, batch_size=256)
        train_sequential(model, train, warm, seeds[:1], subsets[:1])
        for path in paths:
            train_ensemble(model, train, warm, seeds[:2], subsets[:2], path=path)
        times: dict[str, list[tuple[float, float]]] = {"sequential": []}
        times.update({f"ensemble/{p}": [] for p in paths})
        models, ensembles = None, {}
        for _ in range(args.repeats):
            models, wall, cpu = _timed(sequential)
            times["sequential"].append((wall / args.sequential, cpu / args.sequential))
            for path in paths:
                ensembles[path], wall, cpu = _timed(lambda path=path: ensemble(path))
                times[f"ensemble/{path}"].append((wall / args.models, cpu / args.models))
        print(f"\n== threads {threads}: training ({opt.epochs} epochs per model)")
        print(f"{'':22s} {'models/s':>9s} {'s/model':>8s} {'cpu s/model':>12s} {'ratio':>6s}")
        base = statistics.median(w for w, _ in times["sequential"])
        base_cpu = statistics.median(c for _, c in times["sequential"])
        for name, ts in times.items():
            wall = statistics.median(w for w, _ in ts)
            cpu = statistics.median(c for _, c in ts)
            print(
                f"{name:22s} {1 / wall:9.3f} {wall:8.3f} {cpu:12.3f} {base / wall:6.2f}"
                f"   (cpu ratio {base_cpu / cpu:.2f})"
            )
        _predictions(models, ensembles, [train, test])


def _predictions(models, ensembles, splits) -> None:
    """Predictions on every digit, as the FZ estimate needs them, per model."""
    n = sum(len(s) for s in splits)
    _, wall, _ = _timed(lambda: [predict_split(models, s) for s in splits])
    base = wall / len(models)
    line = f"predictions on {n} digits: sequential {base * 1e3:.1f} ms/model"
    for path, ens in ensembles.items():
        _, wall, _ = _timed(lambda ens=ens: [ens.predict(s) for s in splits])
        per = wall / len(ens)
        line += f", ensemble/{path} {per * 1e3:.1f} ms/model ({base / per:.2f}x)"
        np.testing.assert_allclose(  # both trained the same first model
            ens.logits(splits[1].x[:64])[0].numpy(),
            models[0](splits[1].x[:64]).detach().numpy(),
            rtol=1e-3,
            atol=1e-3,
        )
    print(line)


if __name__ == "__main__":
    main()
