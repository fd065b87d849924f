"""Turn-over replicates: R independent trainings of one experiment, merged.

Each replicate trains the turn-over model with its own seed
(:func:`replicate_seed`): its own initialisation, batch order
and masks. The noise of a memorization score is mostly between mask draws (one in/out
sub-network pair per example), so averaging replicates reduces it where averaging the
epochs of one run does not.

:func:`merge_replicates` stacks the runs along a ``replicate`` dimension and, for each
score form of :data:`memorization.method.scoring.SCORE_FORMS` (``memorization``,
``probability_memorization``, ``zero_one_memorization``, ``sharpened_memorization`` and the
cumulative form ``cumulative_memorization``, a sum over the epochs, averaged like the
others), keeps the mean over replicates under the score's own name, its standard error
(``<score>_se``) and the per-replicate values (``<score>_by_replicate``). The other
per-run variables (losses, probabilities, predictions, per-epoch accuracies) keep their
names and gain the ``replicate`` dimension; the labels are shared.
:func:`first_replicate` gives the view of one run that the figures draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..method.forms import SCORE_FORMS

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "SCORE_VARIABLES",
    "first_replicate",
    "merge_replicates",
    "replicate_seed",
    "subset_means",
]

#: the score forms, each averaged over replicates
SCORE_VARIABLES = tuple(SCORE_FORMS.values())


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed of turn-over replicate ``replicate``: the experiment's own for replicate 0,
    else a hash of both (independent initialisation, batch order and masks)."""
    if replicate == 0:
        return int(seed)
    from ..method.masks import splitmix64  # heavy dependency: the masks' module imports torch

    mixed = splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(replicate) + np.uint64(0xEB1)))
    return int(mixed % np.uint64(2**31 - 1))


#: per-example variables every replicate shares (the labels)
SHARED = ("label", "true_label", "corrupted", "mislabeled")


def merge_replicates(runs: Sequence[xr.Dataset], seeds: Sequence[int]) -> xr.Dataset:
    """One scores dataset from R single-run datasets of the same examples and labels."""
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    if len(runs) < 2:
        raise ValueError("merging needs at least 2 replicates")
    first = runs[0]
    for k, run in enumerate(runs[1:], 1):
        if not np.array_equal(run["example"].values, first["example"].values):
            raise ValueError(f"replicate {k} scores other examples than replicate 0")
        for name in SHARED:
            if name in first and not np.array_equal(run[name].values, first[name].values):
                raise ValueError(f"replicate {k} was trained on other labels ({name} differs)")
    per_run = [n for n in first.data_vars if n not in SHARED]
    stacked = xr.concat([r[per_run] for r in runs], dim="replicate", join="exact")
    stacked = stacked.assign_coords(replicate=np.arange(len(runs)))
    scores = [s for s in SCORE_VARIABLES if s in stacked]
    out = stacked.drop_vars(scores)
    for name in SHARED:
        if name in first:
            out[name] = first[name]
    r = len(runs)
    for score in scores:
        values = stacked[score]
        out[score] = values.mean("replicate")
        out[f"{score}_se"] = values.std("replicate", ddof=1) / np.sqrt(r)
        out[f"{score}_by_replicate"] = values
    out["replicate_seed"] = ("replicate", np.asarray(seeds, dtype=np.int64))
    out.attrs.update({k: v for k, v in first.attrs.items()})
    out.attrs["replicates"] = r
    return out


def first_replicate(scores: xr.Dataset) -> xr.Dataset:
    """A single run's view: replicate 0's predictions and losses, the mean of the
    per-epoch accuracies over replicates, the scores' means (unchanged)."""
    if "replicate" not in scores.dims:
        return scores
    out = scores.isel(replicate=0)
    for name in ("subnet_accuracy", "subnet_loss", "heldout_accuracy"):
        if name in scores:
            out[name] = scores[name].mean("replicate")
    return out


def subset_means(scores: xr.Dataset, score: str, replicates: int) -> np.ndarray:
    """The mean of ``score`` over the first ``replicates`` replicates (for R = 1, 2, 4 ...
    from one file with R_max replicates)."""
    if "replicate" not in scores.dims:
        if replicates != 1:
            raise ValueError(f"the scores hold one replicate, not {replicates}")
        return scores[score].values
    by = scores[f"{score}_by_replicate"]
    if replicates > by.sizes["replicate"]:
        raise ValueError(f"the scores hold {by.sizes['replicate']} replicates, not {replicates}")
    return by.isel(replicate=slice(0, replicates)).mean("replicate").values
