"""The user's data is an input of the workflow, and a results folder belongs to one config.

A dataset's fingerprint (its arrays file's content, its image folder's or torchvision
root's manifest) is part of every artifact's slice: changing the data of a finished run
reruns exactly the dataset and what depends on it. A lazily read image that changed or
vanished is refused before training. A second config that would change the artifacts of
a results folder is refused before any job, unless it says it replaces them (the old
folder is moved aside, whole).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import snakemake_command

from memorization.data import fingerprint as fp
from memorization.data.spec import DatasetError, DatasetSpec
from memorization.data.tensors import to_tensors
from memorization.workflow.artifacts import open_artifact
from memorization.workflow.config import WorkflowConfig
from memorization.workflow.context import Execution, StageContext
from memorization.workflow.ownership import OWNER_FILE, claim_results, conflicts, results_settings
from memorization.workflow.slices import DatasetSlice
from memorization.workflow.stages.data import dataset as dataset_stage
from memorization.workflow.watch import watch_data

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


# --- the data: arrays files, image folders, torchvision roots ---------------------------------


def write_arrays(path: Path, seed: int = 0, n: int = 60) -> Path:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
    np.savez(path, images=images, labels=np.arange(n) % 3)
    return path


def write_image_folder(root: Path, per_class: int = 8) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 3)):
        for k in range(3):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(8, 8), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def _idx(path: Path, values: np.ndarray, magic: int) -> None:
    with open(path, "wb") as fh:
        fh.write(np.array([magic, *values.shape], ">u4").tobytes())
        fh.write(values.astype(np.uint8).tobytes())


def write_mnist_root(root: Path, seed: int = 0) -> Path:
    """A fake torchvision root that ``torchvision.datasets.MNIST`` reads: its four idx
    files under ``MNIST/raw`` (60 training and 20 test images, 10 classes)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 0x803)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, 0x801)
    return root


def test_an_arrays_file_is_watched_by_its_content(tmp_path):
    path = write_arrays(tmp_path / "data.npz")
    spec = DatasetSpec("mine", "arrays", {"path": str(path)})
    before = fp.fingerprint(spec)
    assert before.startswith("sha256:")
    # a copy (new modification time) of the same content is the same data
    copy = tmp_path / "copy.npz"
    copy.write_bytes(path.read_bytes())
    assert fp.fingerprint(DatasetSpec("mine", "arrays", {"path": str(copy)})) == before
    os.utime(path, ns=(1, 1))
    assert fp.fingerprint(spec) == before
    # permuted labels, same size
    with np.load(path) as data:
        images, labels = data["images"], data["labels"]
    np.savez(path, images=images, labels=np.roll(labels, 1))
    assert fp.fingerprint(spec) != before
    with pytest.raises(DatasetError, match="gone.npz"):
        fp.fingerprint(DatasetSpec("mine", "arrays", {"path": str(tmp_path / "gone.npz")}))


def test_an_image_folder_is_watched_by_its_manifest(tmp_path):
    root = write_image_folder(tmp_path / "images")
    spec = DatasetSpec("pics", "image_folder", {"path": str(root)})
    before = fp.fingerprint(spec)
    assert before.startswith("manifest:33:")  # 3 classes x (8 train + 3 test) images
    (root / "train/c0/notes.txt").write_text("not an image")
    assert fp.fingerprint(spec) == before
    changes = [
        lambda: (root / "train/c1/3.png").unlink(),
        lambda: (root / "train/c2/new.png").write_bytes((root / "train/c2/0.png").read_bytes()),
        lambda: os.utime(root / "test/c0/0.png", ns=(5, 5)),
        lambda: (root / "train/c3").mkdir(),  # a new (empty) class folder
    ]
    seen = {before}
    for change in changes:
        change()
        now = fp.fingerprint(spec)
        assert now not in seen
        seen.add(now)


