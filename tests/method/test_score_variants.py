import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memorization.data import TensorSplit
from memorization.method.models import build_model
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import score_examples, score_split

# the score variants are research code outside the library: benchmarks/score_variants.py
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from score_variants import (  # noqa: E402
    muted_partition,
    partition_scores,
    sharpened_memorization,
    sharpened_scores,
    shift,
    shift_views,
    view_scores,
)


def _split(n=60, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorSplit(x, y, np.arange(100, 100 + n))


def _model(keep_fraction=0.5, hidden=24, seed=0):
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 6, 6), 3, hidden=hidden, keep_fraction=keep_fraction)
    split = _split()
    return model, split, model.turnover_masks(7, split.examples, check_unique=False)


def test_shift_moves_pixels_and_repeats_edges():
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    right = shift(x, 0, 1)[0, 0]
    assert right.tolist() == [[0, 0, 1], [3, 3, 4], [6, 6, 7]]
    up = shift(x, -1, 0)[0, 0]
    assert up.tolist() == [[3, 4, 5], [6, 7, 8], [6, 7, 8]]
    assert torch.equal(shift(x, 0, 0), x)
    with pytest.raises(ValueError):
        shift(x, 3, 0)


def test_shift_views():
    assert shift_views() == [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    views = shift_views(2, diagonal=True)
    assert len(views) == 9 and len(set(views)) == 9 and (2, -2) in views
    with pytest.raises(ValueError):
        shift_views(0)


def test_view_scores_of_the_image_alone_are_the_plain_scores():
    model, split, masks = _model()
    plain = score_examples(model, split, masks)
    one = view_scores(model, split, masks, [(0, 0)])
    np.testing.assert_allclose(one["view_memorization"], plain["memorization"], atol=1e-6)
    np.testing.assert_allclose(
        one["view_probability_memorization"], plain["probability_memorization"], atol=1e-6
    )
    np.testing.assert_array_equal(one["view_zero_one_memorization"], plain["zero_one_memorization"])


def test_view_scores_average_the_shifted_images():
    model, split, masks = _model()
    views = shift_views(1)
    res = view_scores(model, split, masks, views, batch_size=17)
    per_view = [
        score_examples(model, TensorSplit(shift(split.x, dy, dx), split.y, split.examples), masks)
        for dy, dx in views
    ]
    for key in ("loss_muted", "loss_unmuted", "prob_muted"):
        np.testing.assert_allclose(
            res[key], np.mean([v[key] for v in per_view], 0), rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(
        res["view_memorization"],
        np.mean([v["memorization"] for v in per_view], 0),
        rtol=1e-5,
        atol=1e-6,
    )
    # a shifted view changes the score: the average is not the image's own score
    assert not np.allclose(res["view_memorization"], per_view[0]["memorization"])


@pytest.mark.parametrize("keep_fraction, parts", [(0.25, 3), (0.5, 2), (0.25, 1)])
def test_muted_partition_splits_the_muted_units(keep_fraction, parts):
    _, split, masks = _model(keep_fraction)
    rows = torch.arange(len(split))
    part_masks = muted_partition(masks, rows, parts)
    assert len(part_masks) == parts
    kept = [p[0] > 0 for p in part_masks]
    union = torch.zeros_like(kept[0])
    for k, a in enumerate(kept):
        assert not (a & masks.banks[0]).any()  # never a unit of the unmuted sub-network
        for b in kept[k + 1 :]:
            assert not (a & b).any()  # disjoint parts
        union |= a
        # each part is rescaled to keep the layer's mean activation
        np.testing.assert_allclose(part_masks[k][0].sum(1).numpy(), masks.layer_units[0], rtol=1e-5)
    assert torch.equal(union, ~masks.banks[0])  # together, the whole muted sub-network
    again = muted_partition(masks, rows, parts)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(part_masks, again, strict=True))
    if parts == 1:
        torch.testing.assert_close(part_masks[0][0], masks.muted(rows)[0])


def test_muted_partition_differs_between_examples_and_refuses_too_many_parts():
    _, split, masks = _model(0.25, hidden=8)
    part_masks = muted_partition(masks, torch.arange(len(split)), 3)
    assert len({tuple(row.tolist()) for row in part_masks[0][0] > 0}) > 1
    with pytest.raises(ValueError):
        muted_partition(masks, torch.arange(3), 7)  # 6 muted units


def test_partition_scores_with_one_part_are_the_plain_scores():
    model, split, masks = _model()
    plain = score_examples(model, split, masks)
    res = partition_scores(model, split, masks, 1)
    np.testing.assert_allclose(res["partition_memorization"], plain["memorization"], atol=1e-5)
    np.testing.assert_allclose(res["prob_muted"], plain["prob_muted"], atol=1e-6)


def test_partition_scores_average_the_parts_probabilities():
    model, split, masks = _model(0.25)
    res = partition_scores(model, split, masks, 3)
    rows = torch.arange(len(split))
    with torch.no_grad():
        probs = [
            torch.softmax(model(split.x, p), 1).gather(1, split.y[:, None])[:, 0]
            for p in muted_partition(masks, rows, 3)
        ]
    expected = torch.stack(probs).mean(0).numpy()
    np.testing.assert_allclose(res["prob_muted"], expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res["loss_muted"], -np.log(expected), rtol=1e-5)


def test_sharpened_memorization_between_probability_and_zero_one_forms():
    model, split, masks = _model()
    plain = score_examples(model, split, masks)
    np.testing.assert_allclose(
        sharpened_scores(model, split, masks, 1.0), plain["probability_memorization"], atol=1e-6
    )
    cold = sharpened_scores(model, split, masks, 1e-4)
    np.testing.assert_allclose(cold, plain["zero_one_memorization"], atol=1e-3)
    warm = sharpened_scores(model, split, masks, 0.5)
    assert not np.allclose(warm, plain["probability_memorization"])
    assert np.all(np.abs(warm) <= 1)


def test_sharpened_memorization_by_hand():
    logits_u = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    logits_m = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 1])
    got = sharpened_memorization(logits_u, logits_m, y, temperature=0.5)
    sig = torch.sigmoid
    expected = torch.stack(
        [sig(torch.tensor(4.0)) - 0.5, sig(torch.tensor(2.0)) - sig(torch.tensor(-2.0))]
    )
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError):
        sharpened_memorization(logits_u, logits_m, y, temperature=0.0)


def test_score_split_adds_the_sharpened_score_and_keeps_the_rest():
    split = _split(n=80)
    opt = OptimSpec(epochs=2, lr=0.1, batch_size=16)
    args = (ModelSpec.from_config("mlp", {"hidden": 32}).with_classes(3), split, opt, 0)
    plain = score_split(*args, progress=False)
    sharp = score_split(*args, progress=False, sharpen_temperature=1.0)
    assert "sharpened_memorization" not in plain
    for name in plain.data_vars:
        np.testing.assert_array_equal(sharp[name].values, plain[name].values)
    np.testing.assert_allclose(
        sharp["sharpened_memorization"].values,
        plain["probability_memorization"].values,
        atol=1e-6,
    )
    assert sharp["sharpened_memorization"].attrs["temperature"] == 1.0
