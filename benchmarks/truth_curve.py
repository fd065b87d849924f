"""Measurement: what it would take. The Feldman-Zhang estimator of a pairs truth's own
models at K networks, against the truth's other half, beside every estimate of the
experiment against the same half.

Usage::

    .venv/bin/python benchmarks/truth_curve.py results/validation mnist_vgg
    .venv/bin/python benchmarks/truth_curve.py results/validation mnist_vgg --pairs 3 8 16

The truth's models in complementary pairs (``truth: {design: pairs}``) are the out-of-bag
estimator at its largest: K networks of the experiment's own model, each on a balanced
half, every example in K/2 of them, K/2 runs of compute. Its first half of models
(``[0, models/2)``) is cut into disjoint groups of ``P`` pairs (``K = 2P`` networks); each
group's estimate (``correct``: the fraction correct in minus out; ``prob``: the label
probability in minus out; ``loss``: the cross-entropy out minus in) is scored against the
Feldman-Zhang memorization of the truth's other half (``[models/2, models)``), and the
groups' mean and spread are printed with the cost in plain runs (``P``). Every variable of
the experiment's ``estimates.nc`` (where it exists) is scored against the same half, so
the curve says at what compute the unbiased estimator reaches the best peer. The second
half is itself a truth of only ``models/2`` models: read every number against its
split-half agreement (printed first), not as a quality against a noise-free truth.

Reads the truth's shards (``<results>/<experiment>/truth/*.nc``: they keep every model's
predictions, which ``truth.nc`` does not); trains nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

from memorization.trust.metrics import MEMORIZED, quality
from memorization.trust.truth import memorization_estimate, merge_shards

#: the smallest label probability a loss is computed from (a loss of at most 18.4 nats)
FLOOR = 1e-8


def _forms(in_train: np.ndarray, correct: np.ndarray, prob: np.ndarray) -> dict[str, np.ndarray]:
    """The out-of-bag forms of K networks (in minus out; the loss out minus in)."""
    loss = -np.log(np.clip(prob, FLOOR, 1.0))
    return {
        "correct": memorization_estimate(in_train, correct)["memorization"],
        "prob": memorization_estimate(in_train, prob)["memorization"],
        "loss": -memorization_estimate(in_train, loss)["memorization"],
    }


def _line(name: str, runs: float, rows: list[dict[str, float]]) -> str:
    cells = []
    for key in ("auc", "top_overlap", "spearman"):
        values = np.array([r[key] for r in rows])
        spread = f"±{values.std(ddof=1):.3f}" if len(values) > 1 else "      "
        cells.append(f"{values.mean():>7.3f}{spread}")
    return f"{name:<44}{runs:>7.2f}{len(rows):>5}  " + "  ".join(cells)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the config's results folder")
    parser.add_argument("experiment", help="an experiment with a pairs truth")
    parser.add_argument("--pairs", type=int, nargs="+", default=[2, 3, 4, 8, 16, 32])
    parser.add_argument("--threshold", type=float, default=MEMORIZED)
    args = parser.parse_args(argv)

    folder = args.results / args.experiment
    shards = [xr.open_dataset(p) for p in sorted((folder / "truth").glob("*.nc"))]
    if not shards:
        raise SystemExit(f"no truth shards under {folder / 'truth'}: build the truth first")
    merged = merge_shards(shards)
    if merged.attrs.get("design") != "pairs":
        raise SystemExit("the truth's design is not pairs: its models are not K/2 runs a side")
    in_train = merged["in_train"].values
    correct = merged["correct"].values.astype(np.float64)
    prob = merged["prob"].values.astype(np.float64)
    k = len(in_train)
    half_a, half_b = slice(0, k // 2), slice(k // 2, k)
    reference = memorization_estimate(in_train[half_b], correct[half_b])["memorization"]
    first = memorization_estimate(in_train[half_a], correct[half_a])["memorization"]
    examples = merged["example"].values

    print(
        f"{args.experiment}: {k} truth models; the reference is models {k // 2}-{k - 1} "
        f"({int((reference > args.threshold).sum())} examples with FZ > {args.threshold})"
    )
    print(
        f"{'estimate':<44}{'runs':>7}{'n':>5}  {'ROC AUC':>13}  {'top-10 %':>13}  {'Spearman':>13}"
    )
    print(_line("FZ, the other half of the models", k / 4, [quality(first, reference)]))
    for pairs in args.pairs:
        groups = (k // 2) // (2 * pairs)
        if groups < 1:
            continue
        rows: dict[str, list] = {}
        for g in range(groups):
            take = slice(2 * pairs * g, 2 * pairs * (g + 1))
            for form, est in _forms(in_train[take], correct[take], prob[take]).items():
                rows.setdefault(form, []).append(quality(est, reference))
        for form, found in rows.items():
            print(_line(f"out-of-bag, {2 * pairs} networks, {form}", pairs, found))

    path = folder / "estimates.nc"
    if path.exists():
        estimates = xr.open_dataset(path)
        order = estimates["example"].values
        at = np.searchsorted(examples, order)
        if not np.array_equal(examples[np.minimum(at, len(examples) - 1)], order):
            raise SystemExit("estimates.nc and the truth hold different examples")
        found = {name: quality(var.values, reference[at]) for name, var in estimates.items()}
        for name in sorted(found, key=lambda n: -found[n]["auc"]):
            var = estimates[name]
            runs = float(var.attrs.get("cost_runs", np.nan))
            print(_line(f"{name} ({var.attrs.get('family', '?')})", runs, [found[name]]))


if __name__ == "__main__":
    main()