def test_a_torchvision_root_is_watched_by_its_dataset_folder(tmp_path):
    root = write_mnist_root(tmp_path / "vision")
    spec = DatasetSpec("tv", "torchvision", {"name": "MNIST", "root": str(root)})
    before = fp.fingerprint(spec)
    assert before.startswith("manifest:4:")
    # another dataset's files under the same root are not this dataset's
    (root / "cifar-10-batches-py").mkdir()
    (root / "cifar-10-batches-py/data_batch_1").write_bytes(b"x")
    assert fp.fingerprint(spec) == before
    write_mnist_root(root, seed=1)  # new pixels, same sizes
    os.utime(root / "MNIST/raw/train-images-idx3-ubyte", ns=(7, 7))
    assert fp.fingerprint(spec) != before


def test_builtin_datasets_as_shipped_record_no_fingerprint():
    """The default run's slices stay as they were: nothing recorded for mnist5k/digits."""
    for name in ("mnist5k", "digits"):
        spec = fp.with_fingerprint(DatasetSpec(name), "data")
        assert spec.fingerprint is None
        assert "fingerprint" not in DatasetSlice(spec).params()["dataset"]


def test_the_fingerprint_is_in_every_slice_and_round_trips(tmp_path):
    path = write_arrays(tmp_path / "data.npz")
    config = _config(tmp_path, {"d": {"source": "arrays", "path": str(path)}}, "d")
    watched = watch_data(WorkflowConfig.from_config(config))
    spec = watched.datasets["d"]
    assert spec.fingerprint == fp.fingerprint(spec)
    assert watched.experiments["e"].dataset == spec
    params = DatasetSlice(spec).params()
    assert params["dataset"]["fingerprint"] == spec.fingerprint
    assert DatasetSlice.from_params(params).dataset == spec
    assert "fingerprint" not in spec.options


def test_a_source_option_called_name_keeps_the_dataset_name_through_the_slice():
    """torchvision's and huggingface's ``name`` option is not the dataset's name."""
    spec = DatasetSpec("tv", "torchvision", {"name": "MNIST", "root": "vision"}, "manifest:4:ab")
    params = DatasetSlice(spec).params()
    assert params["dataset"]["name"] == "tv"
    back = DatasetSlice.from_params(params).dataset
    assert back == spec and back.options["name"] == "MNIST"


# --- a lazily read image that changed or vanished ---------------------------------------------


def _prepared_lazy(tmp_path) -> tuple[Path, Path]:
    root = write_image_folder(tmp_path / "images")
    spec = fp.with_fingerprint(DatasetSpec("pics", "image_folder", {"path": str(root)}))
    out = tmp_path / "pics.nc"
    ctx = StageContext("dataset", str(out), DatasetSlice(spec).params(), execution=Execution())
    dataset_stage(ctx)
    return root, out


def test_a_changed_or_vanished_lazy_image_is_refused_before_training(tmp_path):
    root, out = _prepared_lazy(tmp_path)
    data = open_artifact(out, "dataset")
    assert "file_size" in data and "file_mtime" in data
    assert to_tensors(data, "train").x.shape[0] == 24  # as prepared: accepted
    edited = root / "train/c1/2.png"
    edited.write_bytes(edited.read_bytes() + b"\0")
    with pytest.raises(DatasetError, match=r"train/c1/2\.png \(changed\).*run snakemake again"):
        to_tensors(data, "train")
    gone = root / "train/c2/5.png"
    gone.unlink()
    with pytest.raises(DatasetError, match=r"2 image file\(s\) of dataset 'pics'.*5\.png \(gone\)"):
        to_tensors(data, "train")
    # the test split's files are all there: reading it is not refused
    assert to_tensors(data, "test").x.shape[0] == 9


def test_the_dataset_stage_refuses_files_changed_since_planning(tmp_path):
    path = write_arrays(tmp_path / "data.npz")
    spec = fp.with_fingerprint(DatasetSpec("mine", "arrays", {"path": str(path)}))
    write_arrays(path, seed=1)
    out = tmp_path / "mine.nc"
    ctx = StageContext("dataset", str(out), DatasetSlice(spec).params(), execution=Execution())
    with pytest.raises(DatasetError, match="changed after the workflow planned"):
        dataset_stage(ctx)
    assert not out.exists()


# --- ownership of a results folder -----------------------------------------------------------


