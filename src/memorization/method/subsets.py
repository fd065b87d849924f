"""Easy and difficult subsets: the examples with the lowest and highest memorization scores."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["easy_difficult"]


def easy_difficult(memorization: xr.DataArray, size: int) -> xr.Dataset:
    """Boolean ``easy``/``difficult`` masks over ``example``: the ``size`` lowest / highest scores.

    Ties are broken by example order (a stable sort), so the subsets are
    deterministic; they never overlap because ``size`` is at most half.
    """
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    scores = np.asarray(memorization.values, dtype=np.float64)
    n = scores.size
    if not 1 <= size <= n // 2:
        raise ValueError(f"subset size must be between 1 and half of the {n} examples, got {size}")
    if np.isnan(scores).any():
        raise ValueError("memorization scores contain NaN: the scoring run diverged")
    order = np.argsort(scores, kind="stable")
    easy = np.zeros(n, dtype=bool)
    difficult = np.zeros(n, dtype=bool)
    easy[order[:size]] = True
    difficult[order[n - size :]] = True
    return xr.Dataset(
        {
            "easy": ("example", easy),
            "difficult": ("example", difficult),
            "memorization": ("example", scores),
        },
        coords={"example": memorization["example"].values},
    )
