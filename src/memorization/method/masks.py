"""Turn-over dropout masks: deterministic, per example, per layer.

Every masked layer of a model gets, for each example, a mask that keeps exactly
a fraction ``keep_fraction`` of its units (rounded down; the paper's 1/2 by
default). The mask is a pure function of ``(seed, layer, example)`` and the
keep fraction: each unit gets a 64-bit counter-based hash (splitmix64 of the
seed, the layer index, the example index and the unit index) and the units with
the smallest hashes are kept. Integer arithmetic makes the masks identical on
every machine and device; they are computed with NumPy and only then moved to
the model's device.

Both sub-networks are inverted dropout: the unmuted one keeps a fraction ``p``
of the units scaled by ``1/p``, the muted one the complement scaled by
``1/(1 - p)`` (both 2 at the paper's ``p = 1/2``), so that each preserves the
layer's mean activation.

The *unmuted* sub-network of example ``i`` is the one its mask keeps: it is
the only part that sees ``i`` during training. The *muted* sub-network is the
complement: it is never updated by ``i`` and so approximates a model trained
without ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "KEEP_SCALE",
    "check_keep_fraction",
    "complement",
    "distinct_masks",
    "expected_collisions",
    "keep_count",
    "subnet_scales",
    "MaskCollisionError",
    "TurnOverMasks",
    "splitmix64",
    "turnover_mask",
]

#: Kept units are scaled by 2 (inverted dropout at rate 1/2), in both sub-networks, at the
#: default keep fraction 1/2 (see :func:`subnet_scales` for the others).
KEEP_SCALE = 2.0

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class MaskCollisionError(RuntimeError):
    """Two training examples received the same turn-over mask."""


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on an array of unsigned 64-bit integers (wrapping)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def _unit_hashes(seed: int, layer: int, examples: np.ndarray, units: int) -> np.ndarray:
    """[len(examples), units] uint64 hashes of (seed, layer, example, unit)."""
    key = splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(layer) + np.uint64(0x5EED)))
    per_example = splitmix64(key ^ splitmix64(examples.astype(np.uint64)))
    unit_ids = splitmix64(np.arange(units, dtype=np.uint64) * _GOLDEN)
    return splitmix64(per_example[:, None] ^ unit_ids[None, :])


def check_keep_fraction(keep_fraction: float) -> float:
    """``keep_fraction`` as a float; refuses values outside (0, 1)."""
    p = float(keep_fraction)
    if not 0.0 < p < 1.0:
        raise ValueError(f"keep_fraction must be strictly between 0 and 1, got {keep_fraction}")
    return p


def subnet_scales(keep_fraction: float = 0.5) -> tuple[float, float]:
    """The factors of the kept units: ``(1/p, 1/(1-p))`` for the unmuted and muted sub-network."""
    p = check_keep_fraction(keep_fraction)
    return 1.0 / p, 1.0 / (1.0 - p)


def keep_count(units: int, keep_fraction: float = 0.5) -> int:
    """Units the unmuted sub-network keeps: ``floor(units * p)``, at least 1 and at most units-1."""
    if units < 2:
        raise ValueError(f"a masked layer needs at least 2 units, got {units}")
    p = check_keep_fraction(keep_fraction)
    return min(units - 1, max(1, int(units * p + 1e-9)))  # 1e-9: 100 * 0.29 is 28.99...


def complement(masks: Sequence[torch.Tensor], keep_fraction: float = 0.5) -> list[torch.Tensor]:
    """The muted masks of unmuted float masks: kept units dropped, dropped units kept.

    Dropped units of the muted sub-network are exactly zero (so it gets exactly no
    gradient through them); kept ones are ``1/(1-p)``. At ``p = 1/2`` this is
    ``KEEP_SCALE - m``.
    """
    if float(keep_fraction) == 0.5:
        return [KEEP_SCALE - m for m in masks]
    muted_scale = subnet_scales(keep_fraction)[1]
    return [(m == 0).to(m.dtype) * muted_scale for m in masks]


def distinct_masks(layer_units: Sequence[int], keep_fraction: float = 0.5) -> int:
    """How many different masks a model's layers allow: the product of C(units, kept)."""
    return math.prod(math.comb(int(u), keep_count(int(u), keep_fraction)) for u in layer_units)