def _config(tmp_path, datasets, dataset, **exp) -> dict:
    return {
        "results": str(tmp_path / "results"),
        "device": "cpu",
        "datasets": datasets,
        "experiments": {"e": {**EXPERIMENT, "dataset": dataset, **exp}},
    }


EXPERIMENT = {
    "model": "mlp",
    "hidden": 16,
    "corrupt": 0,
    "seed": 0,
    "epochs": 1,
    "lr": 0.1,
    "batch_size": 16,
    "subset_size": 5,
}


def test_what_would_change_artifacts(tmp_path):
    path = write_arrays(tmp_path / "data.npz")
    datasets = {"d": {"source": "arrays", "path": str(path)}}
    a = results_settings(WorkflowConfig.from_config(_config(tmp_path, datasets, "d")))
    record = {
        "settings": a,
        "owners": {k: {n: ["a.yaml"] for n in v} for k, v in a.items()},
    }

    def found(cfg, configs=("b.yaml",)):
        return conflicts(record, results_settings(WorkflowConfig.from_config(cfg)), configs)

    assert found(_config(tmp_path, datasets, "d")) == []
    assert found({**_config(tmp_path, datasets, "d"), "threads": 2, "device": "auto"}) == []
    more = _config(tmp_path, datasets, "d")
    more["experiments"]["f"] = {**EXPERIMENT, "dataset": "d", "epochs": 3}
    assert found(more) == []
    (what, owner), *rest = found(_config(tmp_path, datasets, "d", epochs=3))
    assert what.startswith("experiments.e (") and "scores" in what and "labels" not in what
    assert owner == ["a.yaml"] and rest == []
    # the config that set it changes it freely
    assert found(_config(tmp_path, datasets, "d", epochs=3), ["a.yaml"]) == []
    # another file under the same dataset name would replace the dataset artifact
    write_arrays(tmp_path / "other.npz")
    other = {"d": {"source": "arrays", "path": str(tmp_path / "other.npz")}}
    assert "datasets.d" in [w for w, _ in found(_config(tmp_path, other, "d"))]
    # new data in the same file is not a change of settings
    write_arrays(path, seed=3)
    assert found(_config(tmp_path, datasets, "d")) == []


def test_replace_moves_the_old_folder_aside_whole(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_arrays(tmp_path / "data.npz")
    datasets = {"d": {"source": "arrays", "path": str(path)}}
    a = WorkflowConfig.from_config(_config(tmp_path, datasets, "d"))
    b = WorkflowConfig.from_config(_config(tmp_path, datasets, "d", epochs=3))
    claim_results(a, ["a.yaml"], write=False)
    assert not (tmp_path / "results").exists()  # a dry run writes nothing
    claim_results(a, ["a.yaml"])
    finished = tmp_path / "results/e/scores.nc"
    finished.parent.mkdir()
    finished.write_bytes(b"a's scores")
    with pytest.raises(SystemExit):
        claim_results(b, ["b.yaml"])
    err = capsys.readouterr().err
    assert "a.yaml" in err and "b.yaml" in err and "own results: folder" in err
    assert "replace_results: true" in err
    claim_results(b, ["b.yaml"], replace_results=True, write=False)  # a dry run moves nothing
    assert finished.read_bytes() == b"a's scores"
    claim_results(b, ["b.yaml"], replace_results=True)
    (moved,) = tmp_path.glob("results.replaced-*")
    assert (moved / "e/scores.nc").read_bytes() == b"a's scores"
    assert not finished.exists()
    record = yaml.safe_load((tmp_path / "results" / OWNER_FILE).read_text())
    assert record["owners"]["experiments"]["e"] == [str(tmp_path / "b.yaml")]
    claim_results(b, ["b.yaml"], replace_results=True)  # replaced already: nothing moves
    assert len(list(tmp_path.glob("results.replaced-*"))) == 1


# --- end to end: a finished run, changed data, a rerun ----------------------------------------


def snakemake(workdir: Path, config: dict, *args: str, name: str = "config.yaml", check=True):
    cfg = workdir / name
    cfg.write_text(yaml.safe_dump(config))
    cmd = snakemake_command(
        "--directory", str(workdir), "--configfile", str(cfg), "--cores", "1", *args
    )
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=900)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
    return res


