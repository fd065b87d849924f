"""The turn-over masks' arithmetic of the method layer: too few distinct masks, a
collision found exactly, and no exact check where the birthday bound says it is
negligible."""

from __future__ import annotations

from memorization.data.spec import DatasetInfo
from memorization.method.masks import TurnOverMasks
from memorization.method.models import MODELS
from memorization.method.turnover.collisions import UNITS_OPTIONS, mask_collisions


class Masked:
    """A stand-in model: its masked layers' units, and the examples it computed masks of."""

    def __init__(self, units, keep_fraction=0.5):
        self.mask_units, self.keep_fraction, self.asked = list(units), keep_fraction, []

    def turnover_masks(self, seed, examples):
        self.asked.append(list(examples))
        return TurnOverMasks(seed, self.mask_units, examples, keep_fraction=self.keep_fraction)


def _info(n_train, n_test):
    return DatasetInfo(
        n_train=n_train, n_test=n_test, shape=(1, 2, 2), classes=("a", "b"), source="arrays"
    )


def test_too_few_distinct_masks_are_refused_without_computing_any():
    model = Masked([2])
    assert mask_collisions(model, 3, seed=0) == [
        "the masked layers (units [2], keep fraction 0.5) allow only 2 distinct turn-over "
        "masks for 3 examples; use more units per layer"
    ]
    assert model.asked == []


def test_a_layer_of_one_unit_cannot_be_split():
    (problem,) = mask_collisions(Masked([1]), 10, seed=0)
    assert problem.startswith("turn-over masks impossible: ")


def test_a_collision_is_checked_exactly_on_every_example_id_of_the_dataset():
    model = Masked([8])  # C(8, 4) = 70 masks: 60 examples almost surely share one
    (problem,) = mask_collisions(model, 50, seed=0, info=_info(50, 10))
    assert problem.startswith("turn-over masks collide among the dataset's examples (units [8])")
    assert model.asked == [list(range(60))]  # both splits' ids, not only the n asked for


def test_a_negligible_collision_is_not_computed():
    wide = Masked([256, 256])
    assert mask_collisions(wide, 10_000, seed=0) == []
    assert wide.asked == []
    assert mask_collisions(object(), 10, seed=0) == []  # a model without masks


def test_every_built_in_model_names_the_options_of_its_units():
    assert set(MODELS) | {"external"} == set(UNITS_OPTIONS)
    assert all("keep_fraction" in keys for keys in UNITS_OPTIONS.values())
