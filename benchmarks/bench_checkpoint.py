"""Benchmark: what checkpointing costs a training job.

Usage::

    .venv/bin/python benchmarks/bench_checkpoint.py               # momentum 0 (the default)
    .venv/bin/python benchmarks/bench_checkpoint.py --momentum 0.9

The default's ``mnist_mlp`` scoring (4,000 mnist5k digits, MLP-4096, 20 epochs, lr 0.06,
batch 256, the 1,000 test digits held out), one thread, trained plainly and with a
checkpoint every 5 epochs, interleaved ``--repeats`` times. Printed: the wall time of
both, the ratio of their minima, and each save's time and size (the whole-run ratio is
within the noise of a shared machine; the saves' own time is the steadier number).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from memorization.data import prepare_dataset, to_tensors
from memorization.method import checkpoint as ck
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import score_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=4096, help="MLP hidden units")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = prepare_dataset("mnist5k")
    train, test = to_tensors(ds, "train"), to_tensors(ds, "test")
    opt = OptimSpec(epochs=args.epochs, lr=0.06, momentum=args.momentum, batch_size=256)
    model = ModelSpec.from_config("mlp", {"hidden": args.hidden}).with_classes(10)
    saves: list[tuple[float, int]] = []
    save = ck.Checkpoint.save

    def timed(self, run, training):
        start = time.perf_counter()
        save(self, run, training)
        saves.append((time.perf_counter() - start, self.path.stat().st_size))

    ck.Checkpoint.save = timed
    folder = Path(tempfile.mkdtemp())

    def run(with_checkpoint: bool) -> float:
        checkpoint = None
        if with_checkpoint:
            checkpoint = ck.Checkpoint(folder / ".scores.nc.checkpoint", {"b": 1}, args.every)
        start = time.perf_counter()
        score_split(model, train, opt, 0, heldout=test, checkpoint=checkpoint, progress=False)
        seconds = time.perf_counter() - start
        if checkpoint is not None:
            checkpoint.remove()
        return seconds

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for flag in (False, True):
            times[flag].append(run(flag))
    plain, with_ckpt = min(times[False]), min(times[True])
    per_run = sum(s for s, _ in saves) / args.repeats
    plain_s = [round(t, 1) for t in times[False]]
    ckpt_s = [round(t, 1) for t in times[True]]
    print(
        f"plain {plain_s} s, checkpoint every {args.every} {ckpt_s} s: "
        f"ratio of minima {with_ckpt / plain:.3f}"
    )
    median = sorted(s for s, _ in saves)[len(saves) // 2]
    print(
        f"{len(saves) // args.repeats} saves a run, {saves[0][1] / 2**20:.1f} MiB each, "
        f"median {median:.3f} s; all saves of a run {per_run:.3f} s = "
        f"{100 * per_run / plain:.2f} % of a plain run"
    )


if __name__ == "__main__":
    main()
