import os

import numpy as np
import pytest
import torch
import xarray as xr

from memorization.data import TensorSplit, to_tensors
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import score_examples, score_split
from memorization.method.subsets import easy_difficult
from memorization.workflow.artifacts import ENGINE, open_artifact, write_artifact
from memorization.workflow.provenance import provenance
from memorization.workflow.stages.scores import SUBSETS


@pytest.fixture(scope="module")
def small_train(mnist5k):
    full = to_tensors(mnist5k, "train")
    rows = np.arange(0, 4000, 8)  # 500 examples, every class
    return TensorSplit(full.x[rows], full.y[rows], full.examples[rows])


OPT = OptimSpec(epochs=3, lr=0.05, batch_size=64)


def mlp(hidden: int) -> ModelSpec:
    """The MLP with ``hidden`` units on the 10 digit classes."""
    return ModelSpec.from_config("mlp", {"hidden": hidden}).with_classes(10)


def _score(split, seed=0, corrupted=None):
    return score_split(mlp(128), split, OPT, seed, corrupted=corrupted, progress=False)


def test_scores_are_deterministic_for_a_seed(small_train):
    a, b = _score(small_train), _score(small_train)
    assert np.array_equal(a["memorization"].values, b["memorization"].values)
    c = _score(small_train, seed=1)
    assert not np.array_equal(a["memorization"].values, c["memorization"].values)


def test_score_dataset_contents(small_train):
    ds = _score(small_train)
    np.testing.assert_allclose(
        ds["memorization"].values, ds["loss_muted"].values - ds["loss_unmuted"].values
    )
    np.testing.assert_allclose(
        ds["prob_unmuted"].values, np.exp(-ds["loss_unmuted"].values), rtol=1e-5
    )
    assert ds["subnet_accuracy"].dims == ("epoch", "subnet")
    assert ds["epoch"].values.tolist() == [1, 2, 3]
    assert list(ds["subnet"].values) == ["unmuted", "muted"]
    # the last epoch's accuracies are those of the final predictions
    y = ds["label"].values
    assert ds["subnet_accuracy"].sel(subnet="unmuted").values[-1] == pytest.approx(
        (ds["pred_unmuted"].values == y).mean()
    )
    # trained sub-networks are better than chance; unmuted sees each example, muted does not
    acc = ds["subnet_accuracy"].isel(epoch=-1)
    assert float(acc.sel(subnet="muted")) > 0.5
    assert float(acc.sel(subnet="unmuted")) >= float(acc.sel(subnet="muted"))
    assert np.array_equal(ds["example"].values, small_train.examples)


def test_memorization_flags_random_labels(small_train):
    from sklearn.metrics import roc_auc_score

    from memorization.data.corruption import corrupt_labels

    labels, corrupted = corrupt_labels(small_train.y.numpy(), 100, 10, seed=0)
    noisy = TensorSplit(small_train.x, torch.as_tensor(labels), small_train.examples)
    opt = OptimSpec(epochs=12, lr=0.1, batch_size=64)
    ds = score_split(mlp(512), noisy, opt, 0, corrupted=corrupted, progress=False)
    auc = roc_auc_score(corrupted, ds["memorization"].values)
    assert auc > 0.8


def test_scoring_shares_the_first_layer_but_matches_separate_forwards(small_train):
    from torch.nn import functional as F

    from memorization.method.masks import TurnOverMasks
    from memorization.method.models.mlp import MLP

    torch.manual_seed(0)
    model = MLP((1, 28, 28), 10, hidden=64)
    masks = TurnOverMasks(0, model.mask_units, small_train.examples)
    res = score_examples(model, small_train, masks, batch_size=100)
    rows = torch.arange(len(small_train))
    with torch.no_grad():
        ref = F.cross_entropy(
            model(small_train.x, masks.muted(rows)), small_train.y, reduction="none"
        )
    np.testing.assert_allclose(res["loss_muted"], ref.numpy(), rtol=1e-5, atol=1e-6)


def test_subsets_are_lowest_and_highest():
    mem = xr.DataArray(
        np.array([0.5, -1.0, 3.0, 0.0, 2.0, 0.1]),
        dims="example",
        coords={"example": [10, 11, 12, 13, 14, 15]},
    )
    ds = easy_difficult(mem, 2)
    assert ds["example"].values[ds["easy"].values].tolist() == [11, 13]
    assert ds["example"].values[ds["difficult"].values].tolist() == [12, 14]
    with pytest.raises(ValueError, match="half"):
        easy_difficult(mem, 4)


def test_artifacts_carry_units_provenance_and_are_atomic(tmp_path, monkeypatch):
    ds = xr.Dataset(
        {
            "easy": ("example", [True, False]),
            "difficult": ("example", [False, True]),
            "memorization": ("example", [0.1, 2.0]),
        },
        coords={"example": [3, 4]},
    )
    path = tmp_path / "subsets.nc"
    write_artifact(ds, path, "subsets", SUBSETS, provenance({"seed": 7, "lr": 0.1}, device="cpu"))
    with xr.open_dataset(path, engine=ENGINE) as back:
        assert back["memorization"].attrs["units"] == "nats"
        long_name = back["memorization"].attrs["long_name"]
        assert long_name == "the score the subsets rank by (memorization)"
        assert back.attrs["seed"] == 7 and back.attrs["torch_version"] == torch.__version__
        assert "lr: 0.1" in back.attrs["config"]
        assert back["easy"].dtype == bool
        # a yes/no variable carries flag values and meanings instead of units
        assert back["easy"].attrs["flag_values"].tolist() == [0, 1]
        assert back["easy"].attrs["flag_meanings"] == "false true"
        assert "units" not in back["easy"].attrs
        assert back.attrs["Conventions"] == "CF-1.10" and back.attrs["title"] == SUBSETS.title
        assert back.attrs["kind"] == "subsets"
    with pytest.raises(ValueError, match="missing variables"):
        write_artifact(ds.drop_vars("easy"), tmp_path / "bad.nc", "subsets", SUBSETS, {})
    # the artifact is readable like any file the user makes, not private like a temp file
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    # a failing write leaves neither a partial file nor a temporary one behind
    monkeypatch.setattr(xr.Dataset, "to_netcdf", lambda *a, **k: (_ for _ in ()).throw(OSError))
    with pytest.raises(OSError):
        write_artifact(ds, tmp_path / "new.nc", "subsets", SUBSETS, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subsets.nc"]
    with pytest.raises(ValueError, match="expected 'scores'"):
        open_artifact(path, "scores")


def test_influence_on_itself_is_the_memorization_score(small_train):
    from memorization.method.masks import TurnOverMasks
    from memorization.method.models.mlp import MLP
    from memorization.trust.influence import influence

    torch.manual_seed(0)
    model = MLP((1, 28, 28), 10, hidden=64)
    masks = TurnOverMasks(0, model.mask_units, small_train.examples)
    rows = torch.tensor([3, 10, 42])
    infl = influence(model, masks, rows, small_train.x[rows], small_train.y[rows]).numpy()
    assert infl.shape == (3, 3)
    mem = score_examples(model, small_train, masks)["memorization"][rows.numpy()]
    np.testing.assert_allclose(np.diag(infl), mem, rtol=1e-4, atol=1e-5)
    assert not np.allclose(infl[0], infl[1])  # each training example has its own masks