def mtimes(workdir: Path) -> dict[str, int]:
    return {
        str(p.relative_to(workdir / "results")): p.stat().st_mtime_ns
        for p in sorted((workdir / "results").rglob("*.nc"))
    }


def _two_experiments(watched: dict) -> dict:
    """Experiment ``w`` on the watched dataset, ``o`` on another arrays file."""
    return {
        "results": "results",
        "device": "cpu",
        "datasets": {**watched, "other": {"source": "arrays", "path": "other.npz"}},
        "experiments": {
            "w": {**EXPERIMENT, "dataset": next(iter(watched))},
            "o": {**EXPERIMENT, "dataset": "other"},
        },
    }


TARGETS = ("results/w/labels.nc", "results/o/labels.nc")


def _rebuilt(workdir: Path, config: dict, change, *targets: str) -> set[str]:
    snakemake(workdir, config, *TARGETS, *targets)
    before = mtimes(workdir)
    change()
    snakemake(workdir, config, *TARGETS, *targets)
    after = mtimes(workdir)
    assert set(after) == set(before)
    return {k for k in after if after[k] != before[k]}


@pytest.mark.workflow
def test_a_changed_arrays_file_reruns_exactly_what_depends_on_it(tmp_path):
    write_arrays(tmp_path / "data.npz")
    write_arrays(tmp_path / "other.npz", seed=9)
    config = _two_experiments({"mine": {"source": "arrays", "path": "data.npz"}})
    touched = _rebuilt(
        tmp_path,
        config,
        lambda: write_arrays(tmp_path / "data.npz", seed=1),
        "results/w/scores.nc",
    )
    assert touched == {"data/mine.nc", "w/labels.nc", "w/scores.nc"}
    data = open_artifact(tmp_path / "results/data/mine.nc", "dataset")
    scores = open_artifact(tmp_path / "results/w/scores.nc", "scores")
    fingerprint = fp.fingerprint(
        DatasetSpec("mine", "arrays", {"path": str(tmp_path / "data.npz")})
    )
    for art in (data, scores):
        assert f"fingerprint: {fingerprint}" in art.attrs["config"]
    # the turn-over cost counts the training, not the job's set-up (its whole seconds)
    assert 0 < scores.attrs["train_seconds"] < scores.attrs["seconds"]
    # the same content written again (a new modification time) reruns nothing
    write_arrays(tmp_path / "data.npz", seed=1)
    res = snakemake(tmp_path, config, *TARGETS, "results/w/scores.nc", "-n")
    assert "Nothing to be done" in res.stdout + res.stderr


@pytest.mark.workflow
def test_a_changed_image_folder_reruns_exactly_what_depends_on_it(tmp_path):
    root = write_image_folder(tmp_path / "images")
    write_arrays(tmp_path / "other.npz", seed=9)
    config = _two_experiments({"pics": {"source": "image_folder", "path": str(root)}})
    edited = root / "train/c0/1.png"
    touched = _rebuilt(
        tmp_path, config, lambda: edited.write_bytes((root / "train/c1/1.png").read_bytes())
    )
    assert touched == {"data/pics.nc", "w/labels.nc"}


@pytest.mark.workflow
def test_a_changed_torchvision_root_reruns_exactly_what_depends_on_it(tmp_path):
    root = write_mnist_root(tmp_path / "vision")
    write_arrays(tmp_path / "other.npz", seed=9)
    config = _two_experiments({"tv": {"source": "torchvision", "name": "MNIST", "root": str(root)}})
    touched = _rebuilt(tmp_path, config, lambda: write_mnist_root(root, seed=1))
    assert touched == {"data/tv.nc", "w/labels.nc"}


