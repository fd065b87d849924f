"""Is an example's muted sub-network as good on it as on an example it never trained on?

The turn-over argument: example ``i`` trains only its unmuted sub-network, so its muted
sub-network is a model that never saw ``i``. Its gradient never reaches the muted
parameters (tested in ``tests/method/test_models.py``), but ``i`` still shapes them at second
order, through the other examples' training. This study measures how much that matters:
it trains the experiment's turn-over model again with ``--exclude`` correctly labelled
training examples left out (they keep the masks they would have had) and compares

- the muted sub-networks' accuracy on the correctly labelled training examples that
  were trained on (what the memorization score compares against), with
- the muted sub-networks' accuracy on the excluded ones, from the same distribution,
  under their own masks (what a model that never saw them gets).

If the muted sub-network were a leave-one-out model, the two would agree up to noise.
Reads the experiment from a config and its data and labels from a finished run's
results folder (``results/data/<dataset>.nc``, ``results/<exp>/labels.nc``); one CPU
thread, about a minute for an experiment of the embedded default::

    python benchmarks/muted_heldin.py mnist_mlp_noisy [--config config/config.yaml]
        [--results results] [--exclude 500] [--seed 1]

Prints one line per experiment; the measured numbers are in docs/departures.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from memorization.data import TensorSplit
from memorization.method.scoring import score_split
from memorization.workflow.config import WorkflowConfig, load_yaml
from memorization.workflow.context import StageContext
from memorization.workflow.registry import Paths
from memorization.workflow.stages.common import load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--results", default="results")
    parser.add_argument("--exclude", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1, help="which examples are excluded")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = WorkflowConfig.from_config(load_yaml(args.config))
    paths = Paths(args.results, config.experiments)
    for name in args.experiments:
        exp = config.experiments[name]
        inputs = {"dataset": paths.of("dataset", name), "labels": paths.of("labels", name)}
        data, labels, split = load_split(StageContext("scores", "", inputs=inputs))
        right = labels["label"].values == labels["true_label"].values
        rng = np.random.default_rng(args.seed)
        out = np.sort(rng.choice(np.flatnonzero(right), args.exclude, replace=False))
        keep = np.setdiff1d(np.arange(len(split)), out)
        train = TensorSplit(split.x[keep], split.y[keep], split.examples[keep])
        held = TensorSplit(split.x[out], split.y[out], split.examples[out])
        model = exp.model.with_classes(data.sizes["class"])
        scores = score_split(model, train, exp.optim, exp.seed, heldout=held, progress=False)
        y = scores["label"].values
        trained = right[keep]
        muted = scores["pred_muted"].values
        in_acc = float((muted[trained] == y[trained]).mean())
        out_acc = float(scores["heldout_accuracy"].values[-1, 1])
        print(
            f"{name}: muted accuracy on {trained.sum()} correctly labelled examples trained "
            f"on {in_acc:.3f}; on {args.exclude} excluded ones (own masks) {out_acc:.3f}; "
            f"difference {out_acc - in_acc:+.3f}"
        )


if __name__ == "__main__":
    main()
