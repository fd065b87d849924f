import os

import numpy as np
import pytest
import torch
import xarray as xr

from memorization.artifacts import ENGINE, open_artifact, provenance, write_artifact
from memorization.data import TensorSplit, to_tensors
from memorization.scoring import score_examples, score_split
from memorization.subsets import easy_difficult
from memorization.training import OptimConfig


@pytest.fixture(scope="module")
def small_train(mnist5k):
    full = to_tensors(mnist5k, "train")
    rows = np.arange(0, 4000, 8)  # 500 examples, every class
    return TensorSplit(full.x[rows], full.y[rows], full.examples[rows])


OPT = OptimConfig(epochs=3, lr=0.05, batch_size=64)


def _score(split, seed=0, corrupted=None):
    return score_split(
        "mlp", {"hidden": 128}, split, 10, OPT, seed, corrupted=corrupted, progress=False
    )


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

    from memorization.corruption import corrupt_labels

    labels, corrupted = corrupt_labels(small_train.y.numpy(), 100, 10, seed=0)
    noisy = TensorSplit(small_train.x, torch.as_tensor(labels), small_train.examples)
    opt = OptimConfig(epochs=12, lr=0.1, batch_size=64)
    ds = score_split("mlp", {"hidden": 512}, noisy, 10, opt, 0, corrupted=corrupted, progress=False)
    auc = roc_auc_score(corrupted, ds["memorization"].values)
    assert auc > 0.8


def test_scoring_shares_the_first_layer_but_matches_separate_forwards(small_train):
    from torch.nn import functional as F

    from memorization.masks import TurnOverMasks
    from memorization.models import MLP

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
    write_artifact(ds, path, "subsets", provenance({"seed": 7, "lr": 0.1}, device="cpu"))
    with xr.open_dataset(path, engine=ENGINE) as back:
        assert back["memorization"].attrs["units"] == "nats"
        assert "memorization score" in back["memorization"].attrs["long_name"]
        assert back.attrs["seed"] == 7 and back.attrs["torch_version"] == torch.__version__
        assert "lr: 0.1" in back.attrs["config"]
        assert back["easy"].dtype == bool
    with pytest.raises(ValueError, match="missing variables"):
        write_artifact(ds.drop_vars("easy"), tmp_path / "bad.nc", "subsets", {})
    # the artifact is readable like any file the user makes, not private like a temp file
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    # a failing write leaves neither a partial file nor a temporary one behind
    monkeypatch.setattr(xr.Dataset, "to_netcdf", lambda *a, **k: (_ for _ in ()).throw(OSError))
    with pytest.raises(OSError):
        write_artifact(ds, tmp_path / "new.nc", "subsets", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subsets.nc"]
    with pytest.raises(ValueError, match="expected 'scores'"):
        open_artifact(path, "scores")


def test_influence_on_itself_is_the_memorization_score(small_train):
    from memorization.masks import TurnOverMasks
    from memorization.models import MLP
    from memorization.scoring import influence

    torch.manual_seed(0)
    model = MLP((1, 28, 28), 10, hidden=64)
    masks = TurnOverMasks(0, model.mask_units, small_train.examples)
    rows = torch.tensor([3, 10, 42])
    infl = influence(model, masks, rows, small_train.x[rows], small_train.y[rows])
    assert infl.shape == (3, 3)
    mem = score_examples(model, small_train, masks)["memorization"][rows.numpy()]
    np.testing.assert_allclose(np.diag(infl), mem, rtol=1e-4, atol=1e-5)
    assert not np.allclose(infl[0], infl[1])  # each training example has its own masks
