import numpy as np
import pytest
import torch

from memorization.method.masks import (
    KEEP_SCALE,
    MaskCollisionError,
    TurnOverMasks,
    check_keep_fraction,
    complement,
    distinct_masks,
    expected_collisions,
    keep_count,
    splitmix64,
    subnet_scales,
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


@pytest.mark.parametrize("p", [0.25, 0.3, 0.75])
def test_other_keep_fractions_scale_both_subnetworks_to_keep_the_mean(p):
    examples = np.arange(200)
    bits = turnover_mask(7, 0, examples, 40, keep_fraction=p)
    assert (bits.sum(axis=1) == int(40 * p + 1e-9)).all()
    # the kept units are the ones with the smallest hashes: a smaller fraction is a subset
    assert not (bits & ~turnover_mask(7, 0, examples, 40, keep_fraction=0.9)).any()
    bank = TurnOverMasks(3, [40, 9], examples, keep_fraction=p)
    rows = torch.arange(200)
    up, down = subnet_scales(p)
    assert (up, down) == (1 / p, 1 / (1 - p))
    for u, m in zip(bank.unmuted(rows), bank.muted(rows), strict=True):
        assert set(u.unique().tolist()) == {0.0, np.float32(up)}
        assert set(m.unique().tolist()) == {0.0, np.float32(down)}
        assert torch.equal(u == 0, m != 0)  # complementary supports
        # each sub-network keeps a layer's mean (inverted dropout), up to rounding the count
        units = u.shape[1]
        assert u.mean().item() == pytest.approx(keep_count(units, p) / (p * units), rel=1e-6)
    # the complement of the unmuted masks is exactly the muted masks (zeros exactly zero)
    for c, m in zip(complement(bank.unmuted(rows), p), bank.muted(rows), strict=True):
        assert torch.equal(c, m)


def test_default_keep_fraction_is_the_papers_half():
    bank = TurnOverMasks(3, [16], np.arange(10))
    assert bank.keep_fraction == 0.5 and subnet_scales() == (KEEP_SCALE, KEEP_SCALE)
    u = bank.unmuted(torch.arange(10))
    assert torch.equal(complement(u)[0], KEEP_SCALE - u[0])
    assert np.array_equal(
        turnover_mask(1, 2, np.arange(50), 11, 0.5), turnover_mask(1, 2, np.arange(50), 11)
    )


def test_keep_count_and_fraction_bounds():
    assert keep_count(64) == 32 and keep_count(9) == 4
    assert keep_count(100, 0.29) == 29  # not 28 from 100 * 0.29 = 28.999...
    assert keep_count(4, 0.01) == 1 and keep_count(4, 0.99) == 3  # both sub-networks non-empty
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            check_keep_fraction(bad)
    with pytest.raises(MaskCollisionError):  # C(4, 1) = 4 masks for 5 examples
        TurnOverMasks(0, [4], np.arange(5), keep_fraction=0.25)


def test_distinct_masks_and_expected_collisions():
    assert distinct_masks([4]) == 6 and distinct_masks([4, 5]) == 6 * 10
    assert distinct_masks([8], keep_fraction=0.25) == 28
    assert expected_collisions([4], 3) == pytest.approx(3 / 6)
    # one 32-bit mask cannot serve 50,000 examples; 48 bits can
    assert expected_collisions([32], 50_000) > 1 > 1e-3 > expected_collisions([48], 50_000)
    # the count agrees with the masks actually drawn
    bits = turnover_mask(0, 0, np.arange(2000), 6)
    assert len({tuple(b) for b in bits}) == distinct_masks([6]) == 20
