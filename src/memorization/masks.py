"""Turn-over dropout masks: deterministic, per example, per layer.

Every masked layer of a model gets, for each example, a mask that keeps exactly
half of its units (rounded down). The mask is a pure function of
``(seed, layer, example)``: each unit gets a 64-bit counter-based hash
(splitmix64 of the seed, the layer index, the example index and the unit
index) and the half of the units with the smallest hashes is kept. Integer
arithmetic makes the masks identical on every machine and device; they are
computed with NumPy and only then moved to the model's device.

The *unmuted* sub-network of example ``i`` is the one its mask keeps: it is
the only part that sees ``i`` during training. The *muted* sub-network is the
complement: it is never updated by ``i`` and so approximates a model trained
without ``i``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "KEEP_SCALE",
    "MaskCollisionError",
    "TurnOverMasks",
    "splitmix64",
    "turnover_mask",
]

#: Kept units are scaled by 2 (inverted dropout at rate 1/2), in both sub-networks.
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


def turnover_mask(
    seed: int, layer: int, examples: Sequence[int] | np.ndarray, units: int
) -> np.ndarray:
    """Boolean [len(examples), units] masks; True marks a unit of the unmuted sub-network.

    Exactly ``units // 2`` units are kept per example. Pure function of its arguments.
    """
    if units < 2:
        raise ValueError(f"a masked layer needs at least 2 units, got {units}")
    examples = np.asarray(examples)
    if examples.ndim != 1:
        raise ValueError("examples must be a 1-d sequence of example indices")
    if examples.size and examples.min() < 0:
        raise ValueError("example indices must be non-negative")
    keep = units // 2
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
    their position ``0..len(examples)-1``.
    """

    def __init__(
        self,
        seed: int,
        layer_units: Sequence[int],
        examples: Sequence[int] | np.ndarray,
        device: torch.device | str = "cpu",
        *,
        check_unique: bool = True,
    ) -> None:
        self.seed = int(seed)
        self.layer_units = [int(u) for u in layer_units]
        self.examples = np.asarray(examples, dtype=np.int64)
        banks = [
            turnover_mask(self.seed, layer, self.examples, units)
            for layer, units in enumerate(self.layer_units)
        ]
        if check_unique and len(self.examples) > 1:
            _check_unique(banks, self.examples)
        self.banks = [torch.from_numpy(b).to(device) for b in banks]

    def __len__(self) -> int:
        return len(self.examples)

    def unmuted(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """Float masks (0 or KEEP_SCALE) of the unmuted sub-networks of these examples."""
        return [bank[positions] * KEEP_SCALE for bank in self.banks]  # bool * float: float32

    def muted(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """Float masks (0 or KEEP_SCALE) of the muted sub-networks: the complements."""
        return [(~bank[positions]) * KEEP_SCALE for bank in self.banks]

    def kept_fraction(self) -> list[float]:
        return [float(b.float().mean()) for b in self.banks]
