"""Benchmark: out-of-bag sub-networks against plain runs, in one process.

Usage::

    .venv/bin/python benchmarks/bench_oob.py                      # MLP and VGG, K = 4, 8
    .venv/bin/python benchmarks/bench_oob.py --networks 4,8,16 --epochs 3 --threads 2
    .venv/bin/python benchmarks/bench_oob.py --paths loop,func    # the step backends side by side

For each model, measured in this order: one plain run (``fit`` on all the training
examples, the experiment's own training), then for each K:

- ``full``: K full-width networks, each on a balanced half
  (:func:`memorization.trust.oob.train_oob`), recording every network's loss on every
  example after every epoch; ``seconds`` is their training alone (the recording's
  measured time subtracted), ``+rec`` with the recording (``oob_record_every: 1``, the
  most it costs); the ratio is to K/2 plain runs (target <= 1.1);
- ``narrow``: K networks whose width multiplier makes their total FLOPs one plain run
  (MLP: hidden x 2/K; VGG-11: width x sqrt(2/K)); the ratio is to one plain run
  (target <= 1.2), again the training alone and ``+rec`` with the recording.

Models: the default MLP (4,096 hidden units) on mnist5k's 4,000 training digits, and a
small VGG-11 (width 0.25) on 1,000 of them; SGD lr 0.06 (MLP) / 0.02 (VGG), batch 256 /
128. A warm-up of each kind comes first (the first training in a process pays one-off
setup). ``--paths``: the ensemble's step backends to measure (``auto``: the one an
experiment gets, :mod:`memorization.trust.ensemble.backends`), each against the same plain
run. Wall clock; on a machine shared with other jobs the ratios move with their load.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from memorization.data import prepare_dataset, to_tensors
from memorization.data.tensors import TensorSplit
from memorization.infra.clock import compute_clock
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.training import fit
from memorization.trust.oob import OOBSpec, train_oob


def _plain(model: ModelSpec, train: TensorSplit, opt: OptimSpec) -> float:
    """Seconds of one plain run, on the clock the out-of-bag artifact times its training
    with (a CPU's process seconds, a GPU's wall clock: memorization.infra.clock)."""
    net = model.build(tuple(train.x.shape[1:]), turnover=False, seed=0).to(train.x.device)
    clock = compute_clock(train.x.device)
    start = clock()
    fit(net, train, opt, seed=0, progress=False)
    return clock() - start


def _oob(model, train, opt, k, width=1.0, path="auto") -> tuple[float, float]:
    """Seconds of training with recording after every epoch, and of the recording."""
    spec = OOBSpec(k, width=width, record_every=1)
    out = train_oob(model, train, opt, spec, seed=0, path=path)
    return float(out.attrs["train_seconds"]), float(out.attrs["record_seconds"])


def _cases(epochs: int, device: str):
    data = prepare_dataset("mnist5k")
    train = to_tensors(data, "train").to(device)
    few = TensorSplit(train.x[:1000], train.y[:1000], train.examples[:1000])
    mlp = ModelSpec.from_config("mlp", {"hidden": 4096}).with_classes(10)
    vgg = ModelSpec.from_config("vgg11", {"width": 0.25}).with_classes(10)
    yield "MLP-4096", mlp, train, OptimSpec(epochs=epochs, lr=0.06, batch_size=256), 1.0
    yield "VGG-11 w0.25", vgg, few, OptimSpec(epochs=epochs, lr=0.02, batch_size=128), 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="4,8", help="comma-separated K")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--paths", default="auto", help="comma-separated step backends")
    ap.add_argument("--models", default="MLP,VGG", help="comma-separated: MLP, VGG")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    paths = args.paths.split(",")
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.networks.split(",")]
    print(f"torch {torch.__version__}, {args.device}, {args.threads} thread(s), "
          f"{args.epochs} epochs; seconds: a CPU's process seconds, a GPU's wall")  # fmt: skip
    print(f"{'model':<14}{'K':>3} {'variant':<12}{'seconds':>9}{'+rec':>8}{'ratio':>7}"
          f"{'+rec':>7}  target")  # fmt: skip
    for name, model, train, opt, exponent in _cases(args.epochs, args.device):
        if name.split("-")[0] not in args.models.split(","):
            continue
        warm = OptimSpec(epochs=1, lr=opt.lr, batch_size=opt.batch_size)
        _plain(model, TensorSplit(train.x[:256], train.y[:256], train.examples[:256]), warm)
        _oob(model, TensorSplit(train.x[:256], train.y[:256], train.examples[:256]), warm, 2)
        plain = _plain(model, train, opt)
        print(f"{name:<14}{1:>3} {'plain':<12}{plain:>9.2f}")
        for k in ks:
            for path in paths:
                tag = "" if len(paths) == 1 else f"/{path}"
                with_rec, rec = _oob(model, train, opt, k, path=path)
                seconds = with_rec - rec  # the training alone
                base = k / 2 * plain
                print(f"{name:<14}{k:>3} {'full' + tag:<12}{seconds:>9.2f}{with_rec:>8.2f}"
                      f"{seconds / base:>7.2f}{with_rec / base:>7.2f}"
                      "  <= 1.1 x K/2 runs")  # fmt: skip
                width = (2 / k) ** exponent
                with_rec, rec = _oob(model, train, opt, k, width=width, path=path)
                seconds = with_rec - rec
                print(f"{name:<14}{k:>3} {'narrow' + tag:<12}{seconds:>9.2f}{with_rec:>8.2f}"
                      f"{seconds / plain:>7.2f}{with_rec / plain:>7.2f}  <= 1.2 x 1 run "
                      f"(width x {width:.3g})")  # fmt: skip
    assert math.isfinite(plain) and np.isfinite(seconds)


if __name__ == "__main__":
    main()
