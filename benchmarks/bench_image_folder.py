"""Benchmark: memory and time of training from an image folder read lazily.

Usage::

    .venv/bin/python benchmarks/bench_image_folder.py                 # 100,000 + 10,000 images
    .venv/bin/python benchmarks/bench_image_folder.py --n-train 20000 --size 32

Writes ``--n-train`` training and ``--n-test`` test images (random RGB ``--size`` x
``--size`` PNGs, 10 classes, a ``train/<class>`` / ``test/<class>`` tree) into a
temporary folder, prepares it with ``source: image_folder`` and ``lazy: true`` (file
paths in the artifact; the channel statistics streamed over the images once), writes the
artifact as netCDF, and then, in a fresh process, makes one pass over the training split
in shuffled batches of ``--batch`` through ``to_tensors(...).x[rows]`` (as training does).

Printed: the peak memory of that pass as a ratio of the size the whole split would take
as one float32 tensor (the peak of the resident set, sampled after every batch, over its
size before the pass, after one warm-up batch that imports PIL; ``getrusage``'s maximum
RSS before and after; and tracemalloc's peak over ``--traced-batches`` more batches, run
after the timed pass since tracing slows Python down), and the time per image of
preparing and of the pass. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _write_images(root: Path, n_train: int, n_test: int, size: int, classes: int) -> float:
    from PIL import Image

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for split, n in (("train", n_train), ("test", n_test)):
        for k in range(classes):
            (root / split / f"class{k}").mkdir(parents=True)
        for i in range(n):
            k = i % classes
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"class{k}" / f"{i:07d}.png")
    return time.perf_counter() - start


def _rss_bytes() -> int:
    """The process's current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _pass(artifact: str, batch: int, traced_batches: int) -> dict:
    """One shuffled pass over the training split (run in a fresh process)."""
    import tracemalloc

    import torch
    import xarray as xr

    from memorization.data import to_tensors

    torch.set_num_threads(1)
    with xr.open_dataset(artifact) as ds:
        ds = ds.load()
    train = to_tensors(ds, "train")
    x = train.x
    n = len(x)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    batches = [order[lo : lo + batch] for lo in range(0, n, batch)]
    x[batches[0]]  # warm-up: the first decode imports PIL and its plugins (one-time)
    maxrss_before = _maxrss_bytes()
    rss_base = rss_peak = _rss_bytes()
    total, start = 0.0, time.perf_counter()
    for rows in batches:  # the timed pass: RSS sampled after every batch
        xb, yb = x[rows], train.y[rows]
        total += float(xb.sum()) + int(yb.sum())  # touch the batch, as a step would
        rss_peak = max(rss_peak, _rss_bytes())
    seconds = time.perf_counter() - start
    maxrss_after = _maxrss_bytes()
    # tracemalloc (it slows Python down) over the first batches again, not timed
    del xb
    tracemalloc.start()
    for rows in batches[:traced_batches]:
        xb = x[rows]
        total += float(xb.sum())
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "n": n,
        "shape": list(x.shape),
        "type": type(x).__name__,
        "seconds": seconds,
        "maxrss_before": maxrss_before,
        "maxrss_after": maxrss_after,
        "rss_base": rss_base,
        "rss_peak": rss_peak,
        "traced_peak": traced_peak,
        "traced_batches": min(traced_batches, len(batches)),
        "checksum": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=100_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--traced-batches", type=int, default=40, help="batches under tracemalloc")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--pass-only", metavar="ARTIFACT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pass_only:
        print(json.dumps(_pass(args.pass_only, args.batch, args.traced_batches)))
        return

    from memorization.data import dataset_spec, prepare_dataset

    folder = Path(tempfile.mkdtemp(prefix="bench_image_folder_"))
    try:
        root = folder / "images"
        n_images = args.n_train + args.n_test
        write_s = _write_images(root, args.n_train, args.n_test, args.size, args.classes)
        print(
            f"wrote {n_images:,} {args.size}x{args.size} RGB PNGs ({args.n_train:,} train, "
            f"{args.n_test:,} test, {args.classes} classes) in {write_s:.1f} s"
        )
        spec = dataset_spec(
            "bench",
            {"bench": {"source": "image_folder", "path": str(root), "size": None, "lazy": True}},
        )
        start = time.perf_counter()
        ds = prepare_dataset(spec)
        prepare_s = time.perf_counter() - start
        artifact = folder / "bench.nc"
        ds.to_netcdf(artifact)
        mib = artifact.stat().st_size / 2**20
        print(
            f"prepare (list, decode every image once, stream the statistics): {prepare_s:.1f} s, "
            f"{prepare_s / n_images * 1e6:.0f} us/image; artifact {mib:.1f} MiB"
        )
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--pass-only",
                str(artifact),
                "--batch",
                str(args.batch),
                "--traced-batches",
                str(args.traced_batches),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        full = int(np.prod(r["shape"])) * 4
        batch_bytes = args.batch * int(np.prod(r["shape"][1:])) * 4
        growth = r["rss_peak"] - r["rss_base"]
        maxrss_growth = max(r["maxrss_after"] - r["maxrss_before"], 0)
        print(
            f"one pass over the training split: x is {r['type']} of shape {tuple(r['shape'])}, "
            f"shuffled batches of {args.batch}"
        )
        print(f"  whole split as a float32 tensor:      {full / 2**20:9.1f} MiB")
        print(f"  one batch as a float32 tensor:        {batch_bytes / 2**20:9.2f} MiB")
        print(
            f"  peak RSS over the pass's start:       {growth / 2**20:9.1f} MiB  "
            f"(ratio to the whole split {growth / full:.4f})"
        )
        print(
            f"  max RSS (getrusage) before / after:   {r['maxrss_before'] / 2**20:9.1f} / "
            f"{r['maxrss_after'] / 2**20:.1f} MiB  (growth {maxrss_growth / 2**20:.1f} MiB, "
            f"ratio {maxrss_growth / full:.4f})"
        )
        print(
            f"  tracemalloc peak, {r['traced_batches']} batches:       "
            f"{r['traced_peak'] / 2**20:9.2f} MiB  (ratio to the whole split "
            f"{r['traced_peak'] / full:.4f}, {r['traced_peak'] / batch_bytes:.2f} batches)"
        )
        print(
            f"  time: {r['seconds']:.1f} s, {r['seconds'] / r['n'] * 1e6:.0f} us/image "
            f"({r['n'] / r['seconds']:,.0f} images/s, one thread)"
        )
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
