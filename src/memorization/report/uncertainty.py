"""Intervals for the claims: every verdict is taken on an interval, not on a number.

A claim measures a continuous *effect* (an area between two learning curves, a drop in
test accuracy, an AUC, ...) and compares it with a threshold. Its 95 % interval comes from
draws that redo the measurement under the noise it is subject to:

- **seeds** (``claim_seeds``): the plain-training studies repeat their training with
  independent seeds; the draws of every seed are pooled, so the interval covers the
  training's own variability, which is what differs between two machines (their
  floating-point sums differ, and training amplifies the difference);
- **examples**: an accuracy over ``n`` examples is redrawn as a binomial proportion
  (:func:`binomial`), a statistic of per-example values by resampling the examples
  (:func:`resample`).

Every draw comes from a generator seeded by the claim's own name (:func:`generator`), so the
same artifacts give the same interval on every machine. The verdict (:func:`decide`):
*supported* when the whole interval lies beyond the threshold, *not supported* when it
lies entirely on the other side, *inconclusive* when it straddles the threshold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

__all__ = ["DRAWS", "LEVEL", "binomial", "decide", "generator", "interval", "resample"]

#: draws per interval (per seed)
DRAWS = 400
#: the interval's coverage
LEVEL = 0.95

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"


def generator(*key: object) -> np.random.Generator:
    """A generator seeded by a key (e.g. the claim's figure, name and experiment)."""
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def binomial(accuracy, n, rng: np.random.Generator, draws: int = DRAWS) -> np.ndarray:
    """Draws ``[draws, *shape]`` of accuracies measured on ``n`` examples (binomial)."""
    p = np.clip(np.nan_to_num(np.asarray(accuracy, dtype=float), nan=0.0), 0.0, 1.0)
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), p.shape)
    safe = np.maximum(n, 1)
    out = rng.binomial(safe, p, size=(draws, *p.shape)) / safe
    return np.where(n > 0, out, np.nan)


def resample(
    values: np.ndarray,
    stat: Callable[[np.ndarray], float],
    rng: np.random.Generator,
    draws: int = DRAWS,
) -> np.ndarray:
    """``stat`` of ``draws`` resamples (with replacement) of the rows of ``values``."""
    values = np.asarray(values)
    n = len(values)
    return np.array([stat(values[rng.integers(0, n, n)]) for _ in range(draws)])


def interval(draws: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` interval of the draws (NaN draws left out)."""
    draws = np.asarray(draws, dtype=float).ravel()
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def decide(draws: np.ndarray, threshold: float, above: bool = True) -> tuple[str, tuple]:
    """The verdict and the interval: supported when the interval lies beyond ``threshold``
    (above it, or with ``above=False`` below it), not supported when it lies on the other
    side, inconclusive when it straddles it."""
    low, high = interval(draws)
    if not np.isfinite(low):
        return "not measured", (low, high)
    if above:
        verdict = SUPPORTED if low > threshold else NOT_SUPPORTED if high <= threshold else None
    else:
        verdict = SUPPORTED if high < threshold else NOT_SUPPORTED if low >= threshold else None
    return verdict or INCONCLUSIVE, (low, high)
