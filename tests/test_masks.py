import numpy as np
import pytest
import torch

from memorization.masks import (
    KEEP_SCALE,
    MaskCollisionError,
    TurnOverMasks,
    splitmix64,
    turnover_mask,
)


def test_splitmix64_matches_reference_values():
    # reference: splitmix64 applied to state 0, 1 (known outputs of the finaliser)
    ref = []
    for x in (0, 1):
        z = (x + 0x9E3779B97F4A7C15) % 2**64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
        ref.append(z ^ (z >> 31))
    assert splitmix64(np.array([0, 1], dtype=np.uint64)).tolist() == ref


def test_masks_keep_exactly_half_and_are_pure_functions():
    examples = np.arange(500)
    a = turnover_mask(7, 0, examples, 64)
    assert a.shape == (500, 64)
    assert (a.sum(axis=1) == 32).all()
    # order and batch composition do not matter: a pure function of (seed, layer, example)
    b = turnover_mask(7, 0, examples[::-1], 64)[::-1]
    assert np.array_equal(a, b)
    assert np.array_equal(turnover_mask(7, 0, [123], 64)[0], a[123])
    # odd unit counts keep floor(units/2)
    assert (turnover_mask(7, 1, examples, 9).sum(axis=1) == 4).all()


def test_masks_depend_on_seed_layer_and_example():
    ex = np.arange(200)
    base = turnover_mask(1, 0, ex, 128)
    assert not np.array_equal(base, turnover_mask(2, 0, ex, 128))
    assert not np.array_equal(base, turnover_mask(1, 1, ex, 128))
    # units are kept about half the time across examples (no unit always on or off)
    freq = turnover_mask(1, 0, np.arange(4000), 32).mean(axis=0)
    assert freq.min() > 0.4 and freq.max() < 0.6
    # masks of different examples agree on about half of their units
    agree = (base[:-1] == base[1:]).mean()
    assert 0.4 < agree < 0.6


def test_bank_gives_scaled_complementary_masks():
    bank = TurnOverMasks(3, [16, 8], np.arange(10, 30))
    rows = torch.tensor([0, 5, 19])
    unmuted, muted = bank.unmuted(rows), bank.muted(rows)
    for u, m, units in zip(unmuted, muted, [16, 8], strict=True):
        assert u.shape == (3, units)
        assert set(u.unique().tolist()) == {0.0, KEEP_SCALE}
        assert torch.equal(u + m, torch.full_like(u, KEEP_SCALE))
    expected = turnover_mask(3, 1, [15], 8)[0]
    assert np.array_equal(unmuted[1][1].numpy() > 0, expected)


def test_collisions_are_refused():
    # with 2 units per layer there are only 2 distinct masks: 3 examples must collide
    with pytest.raises(MaskCollisionError, match="shares its turn-over mask"):
        TurnOverMasks(0, [2], np.arange(3))


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 units"):
        turnover_mask(0, 0, [1], 1)
    with pytest.raises(ValueError, match="non-negative"):
        turnover_mask(0, 0, [-1], 4)