@pytest.mark.workflow
def test_two_configs_on_one_results_folder_never_lose_a_finished_file(tmp_path):
    write_arrays(tmp_path / "data.npz")
    config = _config(tmp_path, {"d": {"source": "arrays", "path": "data.npz"}}, "d")
    config["results"] = "results"
    snakemake(tmp_path, config, "results/e/labels.nc", name="a.yaml")
    before = mtimes(tmp_path)
    record = tmp_path / "results" / OWNER_FILE
    assert str(tmp_path / "a.yaml") in record.read_text()
    other = {**config, "experiments": {"e": {**config["experiments"]["e"], "epochs": 3}}}
    res = snakemake(tmp_path, other, name="b.yaml", check=False)
    text = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in text
    assert "a.yaml" in text and "b.yaml" in text and "own results: folder" in text
    assert mtimes(tmp_path) == before
    # only execution settings, or one more experiment: let through (a dry run records nothing)
    more = {**config, "threads": 2}
    more["experiments"] = {**config["experiments"], "f": {**EXPERIMENT, "dataset": "d"}}
    res = snakemake(
        tmp_path, more, "results/e/labels.nc", "results/f/labels.nc", "-n", name="c.yaml"
    )
    assert "f/labels.nc" in res.stdout + res.stderr
    assert "c.yaml" not in record.read_text()
    # replacing, said explicitly: the old folder is kept whole beside the new one
    snakemake(tmp_path, {**other, "replace_results": True}, "results/e/labels.nc", name="b.yaml")
    (moved,) = tmp_path.glob("results.replaced-*")
    assert {str(p.relative_to(moved)): p.stat().st_mtime_ns for p in moved.rglob("*.nc")} == before
    assert str(tmp_path / "b.yaml") in record.read_text()
    assert (tmp_path / "results/e/labels.nc").exists()


def test_replace_never_moves_a_folder_holding_another_configs_folder(tmp_path, capsys):
    path = write_arrays(tmp_path / "data.npz")
    datasets = {"d": {"source": "arrays", "path": str(path)}}
    a = WorkflowConfig.from_config(_config(tmp_path, datasets, "d"))
    b = WorkflowConfig.from_config(_config(tmp_path, datasets, "d", epochs=3))
    claim_results(a, [str(tmp_path / "a.yaml")])
    nested = tmp_path / "results/paper" / OWNER_FILE
    nested.parent.mkdir()
    nested.write_text("{}")
    with pytest.raises(SystemExit):
        claim_results(b, [str(tmp_path / "b.yaml")], replace_results=True)
    assert "holds another config's results folder" in capsys.readouterr().err
    assert nested.exists() and not list(tmp_path.glob("results.replaced-*"))


def test_an_unreadable_owner_record_is_named_with_the_fix(tmp_path, capsys):
    path = write_arrays(tmp_path / "data.npz")
    config = WorkflowConfig.from_config(
        _config(tmp_path, {"d": {"source": "arrays", "path": str(path)}}, "d")
    )
    record = tmp_path / "results" / OWNER_FILE
    record.parent.mkdir()
    record.write_text("- just\n- a list\n")
    with pytest.raises(SystemExit):
        claim_results(config, [str(tmp_path / "a.yaml")])
    err = capsys.readouterr().err
    assert str(record) in err and "delete it and run again" in err


def test_a_hugging_face_dataset_is_watched_by_its_folder_or_cache(tmp_path, monkeypatch):
    saved = tmp_path / "saved"  # as save_to_disk writes it
    (saved / "train").mkdir(parents=True)
    (saved / "train/data-00000-of-00001.arrow").write_bytes(b"rows")
    (saved / "train/state.json").write_text('{"_fingerprint": "a"}')
    spec = DatasetSpec("hf", "huggingface", {"name": str(saved)})
    before = fp.fingerprint(spec)
    assert before.startswith("manifest:2:")
    (saved / "train/state.json").write_text('{"_fingerprint": "bb"}')
    assert fp.fingerprint(spec) != before
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    hub = DatasetSpec("hf", "huggingface", {"name": "someone/digits"})
    assert fp.fingerprint(hub) == fp.NOT_CACHED
    cached = tmp_path / "cache/someone___digits/default/0.0.0"
    cached.mkdir(parents=True)
    (cached / "digits-train.arrow").write_bytes(b"rows")
    first = fp.fingerprint(hub)
    (cached.parent / "0.0.0_builder.lock").write_text("")  # read locks do not count
    assert fp.fingerprint(hub) == first and first.startswith("manifest:1:")
