"""Benchmark: what watching an image folder costs (its fingerprint and the lazy check).

Usage::

    .venv/bin/python benchmarks/bench_fingerprint.py                 # 100,000 + 10,000 images
    .venv/bin/python benchmarks/bench_fingerprint.py --n-train 20000

Writes the image folder of ``bench_image_folder.py`` (random RGB ``--size`` x ``--size``
PNGs, 10 classes, ``train/`` and ``test/``) into a temporary folder and times, each
``--repeat`` times (the best is printed): the fingerprint the workflow computes every
time it plans (a manifest of relative paths, sizes and modification times), a content
hash of every image file instead (SHA-256), and the check of the training files before
training (one ``stat`` per file). The first fingerprint after writing is also printed.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_image_folder import _write_images  # noqa: E402

from memorization.data.fingerprint import folder_manifest, manifest_hash  # noqa: E402
from memorization.data.lazy import check_files, file_manifest  # noqa: E402


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _content_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=100_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_fingerprint_"))
    try:
        root = tmp / "images"
        written = _write_images(root, args.n_train, args.n_test, args.size, 10)
        n = args.n_train + args.n_test
        start = time.perf_counter()
        manifest_hash(folder_manifest(root))
        first = time.perf_counter() - start
        manifest = _best(lambda: manifest_hash(folder_manifest(root)), args.repeat)
        content = _best(lambda: _content_hash(root), args.repeat)
        train = sorted(str(p) for p in (root / "train").rglob("*.png"))
        sizes, mtimes = file_manifest(train)
        check = _best(lambda: check_files(train, sizes, mtimes), args.repeat)
        megabytes = sum(sizes) / 2**20
        print(f"{n} images ({args.size}x{args.size} PNG) written in {written:.1f} s")
        print(
            f"fingerprint (manifest of paths, sizes, mtimes): first {first:.2f} s, "
            f"then {manifest:.2f} s"
        )
        print(
            f"content hash of every file instead: {content:.2f} s "
            f"({content / manifest:.1f}x the manifest)"
        )
        print(
            f"check of the {len(train)} training files before training "
            f"({megabytes:.0f} MiB): {check:.2f} s"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
