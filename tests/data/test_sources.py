"""Dataset sources: arrays, image_folder, torchvision, huggingface; and LazyImages."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from memorization.data import (
    SOURCES,
    DatasetError,
    DatasetSpec,
    dataset_info,
    dataset_spec,
    prepare_dataset,
    to_tensors,
)
from memorization.data.lazy import LazyImages
from memorization.data.sources import arrays


def spec(dataset, source, /, **options):
    """The spec the config ``datasets: {dataset: {source: ..., **options}}`` gives."""
    return dataset_spec(dataset, {dataset: {"source": source, **options}})


def _stats(images, train):
    scaled = images[train].astype(np.float64) / 255.0
    return scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3))


# --- registry ----------------------------------------------------------------------------


def test_sources_are_registered_with_documented_options():
    assert set(SOURCES) >= {"builtin", "arrays", "image_folder", "torchvision", "huggingface"}
    for name in ("arrays", "image_folder", "torchvision", "huggingface"):
        module = SOURCES[name]
        assert callable(module.info) and callable(module.load)
        assert "ids" in module.__doc__ or "id" in module.__doc__
        for key, option in module.OPTIONS.items():
            assert option.doc, f"{name}.{key} has no doc"
            assert option.json_schema()["description"] == option.doc


def test_defaults_are_applied_from_the_options():
    s = spec("mine", "arrays", path="data/mine.npz")
    assert s.source == "arrays"
    assert dict(s.options) == {
        "path": "data/mine.npz",
        "test_fraction": 0.2,
        "split_seed": 0,
        "images_key": "images",
        "labels_key": "labels",
        "layout": None,
    }
    s = spec("svhn", "torchvision", name="SVHN")
    assert dict(s.options) == {
        "name": "SVHN",
        "root": None,
        "args": {},
        "train_args": None,
        "test_args": None,
    }


def test_importing_the_data_package_imports_no_heavy_optional_packages():
    code = (
        "import sys, memorization.data\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('PIL', 'datasets')"
        " or m.startswith('torchvision.datasets')]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- arrays --------------------------------------------------------------------------------


def _labelled(n_per_class, n_classes):
    return np.repeat(np.arange(n_classes), n_per_class)


def test_arrays_npz_nhwc_with_other_keys_and_a_stratified_split(tmp_path):
    rng = np.random.default_rng(0)
    y = _labelled(10, 5)  # 50 rows, 10 per class
    x = rng.integers(0, 256, size=(50, 6, 7, 3), dtype=np.uint8)  # N, H, W, C
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    s = spec("mine", "arrays", path=str(path), images_key="x", labels_key="y")
    info = dataset_info(s)
    assert (info.n_train, info.n_test) == (40, 10)
    assert info.shape == (3, 6, 7)
    assert info.classes == ("0", "1", "2", "3", "4")
    assert info.train_class_counts == (8, 8, 8, 8, 8)

    ds = prepare_dataset(s)
    # ids are the row indices of the file
    assert ds["example"].values.tolist() == list(range(50))
    assert ds["image"].dtype == np.uint8 and ds["image"].shape == (50, 3, 6, 7)
    assert np.array_equal(ds["image"].values, x.transpose(0, 3, 1, 2))
    assert np.array_equal(ds["label"].values, y)
    train = ds["split"].values == "train"
    assert np.bincount(y[train]).tolist() == [8] * 5
    assert np.bincount(y[~train]).tolist() == [2] * 5
    mean, std = _stats(x.transpose(0, 3, 1, 2), train)
    np.testing.assert_allclose(ds.attrs["channel_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(ds.attrs["channel_std"], std, rtol=1e-12)
    # seeded: the same split again; another seed gives another
    again = prepare_dataset(s)
    assert np.array_equal(again["split"].values, ds["split"].values)
    other = prepare_dataset(
        spec("mine", "arrays", path=str(path), images_key="x", labels_key="y", split_seed=1)
    )
    assert not np.array_equal(other["split"].values, ds["split"].values)
    assert np.array_equal(other["example"].values, ds["example"].values)


def test_arrays_10000_rows_give_exactly_8000_and_2000(tmp_path):
    y = _labelled(1000, 10)
    path = tmp_path / "big.npz"
    np.savez(path, images=np.zeros((10000, 2, 2), np.uint8), labels=y)
    info = dataset_info(spec("big", "arrays", path=str(path)))
    assert (info.n_train, info.n_test) == (8000, 2000)
    assert info.train_class_counts == (800,) * 10
    assert info.shape == (1, 2, 2)


def test_arrays_file_split_ids_class_names_and_float_images(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 1, 5, 5)).astype(np.float64)  # N, C, H, W floats
    y = np.array([0, 1, 0, 1, 2, 2, 0, 1], dtype=np.float64)  # integral floats
    split = np.array(["train", "train", "train", "train", "train", "train", "test", "test"])
    ids = np.array([70, 10, 20, 30, 40, 50, 60, 5])
    names = np.array(["cat", "dog", "eel"])
    path = tmp_path / "f.npz"
    np.savez(path, images=x, labels=y, split=split, ids=ids, class_names=names)
    s = spec("f", "arrays", path=str(path))
    info = dataset_info(s)
    assert (info.n_train, info.n_test) == (6, 2)
    assert info.classes == ("cat", "dog", "eel")
    assert info.train_class_counts == (2, 2, 2)
    ds = prepare_dataset(s)
    order = np.argsort(ids)  # examples in the order of their ids
    assert ds["example"].values.tolist() == [5, 10, 20, 30, 40, 50, 60, 70]
    assert ds["image"].dtype == np.float32  # float stays float, not rescaled
    np.testing.assert_array_equal(ds["image"].values, x[order].astype(np.float32))
    assert ds["label"].dtype == np.int64 and ds["label"].values.tolist() == y[order].tolist()
    assert ds["split"].values.tolist() == split[order].tolist()
    assert ds["image"].sel(example=70).values[0, 0, 0] == np.float32(x[0, 0, 0, 0])
    assert ds["class_name"].values.tolist() == ["cat", "dog", "eel"]
    # float pixels are standardised as they are (no division by 255)
    t = to_tensors(ds, "train")
    mean = x[:6].astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(ds.attrs["channel_mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(float(t.x.mean()), 0.0, atol=1e-5)
    assert t.examples.tolist() == [10, 20, 30, 40, 50, 70]  # sorted by id


def test_arrays_grey_nhw_and_netcdf(tmp_path):
    x = np.arange(12 * 4 * 4, dtype=np.uint8).reshape(12, 4, 4)
    y = _labelled(6, 2)
    split = np.array(["train", "train", "train", "test"] * 3)
    nc = tmp_path / "g.nc"
    xr.Dataset(
        {"images": (("n", "h", "w"), x), "labels": ("n", y), "split": ("n", split)}
    ).to_netcdf(nc)
    s = spec("g", "arrays", path=str(nc))
    info = dataset_info(s)
    assert info.shape == (1, 4, 4) and (info.n_train, info.n_test) == (9, 3)
    ds = prepare_dataset(s)
    assert np.array_equal(ds["image"].values, x[:, None])
    assert ds["split"].values.tolist() == split.tolist()


def test_uint8_tensors_are_bit_identical_to_the_reference_arithmetic(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(20, 3, 4, 5), dtype=np.uint8)
    path = tmp_path / "u.npz"
    np.savez(path, images=x, labels=_labelled(10, 2))
    ds = prepare_dataset(spec("u", "arrays", path=str(path), test_fraction=0.5))
    t = to_tensors(ds, "train")
    mean = np.asarray(ds.attrs["channel_mean"], np.float32)[:, None, None]
    std = np.asarray(ds.attrs["channel_std"], np.float32)[:, None, None]
    imgs = ds["image"].values[ds["split"].values == "train"]
    expected = (imgs.astype(np.float32) / np.float32(255.0) - mean) / std
    assert t.x.dtype == torch.float32
    assert torch.equal(t.x, torch.from_numpy(expected))


def test_arrays_ambiguous_layout_needs_the_option(tmp_path):
    x = np.arange(4 * 3 * 5 * 3, dtype=np.uint8).reshape(4, 3, 5, 3)
    path = tmp_path / "amb.npz"
    np.savez(path, images=x, labels=np.array([0, 0, 1, 1]), split=np.array(["train"] * 4))
    with pytest.raises(DatasetError, match="set layout: NCHW or NHWC") as err:
        dataset_info(spec("amb", "arrays", path=str(path)))
    assert str(path) in str(err.value) and "'images'" in str(err.value)
    ds = prepare_dataset(spec("amb", "arrays", path=str(path), layout="NHWC"))
    assert np.array_equal(ds["image"].values, x.transpose(0, 3, 1, 2))
    ds = prepare_dataset(spec("amb", "arrays", path=str(path), layout="NCHW"))
    assert np.array_equal(ds["image"].values, x)


def test_arrays_info_reads_no_pixels(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    np.savez(path, images=np.zeros((8, 8, 8, 3), np.uint8), labels=_labelled(4, 2))
    real_get = arrays._File.get

    def get(self, key):
        assert key != "images", "info must not read the images"
        return real_get(self, key)

    monkeypatch.setattr(arrays._File, "get", get)
    info = dataset_info(spec("m", "arrays", path=str(path), test_fraction=0.25))
    assert info.shape == (3, 8, 8) and (info.n_train, info.n_test) == (6, 2)


def _bad(tmp_path, **keys):
    base = {"images": np.zeros((6, 2, 2), np.uint8), "labels": _labelled(3, 2)}
    base.update(keys)
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


@pytest.mark.parametrize(
    "keys, key, match",
    [
        ({"labels": np.array([0, 1, 0, 1, 0])}, "'labels'", "6 images .* but 5 labels"),
        ({"labels": np.array([0, 1, 0.5, 1, 0, 1])}, "'labels'", "must be integers; found 0.5"),
        ({"labels": np.array(["a", "b", "a", "b", "a", "b"])}, "'labels'", "must be integers"),
        ({"labels": np.array([0, 1, 0, 1, 0, -1])}, "'labels'", "must lie in 0..1"),
        (
            {"labels": np.array([0, 1, 0, 1, 0, 2]), "class_names": np.array(["a", "b"])},
            "'labels'",
            r"must lie in 0..1 \(class_names has 2 entries\); found 2 at row 5",
        ),
        (
            {"labels": np.array([0, 2, 0, 2, 0, 2])},
            "'labels'",
            r"class\(es\) \[1\] have no training",
        ),
        ({"labels": np.zeros(6, int)}, "'labels'", "at least two classes"),
        (
            {"labels": np.array([0, 0, 0, 0, 0, 1]), "split": np.array(["train"] * 6)},
            "'labels'",
            r"at least 2 training examples; class\(es\) \[1\] have \[1\]",
        ),
        ({"split": np.array(["train"] * 5 + ["valid"])}, "'split'", "'valid'"),
        ({"ids": np.array([1, 2, 3, 4, 5, 5])}, "'ids'", r"unique; 1 repeated, e.g. \[5\]"),
        ({"ids": np.array([0, 1, 2, 3, 4, -1])}, "'ids'", "non-negative"),
        ({"ids": np.array([0.5, 1, 2, 3, 4, 5])}, "'ids'", "must be integers"),
        ({"ids": np.arange(5)}, "'ids'", r"shape \(6,\)"),
        ({"images": np.zeros((6, 2), np.uint8)}, "'images'", r"\[N,H,W\]"),
        ({"labels": None}, "'labels'", "has no key 'labels'"),
    ],
)
def test_arrays_refuses_bad_files_naming_file_and_key(tmp_path, keys, key, match):
    path = _bad(tmp_path, **keys)
    s = spec("bad", "arrays", path=str(path), test_fraction=0.34)
    with pytest.raises(DatasetError, match=match) as err:
        dataset_info(s)
    assert str(path) in str(err.value) and key in str(err.value)
    with pytest.raises(DatasetError, match=match):
        prepare_dataset(s)


def test_arrays_missing_and_unreadable_files(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DatasetError, match="does not exist") as err:
        dataset_info(spec("x", "arrays", path=str(missing)))
    assert str(missing) in str(err.value)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="cannot be opened") as err:
        dataset_info(spec("x", "arrays", path=str(broken)))
    assert str(broken) in str(err.value)
    csv = tmp_path / "t.csv"
    csv.write_text("1,2\n")
    with pytest.raises(DatasetError, match="expected an .npz or .nc file"):
        dataset_info(spec("x", "arrays", path=str(csv)))


# --- image_folder ----------------------------------------------------------------------------


def _png(path: Path, value, size=(4, 6), mode="RGB"):
    """A (H, W) = size image of one colour (value: int or per-channel tuple)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    Image.new(mode, (w, h), value).save(path)


