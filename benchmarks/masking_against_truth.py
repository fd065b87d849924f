"""Turn-over masking schemes against a Feldman-Zhang ground truth.

Compares the scores of several runs of one experiment that differ only in where the
turn-over masks go (e.g. VGG-11's ``masked_layers``/``mask_groups``) with the ``truth.nc``
of the validation workflow, at 1 and R replicates::

    .venv/bin/python benchmarks/masking_against_truth.py results/validation/mnist_vgg/truth.nc \\
        "last convolution=results/validation/mnist_vgg" "last 2=results/remedy/vgg_l2"

Each run folder needs ``replicates/scores_r0.nc`` ... ``scores_r{R-1}.nc`` (build them with
``snakemake <folder>/replicates/scores_r0.nc ...`` for an experiment with ``replicates: R``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import xarray as xr

from memorization.trust.metrics import quality
from memorization.trust.replicates import merge_replicates, subset_means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path, help="the truth.nc of the validation workflow")
    parser.add_argument("runs", nargs="+", help="NAME=FOLDER of each masking scheme")
    parser.add_argument("--replicates", type=int, default=4)
    args = parser.parse_args()
    truth = xr.open_dataset(args.truth)["memorization"]
    print("| masking | sub-network accuracy (train, unmuted / muted; held-out, muted) | R | "
          "ROC AUC | top-10 % overlap | Spearman | Pearson |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        name, folder = run.split("=", 1)
        runs = [
            xr.open_dataset(Path(folder) / "replicates" / f"scores_r{r}.nc")
            for r in range(args.replicates)
        ]
        # one dataset of the R runs (checked to share examples and labels), as scores.nc
        merged = merge_replicates(runs, [int(r.attrs["turnover_seed"]) for r in runs])
        merged = merged.sel(example=truth.example)
        train = runs[0]["subnet_accuracy"].isel(epoch=-1)
        held = runs[0]["heldout_accuracy"].isel(epoch=-1)
        acc = (
            f"{float(train.sel(subnet='unmuted')):.3f} / {float(train.sel(subnet='muted')):.3f}"
            f"; {float(held.sel(subnet='muted')):.3f}"
        )
        for count in sorted({1, args.replicates}):
            q = quality(subset_means(merged, "memorization", count), truth.values)
            print(f"| {name} | {acc} | {count} | {q['auc']:.3f} | {q['top_overlap']:.3f} | "
                  f"{q['spearman']:.3f} | {q['pearson']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
