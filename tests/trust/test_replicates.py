"""Turn-over replicates: independent seeds and masks, merged with means and standard errors."""

import numpy as np
import pytest
import xarray as xr

from memorization.data import prepare_dataset, to_tensors
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import score_split
from memorization.trust.replicates import (
    SCORE_VARIABLES,
    first_replicate,
    merge_replicates,
    replicate_seed,
    subset_means,
)


@pytest.fixture(scope="module")
def runs():
    ds = prepare_dataset("digits")
    train = to_tensors(ds, "train")
    opt = OptimSpec(epochs=2, lr=0.1, batch_size=128)
    model = ModelSpec.from_config("mlp", {"hidden": 32}).with_classes(10)
    seeds = [replicate_seed(5, r) for r in range(3)]
    out = [
        score_split(model, train, opt, s, progress=False, sharpen_temperature=0.5) for s in seeds
    ]
    return out, seeds


def test_replicate_seeds_are_distinct_and_keep_the_experiments_own():
    seeds = [replicate_seed(5, r) for r in range(100)]
    assert seeds[0] == 5 and len(set(seeds)) == 100
    assert replicate_seed(6, 1) != replicate_seed(5, 1)
    assert all(0 <= s < 2**31 for s in seeds)


def test_score_forms(runs):
    (run, *_), _ = runs
    y = run["label"].values
    right_u = run["pred_unmuted"].values == y
    right_m = run["pred_muted"].values == y
    assert np.array_equal(run["zero_one_memorization"].values, right_u.astype(float) - right_m)
    prob = run["prob_unmuted"].values - run["prob_muted"].values
    assert np.allclose(run["probability_memorization"].values, prob)
    assert set(np.unique(run["zero_one_memorization"].values)) <= {-1.0, 0.0, 1.0}


def test_merge_means_standard_errors_and_per_replicate_values(runs):
    out, seeds = runs
    merged = merge_replicates(out, seeds)
    assert merged.sizes["replicate"] == 3 and merged.attrs["replicates"] == 3
    # the cumulative form (a sum over the epochs) is averaged like the other forms
    assert "cumulative_memorization" in SCORE_VARIABLES
    assert merged["cumulative_memorization_by_replicate"].dims == ("replicate", "example")
    for score in SCORE_VARIABLES:
        stack = np.stack([r[score].values for r in out])
        assert np.allclose(merged[score].values, stack.mean(0))
        assert np.allclose(merged[f"{score}_se"].values, stack.std(0, ddof=1) / np.sqrt(3))
        assert np.array_equal(merged[f"{score}_by_replicate"].values, stack)
    assert merged["pred_muted"].dims == ("replicate", "example")
    assert merged["subnet_accuracy"].dims == ("replicate", "epoch", "subnet")
    assert merged["label"].dims == ("example",)
    assert merged["replicate_seed"].values.tolist() == seeds
    # the masks differ between replicates: their scores are not copies
    assert not np.array_equal(out[0]["memorization"].values, out[1]["memorization"].values)
    # the first R replicates' mean
    assert np.allclose(
        subset_means(merged, "memorization", 2),
        (out[0]["memorization"].values + out[1]["memorization"].values) / 2,
    )
    assert np.array_equal(subset_means(out[0], "memorization", 1), out[0]["memorization"].values)
    with pytest.raises(ValueError, match="hold 3 replicates, not 4"):
        subset_means(merged, "memorization", 4)
    view = first_replicate(merged)
    assert np.array_equal(view["pred_muted"].values, out[0]["pred_muted"].values)
    assert np.allclose(
        view["subnet_accuracy"].values, np.mean([r["subnet_accuracy"].values for r in out], 0)
    )


def test_merge_refuses_runs_on_other_labels(runs):
    out, seeds = runs
    other = out[1].copy()
    other["label"] = ("example", np.roll(other["label"].values, 1))
    with pytest.raises(ValueError, match="replicate 1 was trained on other labels"):
        merge_replicates([out[0], other], seeds[:2])
    fewer = out[1].isel(example=slice(1, None))
    with pytest.raises(ValueError, match="replicate 1 scores other examples"):
        merge_replicates([out[0], fewer], seeds[:2])
    with pytest.raises(ValueError, match="at least 2"):
        merge_replicates(out[:1], seeds[:1])
    assert isinstance(first_replicate(out[0]), xr.Dataset)