def expected_collisions(
    layer_units: Sequence[int], n_examples: int, keep_fraction: float = 0.5
) -> float:
    """Expected number of pairs of ``n_examples`` examples drawn the same mask (birthday bound).

    Well below 1 means :class:`TurnOverMasks` will almost surely find no collision;
    e.g. one layer of 32 bits for 50,000 examples gives 2.1, of 48 bits 4e-5.
    """
    pairs = n_examples * (n_examples - 1) / 2
    return pairs / distinct_masks(layer_units, keep_fraction)


def turnover_mask(
    seed: int,
    layer: int,
    examples: Sequence[int] | np.ndarray,
    units: int,
    keep_fraction: float = 0.5,
) -> np.ndarray:
    """Boolean [len(examples), units] masks; True marks a unit of the unmuted sub-network.

    Exactly :func:`keep_count` units (``units // 2`` at the default ``keep_fraction``)
    are kept per example. Pure function of its arguments.
    """
    keep = keep_count(units, keep_fraction)
    examples = np.asarray(examples)
    if examples.ndim != 1:
        raise ValueError("examples must be a 1-d sequence of example indices")
    if examples.size and examples.min() < 0:
        raise ValueError("example indices must be non-negative")
    out = np.empty((examples.size, units), dtype=bool)
    chunk = max(1, (1 << 22) // units)  # ~32 MiB of hashes at a time
    for start in range(0, examples.size, chunk):
        h = _unit_hashes(seed, layer, examples[start : start + chunk], units)
        kth = np.partition(h, keep - 1, axis=1)[:, keep - 1 : keep]
        out[start : start + chunk] = h <= kth
    return out


def _check_unique(banks: Sequence[np.ndarray], examples: np.ndarray) -> None:
    packed = np.concatenate([np.packbits(b, axis=1) for b in banks], axis=1)
    _, first, counts = np.unique(packed, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = examples[first[counts > 1][0]]
        raise MaskCollisionError(
            f"example {dup} shares its turn-over mask with another training example; "
            "use more units per layer or another seed"
        )


class TurnOverMasks:
    """The masks of a set of examples for every masked layer of a model, kept on a device.

    ``layer_units[l]`` is the number of units (neurons or feature maps) of masked
    layer ``l``; ``examples`` are the example indices, addressed afterwards by
    their position ``0..len(examples)-1``. The unmuted sub-network keeps a
    fraction ``keep_fraction`` of every layer's units (scaled by ``1/p``), the
    muted one the rest (scaled by ``1/(1-p)``). A model's own masks come from
    :meth:`memorization.method.models.TurnOverNet.turnover_masks`, which passes its
    keep fraction.
    """

    def __init__(
        self,
        seed: int,
        layer_units: Sequence[int],
        examples: Sequence[int] | np.ndarray,
        device: torch.device | str = "cpu",
        *,
        check_unique: bool = True,
        keep_fraction: float = 0.5,
    ) -> None:
        self.seed = int(seed)
        self.layer_units = [int(u) for u in layer_units]
        self.examples = np.asarray(examples, dtype=np.int64)
        self.keep_fraction = float(keep_fraction)
        self.unmuted_scale, self.muted_scale = subnet_scales(keep_fraction)
        banks = [
            turnover_mask(self.seed, layer, self.examples, units, self.keep_fraction)
            for layer, units in enumerate(self.layer_units)
        ]
        if check_unique and len(self.examples) > 1:
            _check_unique(banks, self.examples)
        self.banks = [torch.from_numpy(b).to(device) for b in banks]

    def __len__(self) -> int:
        return len(self.examples)

    def unmuted(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """Float masks (0 or 1/p) of the unmuted sub-networks of these examples."""
        return [bank[positions] * self.unmuted_scale for bank in self.banks]  # float32

    def muted(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """Float masks (0 or 1/(1-p)) of the muted sub-networks: the complements."""
        return [(~bank[positions]) * self.muted_scale for bank in self.banks]

    def kept_fraction(self) -> list[float]:
        return [float(b.float().mean()) for b in self.banks]
