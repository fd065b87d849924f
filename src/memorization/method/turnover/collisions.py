"""Whether a model's turn-over masks can be distinct for every example of a dataset.

The number of distinct masks is the product over masked layers of C(units, kept).
:func:`mask_collisions` says when that is too few for ``n`` examples: when the birthday
bound says a collision is not negligible, it computes every example's masks and checks
them exactly. :data:`UNITS_OPTIONS` names, for each model family, the options that decide
those units (the keys a problem is reported under).
"""

from __future__ import annotations

import math

from ...data.spec import DatasetInfo
from ..masks import MaskCollisionError, distinct_masks, keep_count

__all__ = ["COLLISION_CHECK_ABOVE", "UNITS_OPTIONS", "mask_collisions"]

#: a mask collision among n examples is checked exactly when the birthday bound
#: n² / (2 · distinct masks) exceeds this (else it is negligible and not computed)
COLLISION_CHECK_ABOVE = 1e-9

#: the options that decide how many units each model's masked layers have
UNITS_OPTIONS = {
    "mlp": ("hidden", "keep_fraction"),
    "vgg11": ("width", "mask_groups", "masked_layers", "keep_fraction"),
    "cct": ("embed_dim", "heads", "tokenizer_channels", "mlp_ratio", "keep_fraction"),
    "external": ("mask_groups", "head_hidden", "turnover", "keep_fraction"),
}


def mask_collisions(model, n: int, seed: int, info: DatasetInfo | None = None) -> list[str]:
    """Problems with the turn-over masks of ``n`` examples: too few distinct masks.

    The number of distinct masks is the product over masked layers of C(units, kept)
    (with the model's keep fraction). When the birthday bound says a collision among
    ``n`` examples is not negligible, the masks of every example id of the dataset are
    computed and checked exactly.
    """
    units = list(getattr(model, "mask_units", []))
    if not units:
        return []
    keep = float(getattr(model, "keep_fraction", 0.5))
    try:
        log_distinct = sum(_log_choose(u, keep_count(u, keep)) for u in units)
    except ValueError as err:  # e.g. a layer of one unit
        return [f"turn-over masks impossible: {err}"]
    log_pairs = math.log(max(n, 2)) * 2 - math.log(2)
    if log_pairs - log_distinct < math.log(COLLISION_CHECK_ABOVE):
        return []  # the birthday bound: a collision is negligible
    distinct = distinct_masks(units, keep)
    if distinct < n:
        return [
            f"the masked layers (units {units}, keep fraction {keep}) allow only {distinct} "
            f"distinct turn-over masks for {n} examples; use more units per layer"
        ]
    total = info.n_train + info.n_test if info else n
    try:  # every example id of the dataset (0 .. N-1): a superset of each split's
        model.turnover_masks(seed, range(total))
    except MaskCollisionError as err:
        return [f"turn-over masks collide among the dataset's examples (units {units}): {err}"]
    return []


def _log_choose(n: int, k: int) -> float:
    """log C(n, k), without forming the (possibly huge) integer."""
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
