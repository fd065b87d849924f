"""The headline numbers of a finished run (``memorization summary [results]``).

First the table of the paper's claims (``claims.md``, written by the workflow), then for
every experiment folder: final sub-network accuracies and the wrong-label ROC AUC of its
scores; from its dynamics, the first epoch at which the easy, difficult and full
training subsets reach 90% accuracy and the peak and final test accuracy (studies run with
several seeds: their mean); from its
cross-subset training, the four accuracies at the last epoch; from its gradient
statistics, the mean cosine similarity and contribution per subset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..workflow.artifacts import open_artifact


def _first_epoch(acc: np.ndarray, epochs: np.ndarray, level: float = 0.9) -> str:
    hit = np.flatnonzero(acc >= level)
    return str(int(epochs[hit[0]])) if hit.size else f"never (max {np.nanmax(acc):.3f})"


def _mean_of_seeds(ds):
    """A study's artifact averaged over its seeds (as it is without a seed dimension)."""
    return ds.mean("seed", keep_attrs=True) if "seed" in ds.dims else ds


def summarize(results: str | Path = "results") -> str:
    lines = []
    claims = Path(results) / "claims.md"
    if claims.exists():
        lines += [claims.read_text(), ""]
    for exp in sorted(p for p in Path(results).iterdir() if (p / "scores.nc").exists()):
        lines.append(f"== {exp.name}")
        sc = open_artifact(exp / "scores.nc", "scores")
        acc = sc["subnet_accuracy"].isel(epoch=-1)
        lines.append(
            f"  turn-over training, epoch {int(sc['epoch'][-1])}: unmuted "
            f"{float(acc.sel(subnet='unmuted')):.4f}, muted {float(acc.sel(subnet='muted')):.4f}"
        )
        if "mislabeled_auc" in sc.attrs:
            lines.append(
                f"  wrong-label ROC AUC of the memorization score: "
                f"{float(sc.attrs['mislabeled_auc']):.4f}"
            )
        if (exp / "dynamics.nc").exists():
            dyn = _mean_of_seeds(open_artifact(exp / "dynamics.nc", "dynamics")).sel(run="all")
            epochs = dyn["epoch"].values
            hits = ", ".join(
                f"{s} {_first_epoch(dyn['accuracy'].sel(split='train', subset=s).values, epochs)}"
                for s in ("easy", "difficult", "full")
            )
            lines.append(f"  first epoch at 90% training accuracy: {hits}")
            test = dyn["accuracy"].sel(split="test", subset="full").values
            lines.append(
                f"  test accuracy: peak {np.nanmax(test):.4f} at epoch "
                f"{int(epochs[np.nanargmax(test)])}, final {test[-1]:.4f}"
            )
            final = dyn["accuracy"].isel(epoch=-1)
            lines.append(
                "  final train accuracy easy/difficult/full: "
                + "/".join(
                    f"{float(final.sel(split='train', subset=s)):.3f}"
                    for s in ("easy", "difficult", "full")
                )
                + "; test: "
                + "/".join(
                    f"{float(final.sel(split='test', subset=s)):.3f}"
                    for s in ("easy", "difficult", "full")
                )
            )
        if (exp / "crosstrain.nc").exists():
            ct = _mean_of_seeds(open_artifact(exp / "crosstrain.nc", "crosstrain"))
            ct = ct["accuracy"].isel(epoch=-1)
            for t in ("easy", "difficult"):
                easy = float(ct.sel(train_on=t, evaluate_on="easy"))
                difficult = float(ct.sel(train_on=t, evaluate_on="difficult"))
                lines.append(
                    f"  trained on {t}: accuracy on easy {easy:.4f}, on difficult {difficult:.4f}"
                )
        if (exp / "gradstats.nc").exists():
            gs = _mean_of_seeds(open_artifact(exp / "gradstats.nc", "gradstats"))
            for var in ("cosine_similarity", "contribution"):
                means = gs[var].mean("epoch")
                lines.append(
                    f"  mean {var} over epochs: "
                    + ", ".join(
                        f"{s} {float(means.sel(subset=s)):.4g}" for s in gs["subset"].values
                    )
                )
    return "\n".join(lines)