def _tree(root: Path, split_given=True, per_class=(3, 2), classes=("bird", "cat")):
    """Images whose red channel encodes (class, index) so content can be traced."""
    expected = {}
    trees = (
        [("train", per_class[0]), ("test", per_class[1])] if split_given else [("", sum(per_class))]
    )
    for k, name in enumerate(classes):
        for tree, n in trees:
            for i in range(n):
                rel = f"{tree}/{name}/{i:02d}.png" if tree else f"{name}/{i:02d}.png"
                colour = (10 * k + i + (100 if tree == "test" else 0), 7 * i, 200 - k)
                _png(root / rel, colour)
                expected[rel] = (k, colour)
    return expected


def test_image_folder_ids_labels_and_lazy_statistics(tmp_path):
    root = tmp_path / "imgs"
    expected = _tree(root)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    s = spec("f", "image_folder", path=str(root), size=None)
    info = dataset_info(s)
    assert (info.n_train, info.n_test) == (6, 4)
    assert info.shape == (3, 4, 6)
    assert info.classes == ("bird", "cat")
    assert info.train_class_counts == (3, 3)

    ds = prepare_dataset(s)
    rels = sorted(expected)  # ids: sorted relative paths (test/... before train/...)
    assert ds["example"].values.tolist() == list(range(10))
    assert [Path(p).relative_to(root.resolve()).as_posix() for p in ds["path"].values] == rels
    assert ds["label"].values.tolist() == [expected[r][0] for r in rels]
    assert ds["split"].values.tolist() == [r.split("/")[0] for r in rels]
    assert "image" not in ds and ds.attrs["image_size"] == [4, 6]

    eager = prepare_dataset(spec("f", "image_folder", path=str(root), size=None, lazy=False))
    assert eager["image"].dtype == np.uint8 and eager["image"].shape == (10, 3, 4, 6)
    for i, rel in enumerate(rels):
        assert eager["image"].values[i, :, 0, 0].tolist() == list(expected[rel][1])
    train = eager["split"].values == "train"
    mean, std = _stats(eager["image"].values, train)
    # streamed statistics = those of the pixels
    np.testing.assert_allclose(ds.attrs["channel_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(ds.attrs["channel_std"], std, rtol=1e-9)
    np.testing.assert_allclose(eager.attrs["channel_mean"], mean, rtol=1e-12)

    # the lazy split decodes to exactly the eager tensors
    for split in ("train", "test"):
        lazy_t, eager_t = to_tensors(ds, split), to_tensors(eager, split)
        assert isinstance(lazy_t.x, LazyImages)
        assert lazy_t.x.shape == eager_t.x.shape and len(lazy_t.x) == len(eager_t)
        assert torch.equal(lazy_t.x.materialize(), eager_t.x)
        assert np.array_equal(lazy_t.examples, eager_t.examples)
        assert torch.equal(lazy_t.y, eager_t.y)


def test_lazy_artifact_survives_netcdf(tmp_path):
    root = tmp_path / "imgs"
    _tree(root)
    ds = prepare_dataset(spec("f", "image_folder", path=str(root), size=[3, 3]))
    out = tmp_path / "f.nc"
    ds.to_netcdf(out)
    with xr.open_dataset(out) as back:
        t = to_tensors(back.load(), "train")
    ref = to_tensors(ds, "train")
    assert t.x.shape == (6, 3, 3, 3)
    assert torch.equal(t.x[torch.arange(6)], ref.x.materialize())


def test_lazy_images_indexing_decodes_only_the_rows(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    _tree(root, per_class=(4, 2))
    eager = to_tensors(
        prepare_dataset(spec("f", "image_folder", path=str(root), size=None, lazy=False)), "train"
    )
    x = to_tensors(prepare_dataset(spec("f", "image_folder", path=str(root), size=None)), "train").x
    assert x.dtype == torch.float32 and x.device == torch.device("cpu")
    assert tuple(x.shape[1:]) == (3, 4, 6) and len(x) == 8

    import memorization.data.lazy as lazy

    calls = []
    real = lazy.read_image
    monkeypatch.setattr(lazy, "read_image", lambda p, *a: calls.append(p) or real(p, *a))
    rows = torch.tensor([5, 0, 7])
    got = x[rows]
    assert len(calls) == 3  # only those images were decoded
    assert got.shape == (3, 3, 4, 6) and torch.equal(got, eager.x[rows])
    assert torch.equal(x[np.array([1, 2])], eager.x[[1, 2]])
    mask = torch.zeros(8, dtype=torch.bool)
    mask[[2, 6]] = True
    assert torch.equal(x[mask], eager.x[mask])
    assert torch.equal(x[2:5], eager.x[2:5])
    assert torch.equal(x[3], eager.x[3])  # an int: one [C, H, W] image, as for a tensor
    assert torch.equal(x[-1], eager.x[-1])
    assert x[torch.tensor([], dtype=torch.long)].shape == (0, 3, 4, 6)
    moved = x.to("cpu")
    assert isinstance(moved, LazyImages) and moved is not x and torch.equal(moved[rows], got)
    with pytest.raises(IndexError, match="out of bounds"):
        x[torch.tensor([8])]


def test_image_folder_single_tree_split_resize_and_channels(tmp_path):
    root = tmp_path / "one"
    for k, name in enumerate(["a", "b", "c"]):
        for i in range(10):
            suffix = ".PNG" if i == 0 else ".png"  # extensions in any case
            _png(root / name / f"{i}{suffix}", 30 * k + i, size=(8, 6), mode="L")
    s = spec("one", "image_folder", path=str(root), size=[4, 3], test_fraction=0.2)
    info = dataset_info(s)
    assert (info.n_train, info.n_test) == (24, 6)
    assert info.shape == (1, 4, 3)  # grey from the first image's mode L
    assert info.train_class_counts == (8, 8, 8)
    ds = prepare_dataset(s)
    train = ds["split"].values == "train"
    assert np.bincount(ds["label"].values[~train]).tolist() == [2, 2, 2]
    # ids: the sorted relative paths, a/0.PNG first
    assert Path(ds["path"].values[0]).name == "0.PNG"
    eager = prepare_dataset(
        spec("one", "image_folder", path=str(root), size=[4, 3], channels=3, lazy=False)
    )
    img = eager["image"].values
    assert img.shape == (30, 3, 4, 3)  # L converted to RGB, resized to H=4, W=3
    assert np.array_equal(img[:, 0], img[:, 2]) and img[11, 0, 0, 0] == 31  # b/1.png
    assert np.array_equal(eager["split"].values, ds["split"].values)  # same seeded split


def test_image_folder_refusals(tmp_path):
    # one size needed when size is null: both files named
    root = tmp_path / "sizes"
    _tree(root)
    _png(root / "test" / "cat" / "00.png", (1, 2, 3), size=(5, 5))  # cat's first image
    with pytest.raises(DatasetError, match="differ in size") as err:
        dataset_info(spec("s", "image_folder", path=str(root), size=None))
    assert "test/bird/00.png" in str(err.value) and "test/cat/00.png" in str(err.value)
    assert "set size" in str(err.value)
    _png(root / "test" / "cat" / "00.png", (1, 2, 3))
    _png(root / "train" / "cat" / "01.png", (1, 2, 3), size=(5, 5))
    # info opens only the first image per class; load checks them all
    dataset_info(spec("s", "image_folder", path=str(root), size=None))
    with pytest.raises(DatasetError, match="differ in size"):
        prepare_dataset(spec("s", "image_folder", path=str(root), size=None))
    assert (
        prepare_dataset(spec("s", "image_folder", path=str(root), size=[4, 6])).sizes["example"]
        == 10
    )

    # an unreadable image file is refused by name
    root = tmp_path / "broken"
    _tree(root)
    bad = root / "train" / "bird" / "02.png"
    bad.write_bytes(b"garbage")
    dataset_info(spec("b", "image_folder", path=str(root), size=None))  # not opened by info
    for lazy in (True, False):
        with pytest.raises(DatasetError, match="cannot be read") as err:
            prepare_dataset(spec("b", "image_folder", path=str(root), size=None, lazy=lazy))
        assert str(bad) in str(err.value)

    # train/ and test/ must have the same classes
    root = tmp_path / "mismatch"
    _tree(root)
    _png(root / "test" / "dog" / "0.png", 5)
    with pytest.raises(DatasetError, match=r"only in test/: \['dog'\]") as err:
        dataset_info(spec("m", "image_folder", path=str(root), size=None))
    assert str(root) in str(err.value)

    # train/ without test/
    root = tmp_path / "half"
    _tree(root, split_given=False, classes=("train", "x"))
    with pytest.raises(DatasetError, match="has train/ but no test/"):
        dataset_info(spec("h", "image_folder", path=str(root), size=None))

    # too few training images, an empty class folder, one class, no folder
    root = tmp_path / "few"
    _tree(root, per_class=(1, 1))
    with pytest.raises(DatasetError, match=r"at least 2 training images; too few: bird \(1\)"):
        dataset_info(spec("f", "image_folder", path=str(root), size=None))
    root = tmp_path / "empty"
    _tree(root)
    (root / "train" / "dog").mkdir()
    (root / "test" / "dog").mkdir()
    with pytest.raises(DatasetError, match="dog' has no image files"):
        dataset_info(spec("e", "image_folder", path=str(root), size=None))
    root = tmp_path / "single"
    _tree(root, split_given=False, classes=("only",))
    with pytest.raises(DatasetError, match="at least two class folders"):
        dataset_info(spec("s", "image_folder", path=str(root), size=None))
    with pytest.raises(DatasetError, match="does not exist"):
        dataset_info(spec("n", "image_folder", path=str(tmp_path / "nowhere"), size=None))
    # size defaults to null: the images' own size, which must be one size
    root = tmp_path / "default_size"
    _tree(root)
    shape = dataset_info(DatasetSpec("n", "image_folder", {"path": str(root)})).shape
    assert shape == dataset_info(spec("n", "image_folder", path=str(root), size=None)).shape


def test_image_folder_ids_from_file_names_match_an_arrays_file(tmp_path):
    """ids: filename numbers each image by its file name: the same ids, split and pixels as
    the arrays file the images came from, so the prepared tensors are identical bit for bit
    (the channel statistics come from exact integer sums in both)."""
    from PIL import Image

    from memorization.data import prepare_dataset, to_tensors

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 10)
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    arrays = prepare_dataset(spec("a", "arrays", path=str(tmp_path / "a.npz"), test_fraction=0.25))
    root = tmp_path / "folder"
    for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
        split = str(arrays["split"].sel(example=i).values)
        folder = root / split / f"c{lab}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    for lazy in (True, False):
        folder = prepare_dataset(spec("f", "image_folder", path=str(root), ids="filename",
                                      lazy=lazy))  # fmt: skip
        assert folder["example"].values.tolist() == arrays["example"].values.tolist()
        assert folder.attrs["channel_mean"] == arrays.attrs["channel_mean"]
        assert folder.attrs["channel_std"] == arrays.attrs["channel_std"]
        for split in ("train", "test"):
            a, f = to_tensors(arrays, split), to_tensors(folder, split)
            assert np.array_equal(a.examples, f.examples)
            x = f.x[np.arange(len(f))] if lazy else f.x
            assert torch.equal(a.x, x) and torch.equal(a.y, f.y)
    (root / "train" / "c0" / "00000.png").rename(root / "train" / "c0" / "x.png")
    with pytest.raises(DatasetError, match="must be an id"):
        dataset_info(spec("g", "image_folder", path=str(root), ids="filename"))


# --- torchvision -----------------------------------------------------------------------------


def _svhn_files(root: Path, n_train=20, n_test=10):
    """SVHN's own .mat files: X (32, 32, 3, N) uint8, y (N, 1) in 1..10 (10 is digit 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(3)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)
        savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
        out[split] = (x, y[:, 0])
    return out


def test_torchvision_svhn_split_argument_labels_attribute_and_nchw(tmp_path, monkeypatch):
    import torchvision.datasets

    files = _svhn_files(tmp_path)
    # torchvision checks the MD5 sums of the real SVHN files; ours are tiny stand-ins
    monkeypatch.setattr(torchvision.datasets.SVHN, "_check_integrity", lambda self: True)
    s = spec("svhn", "torchvision", name="SVHN")
    info = dataset_info(s, tmp_path)  # root: the data_root
    assert (info.n_train, info.n_test) == (20, 10)
    assert info.shape == (3, 32, 32)
    assert info.classes == tuple(str(i) for i in range(10))
    assert info.train_class_counts == (2,) * 10
    ds = prepare_dataset(s, tmp_path)
    assert ds["example"].values.tolist() == list(range(30))
    assert ds["split"].values.tolist() == ["train"] * 20 + ["test"] * 10
    # SVHN's data is [N, C, H, W] already: pixels where the .mat file has them
    x_tr, y_tr = files["train"]
    x_te, y_te = files["test"]
    assert np.array_equal(ds["image"].values[:20], x_tr.transpose(3, 2, 0, 1))
    assert np.array_equal(ds["image"].values[20:], x_te.transpose(3, 2, 0, 1))
    # .labels, with 10 meaning the digit 0
    assert ds["label"].values.tolist() == (np.r_[y_tr, y_te] % 10).tolist()
    # explicit split arguments (here: the test split twice) are used as given
    s = spec("svhn", "torchvision", name="SVHN", root=str(tmp_path), test_args={"split": "train"})
    assert dataset_info(s).n_test == 20


def _cifar100_files(root: Path, n_train=200, n_test=100):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    rng = np.random.default_rng(4)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = (np.arange(n) % 100).tolist()
        with open(base / split, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine, "coarse_labels": [0] * n}, f)
        out[split] = (data, fine)
    names = [f"class{i:03d}" for i in range(100)]
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": names, "coarse_label_names": ["c"] * 20}, f)
    return out, names


def test_torchvision_cifar100_train_argument_and_targets(tmp_path, monkeypatch):
    import torchvision.datasets
    import torchvision.datasets.cifar

    files, names = _cifar100_files(tmp_path / "vision")
    # torchvision checks the MD5 sums of the real files (the batches and the meta file)
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    s = spec("c100", "torchvision", name="CIFAR100", root=str(tmp_path / "vision"))
    info = dataset_info(s, tmp_path / "elsewhere")  # root option wins over data_root
    assert (info.n_train, info.n_test) == (200, 100)
    assert info.shape == (3, 32, 32) and info.classes == tuple(names)
    ds = prepare_dataset(s)
    data_tr, fine_tr = files["train"]
    data_te, fine_te = files["test"]
    assert np.array_equal(ds["image"].values[:200], data_tr.reshape(-1, 3, 32, 32))
    assert np.array_equal(ds["image"].values[200:], data_te.reshape(-1, 3, 32, 32))
    assert ds["label"].values.tolist() == fine_tr + fine_te
    assert ds["example"].values[200] == 200 and ds["class_name"].values[7] == "class007"


def test_torchvision_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"no dataset class 'SVNH'.*did you mean \['SVHN'"):
        dataset_info(spec("x", "torchvision", name="SVNH"), tmp_path)
    with pytest.raises(DatasetError, match="takes neither train nor split"):
        dataset_info(spec("x", "torchvision", name="ImageFolder"), tmp_path)
    with pytest.raises(DatasetError, match="could not be loaded") as err:
        dataset_info(spec("x", "torchvision", name="SVHN"), tmp_path)
    assert str(tmp_path) in str(err.value) and "split='train'" in str(err.value)
    assert "download: true" in str(err.value)


# --- huggingface -----------------------------------------------------------------------------


def _hf_dataset(n_per_class, classes, mode="RGB", offset=0):
    import datasets
    from PIL import Image

    images, labels = [], []
    for k in range(len(classes)):
        for i in range(n_per_class):
            value = 20 * k + i + offset
            images.append(Image.new(mode, (5, 4), value if mode == "L" else (value, 1, 2)))
            labels.append(k)
    features = datasets.Features(
        {"img": datasets.Image(), "fine": datasets.ClassLabel(names=list(classes))}
    )
    return datasets.Dataset.from_dict({"img": images, "fine": labels}, features=features)


def test_huggingface_saved_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    path = tmp_path / "hf"
    datasets.DatasetDict(
        {
            "train": _hf_dataset(3, ["ant", "bee", "cow"]),
            "test": _hf_dataset(1, ["ant", "bee", "cow"], offset=100),
        }
    ).save_to_disk(str(path))
    s = spec("hub", "huggingface", name=str(path), image_column="img", label_column="fine")
    info = dataset_info(s)
    assert (info.n_train, info.n_test) == (9, 3)
    assert info.shape == (3, 4, 5) and info.classes == ("ant", "bee", "cow")
    assert info.train_class_counts == (3, 3, 3)
    ds = prepare_dataset(s)
    assert ds["example"].values.tolist() == list(range(12))
    assert ds["split"].values.tolist() == ["train"] * 9 + ["test"] * 3
    assert ds["label"].values.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2]
    assert ds["image"].dtype == np.uint8 and ds["image"].shape == (12, 3, 4, 5)
    assert ds["image"].values[:, 0, 0, 0].tolist() == [
        0,
        1,
        2,
        20,
        21,
        22,
        40,
        41,
        42,
        100,
        120,
        140,
    ]
    assert ds["class_name"].values.tolist() == ["ant", "bee", "cow"]
    with pytest.raises(DatasetError, match=r"no column 'image' \(image_column\)") as err:
        prepare_dataset(spec("hub", "huggingface", name=str(path), label_column="fine"))
    assert str(path) in str(err.value)
    with pytest.raises(DatasetError, match=r"no split 'valid' \(test_split\)"):
        dataset_info(
            spec(
                "hub",
                "huggingface",
                name=str(path),
                test_split="valid",
                image_column="img",
                label_column="fine",
            )
        )


def test_huggingface_single_dataset_split_with_test_fraction(tmp_path):
    pytest.importorskip("datasets")
    path = tmp_path / "one"
    _hf_dataset(5, ["a", "b"], mode="L").save_to_disk(str(path))
    opts = dict(name=str(path), image_column="img", label_column="fine")
    with pytest.raises(DatasetError, match="set test_split: null"):
        dataset_info(spec("one", "huggingface", **opts))
    s = spec("one", "huggingface", test_split=None, test_fraction=0.4, **opts)
    info = dataset_info(s)
    assert (info.n_train, info.n_test) == (6, 4) and info.shape == (1, 4, 5)
    ds = prepare_dataset(s)
    assert ds["example"].values.tolist() == list(range(10))  # row index in the split
    assert ds["image"].values[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 20, 21, 22, 23, 24]
    test = ds["split"].values == "test"
    assert np.bincount(ds["label"].values[test]).tolist() == [2, 2]


def test_an_image_folder_and_an_arrays_file_of_the_same_images_give_the_same_scores(tmp_path):
    """The same images as an .npz and as ``<class>/<row>.png`` (``ids: filename``): the same
    split, ids and tensors, and bit-identical memorization scores."""
    from PIL import Image
    from sklearn.datasets import load_digits

    import memorization as mz

    digits = load_digits()
    images = (digits.images[:400] * 16).clip(0, 255).astype(np.uint8)
    labels = digits.target[:400].astype(np.int64)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        (tmp_path / "png" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / "png" / str(label) / f"{i:04d}.png")
    arrays = prepare_dataset(spec("a", "arrays", path=str(tmp_path / "d.npz"), test_fraction=0.2))
    folder = prepare_dataset(
        spec("f", "image_folder", path=str(tmp_path / "png"), test_fraction=0.2, ids="filename")
    )
    assert isinstance(to_tensors(folder, "train").x, LazyImages)  # read lazily, from the files
    for split in ("train", "test"):
        a, f = to_tensors(arrays, split), to_tensors(folder, split)
        assert np.array_equal(np.asarray(a.examples), np.asarray(f.examples))
        assert torch.equal(a.y, f.y) and torch.equal(a.x, f.x[torch.arange(len(f))])
    common = dict(epochs=2, lr=0.1, hidden=32, corrupt=40, device="cpu")
    by_arrays = mz.score("mlp", data=arrays, **common)
    by_folder = mz.score("mlp", data=folder, **common)
    assert np.array_equal(by_arrays["example"], by_folder["example"])
    assert np.array_equal(by_arrays["memorization"], by_folder["memorization"])
    assert by_arrays["memorization"].std() > 0  # scores that say something
