"""Bad or unexpected input on the own-data, own-model, Python and command-line surfaces:
each is refused before any training with a message naming the argument, key, file or
row (never a traceback), or handled right (never a silently wrong result).

The config-only cases are rows of the bad-input table of ``tests/workflow/test_config.py``;
here are those that need a file, a model of one's own, the Python API or the CLI.
"""

from __future__ import annotations

import io
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import memorization as mz
from memorization import cli
from memorization.api import ArgumentError
from memorization.data.lazy import read_image
from memorization.data.sources import dataset_info, load_dataset
from memorization.data.spec import DatasetError, DatasetSpec
from memorization.method.turnover import TurnoverSiteError, turnover
from memorization.workflow.check import check, check_config
from memorization.workflow.config import coerce_overrides

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli.app, [str(a) for a in args], prog_name="memorization")


def arrays(tmp_path, name="data.npz", n=40, k=4, **keys):
    """An arrays file of ``n`` random 6x6 grey images of ``k`` classes, keys overridden."""
    rng = np.random.default_rng(0)
    content = {
        "images": rng.integers(0, 256, (n, 6, 6)).astype(np.uint8),
        "labels": np.arange(n) % k,
    }
    content.update(keys)
    path = tmp_path / name
    np.savez(path, **content)
    return path


def spec(path, **options):
    return DatasetSpec("own", "arrays", {"path": str(path), **options})


def refused(path, match, **options):
    with pytest.raises(DatasetError, match=match) as err:
        load_dataset(spec(path, **options))
    return str(err.value)


# --- pixels ----------------------------------------------------------------------------


def test_complex_pixels_are_refused_not_cut_to_their_real_part(tmp_path):
    path = arrays(tmp_path, images=np.ones((40, 6, 6), np.complex64))
    refused(path, r"key 'images'.*complex numbers")
    with pytest.raises(DatasetError, match="complex"):  # the config check, from the header
        dataset_info(spec(path))


def test_numeric_strings_as_pixels_are_refused(tmp_path):
    path = arrays(tmp_path, images=np.full((40, 6, 6), "0.5"))
    with pytest.raises(DatasetError, match=r"key 'images'.*strings"):
        dataset_info(spec(path))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_pixels_in_any_split_are_refused_naming_the_row(tmp_path, value):
    images = np.random.default_rng(0).random((40, 6, 6)).astype(np.float32)
    split = np.array(["train"] * 30 + ["test"] * 10)
    images[35, 2, 3] = value  # a test row
    path = arrays(tmp_path, images=images, split=split)
    message = refused(path, r"row 35 \(test split\)")
    assert str(path) in message and "finite" in message


def test_the_config_check_refuses_nan_and_constant_pixels_of_an_arrays_file(tmp_path):
    images = np.random.default_rng(0).random((40, 6, 6)).astype(np.float32)
    images[12, 1, 1] = np.inf
    path = arrays(tmp_path, images=images)
    errors = check_config(_config({"source": "arrays", "path": str(path)}))
    assert any(e.startswith("datasets.own:") and "row 12 (train split) has a pixel inf" in e
               for e in errors), errors  # fmt: skip
    flat = arrays(tmp_path, "flat.npz", images=np.zeros((40, 6, 6), np.float32))
    errors = check_config(_config({"source": "arrays", "path": str(flat)}))
    assert any("constant images" in e for e in errors), errors


def test_nan_pixel_row_is_the_files_row_when_ids_reorder_the_rows(tmp_path):
    images = np.random.default_rng(0).random((40, 6, 6)).astype(np.float32)
    images[3, 0, 0] = np.nan
    path = arrays(tmp_path, images=images, ids=np.arange(40)[::-1].copy())
    refused(path, "row 3 ")


def test_constant_training_images_are_refused_before_training(tmp_path):
    path = arrays(tmp_path, images=np.full((40, 6, 6), 7, np.uint8))
    refused(path, "constant images cannot be standardised")


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    levels = np.array([[0, 1000, 20000], [40000, 60000, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode in ("I;16", "I")  # PIL reads it as 16-bit
    got = read_image(path, channels=1)[0]
    assert got.tolist() == np.rint(levels / 257).astype(np.uint8).tolist()  # not 0/255
    assert len(np.unique(got)) == 6


def test_a_16_bit_image_folder_keeps_its_grey_levels(tmp_path):
    rng = np.random.default_rng(1)
    for split, count in (("train", 3), ("test", 1)):
        for cls in ("a", "b"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                levels = rng.integers(0, 65536, (5, 5)).astype(np.uint16)
                Image.fromarray(levels).save(folder / f"{i}.png")
    spec_ = DatasetSpec("deep", "image_folder", {"path": str(tmp_path), "lazy": False})
    raw = load_dataset(spec_)
    assert raw.images.shape[1] == 1
    inner = raw.images[..., 1:4, 1:4]
    assert 0 < (inner > 0).mean() and ((inner > 0) & (inner < 255)).mean() > 0.8


# --- labels, ids, names -----------------------------------------------------------------


def test_a_huge_label_is_refused_at_once_naming_its_row(tmp_path):
    labels = np.arange(40) % 4
    labels[17] = 10**12  # counting classes up to it would allocate terabytes
    path = arrays(tmp_path, labels=labels)
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"found 1000000000000 at row 17"):
        dataset_info(spec(path))
    assert time.perf_counter() - start < 5


def test_uint64_ids_above_2_63_are_refused_with_their_value(tmp_path):
    ids = np.arange(40, dtype=np.uint64)
    ids[5] = 2**63 + 7
    path = arrays(tmp_path, ids=ids)
    with pytest.raises(DatasetError, match=str(2**63 + 7)) as err:
        dataset_info(spec(path))
    assert "-" not in str(err.value).split("found")[1]  # never shown negative


def test_random_bytes_named_npz_are_not_reported_as_pickled_data(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetError) as err:
        dataset_info(spec(path))
    assert "not an .npz file" in str(err.value) and "pickle" not in str(err.value)


def test_a_message_about_100000_class_names_stays_short(tmp_path):
    names = np.array([f"class{i}" for i in range(100_000)])
    path = arrays(tmp_path, class_names=names)  # labels 0..3: 99,996 classes empty
    with pytest.raises(DatasetError, match=r"and 99991 more") as err:
        dataset_info(spec(path))
    assert len(str(err.value)) < 500


def _config(dataset: dict, **experiment) -> dict:
    exp = {"dataset": "own", "model": "mlp", "hidden": 64, "seed": 0, "epochs": 1}
    exp |= {"lr": 0.1, "batch_size": 8} | experiment
    return {"datasets": {"own": dataset}, "experiments": {"own_mlp": exp}}


def test_a_split_with_no_test_rows_is_refused_by_the_config_check(tmp_path):
    path = arrays(tmp_path, split=np.array(["train"] * 40))
    errors = check_config(_config({"source": "arrays", "path": str(path)}))
    assert any("datasets.own: the test split is empty" in e for e in errors), errors


def test_a_bogus_torchvision_keyword_is_named_not_reported_as_missing_files(tmp_path):
    entry = {"source": "torchvision", "name": "KMNIST", "args": {"bogus": 1}}
    errors = check_config(_config(entry) | {"data_root": str(tmp_path)})
    assert any("args.bogus: torchvision KMNIST takes no argument 'bogus'" in e for e in errors)
    assert not any("Put its files" in e for e in errors), errors


def test_a_builtin_torchvision_dataset_missing_without_download_is_refused(tmp_path):
    cfg = _config({"source": "arrays", "path": "unused.npz"})
    cfg = {"data_root": str(tmp_path), "download": False}
    cfg["experiments"] = {"m": {"dataset": "mnist", "model": "mlp", "hidden": 64, "seed": 0}}
    cfg["experiments"]["m"] |= {"epochs": 1, "lr": 0.1, "batch_size": 8}
    errors, _ = check(cfg, data_files=True)
    assert any("dataset 'mnist' is not under data_root" in e for e in errors), errors
    assert not any("not under data_root" in e for e in check(cfg | {"download": True})[0])


# --- models of one's own ----------------------------------------------------------------

FACTORIES = """
import torch
from torch import nn


def squeezed_not(num_classes):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU())
            self.fc = nn.Linear(32, num_classes)

        def forward(self, x):
            return self.fc(self.body(x))[..., None]  # [B, K, 1]

    return Net()


def conv_bn(num_classes):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
        nn.Linear(16 * 36, 32), nn.ReLU(), nn.Linear(32, num_classes),
    )


def sequential(num_classes):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(36, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
        nn.Linear(64, num_classes),
    )
"""


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "hostile_factories.py").write_text(FACTORIES)
    (tmp_path / "hostile_broken.py").write_text("def net(num_classes:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_factory_whose_output_is_b_k_1_is_refused_by_the_check(tmp_path, factories):
    path = arrays(tmp_path)
    cfg = _config({"source": "arrays", "path": str(path)})
    cfg["experiments"]["own_mlp"] = {**cfg["experiments"]["own_mlp"]}
    del cfg["experiments"]["own_mlp"]["hidden"]
    cfg["experiments"]["own_mlp"]["model"] = "hostile_factories:squeezed_not"
    errors = check_config(cfg)
    assert any("output for a batch of 2 examples is shape [2, 4, 1], expected [2, 4]" in e
               for e in errors), errors  # fmt: skip


@pytest.mark.parametrize("sites", [["0"], ["0", "1", "2", "3", "4", "5", "6"]])
def test_a_site_before_a_batch_norm_or_every_module_is_refused_by_the_check(
    tmp_path, factories, sites
):
    path = arrays(tmp_path)
    cfg = _config({"source": "arrays", "path": str(path)})
    exp = {k: v for k, v in cfg["experiments"]["own_mlp"].items() if k != "hidden"}
    cfg["experiments"]["own_mlp"] = exp | {"model": "hostile_factories:conv_bn", "turnover": sites}
    errors = check_config(cfg)
    assert any(e.startswith("experiments.own_mlp: the hostile_factories:conv_bn model: the "
                            "zero-gradient proof on 2 examples refuses it: site '0' breaks "
                            "turn-over") for e in errors), errors  # fmt: skip
    cfg["experiments"]["own_mlp"]["turnover"] = ["2", "5"]  # after the batch-norm: fine
    assert check_config(cfg) == []


def test_every_broken_factory_is_listed_not_only_the_first(tmp_path, factories):
    path = arrays(tmp_path)
    cfg = _config({"source": "arrays", "path": str(path)})
    base = {k: v for k, v in cfg["experiments"]["own_mlp"].items() if k != "hidden"}
    cfg["experiments"] = {
        "syntax": base | {"model": "hostile_broken:net"},
        "weights": base | {"model": "hostile_factories:sequential", "weights": "nope/w.pt"},
    }
    errors = check_config(cfg)  # no exception: a list
    assert any(e.startswith("experiments.syntax:") and "SyntaxError" in e for e in errors)
    assert any(e.startswith("experiments.weights:") and "w.pt" in e for e in errors), errors


def test_quoted_module_names_stay_strings_and_name_sequential_children(tmp_path, factories):
    cfg = coerce_overrides({"experiments": {"e": {"turnover": ["2", "4"], "epochs": "3"}}})
    assert cfg["experiments"]["e"] == {"turnover": ["2", "4"], "epochs": 3}
    path = arrays(tmp_path)
    cfg = _config({"source": "arrays", "path": str(path)})
    exp = {k: v for k, v in cfg["experiments"]["own_mlp"].items() if k != "hidden"}
    cfg["experiments"]["own_mlp"] = exp | {
        "model": "hostile_factories:sequential",
        "turnover": ["2", "4"],
    }
    assert check_config(coerce_overrides(cfg)) == []


def test_a_module_named_twice_as_a_site_is_refused():
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(TurnoverSiteError, match="named more than once"):
        turnover(net, sites=["2", "2"], in_shape=(1, 6, 6))


class _Aliased(nn.Module):
    """One module under two names: ``body.2`` and ``act``."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 4))
        self.act = self.body[2]

    def forward(self, x):
        return self.body(x)


def test_one_module_under_two_names_is_refused_as_a_site_twice():
    with pytest.raises(TurnoverSiteError, match="named twice"):
        turnover(_Aliased(), sites=["body.2", "act"], in_shape=(1, 6, 6))


def test_a_wrong_in_shape_names_the_in_shape():
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 4))
    with pytest.raises(TurnoverSiteError, match=r"in_shape \(3, 32, 32\)"):
        turnover(net, in_shape=(3, 32, 32))


# --- the Python API ---------------------------------------------------------------------


def _xy(n=40, k=4):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 6, 6)).astype(np.uint8), np.arange(n) % k


def _score_refused(match, *args, **kwargs):
    x, y = _xy()
    kwargs = {"epochs": 1, "lr": 0.1, "batch_size": 8, "hidden": 32} | kwargs
    call_args = args or ("mlp", x, y)
    with pytest.raises(ArgumentError, match=match) as err:
        mz.score(*call_args, **kwargs)
    return str(err.value)


def test_api_refuses_what_the_config_refuses_with_the_same_words():
    assert "epochs: 0 is less than the minimum of 1" in _score_refused("epochs", epochs=0)
    message = _score_refused("hiden", hiden=3)
    assert "hiden: unknown key (did you mean 'hidden'?)" in message
    assert "batch_size: 0 is less than the minimum of 1" in _score_refused("batch", batch_size=0)
    _score_refused("model: 42 is neither a model name", 42, *_xy())
    both = _score_refused("not both", "mlp", *_xy(), data=mz.prepare(*_xy()))
    assert "data:" in both


def test_api_lists_every_problem_at_once():
    message = _score_refused("3 problem", epochs=0, lr=-1.0, hiden=3)
    assert "epochs" in message and "lr" in message and "hiden" in message


def test_api_names_the_argument_not_a_temporary_file():
    x, y = _xy()
    with pytest.raises(ArgumentError) as err:
        mz.prepare(np.full(x.shape, "1"), y)
    assert "argument images" in str(err.value) and "/tmp" not in str(err.value)
    labels = y.copy()
    labels[3] = 10**12
    with pytest.raises(ArgumentError, match="argument labels.*row 3") as err:
        mz.prepare(x, labels)
    assert ".npz" not in str(err.value)


def test_api_takes_a_tensor_that_requires_grad():
    x, y = _xy()
    images = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    data = mz.prepare(images, torch.as_tensor(y))
    assert data["image"].dtype == np.float32 and data.sizes["example"] == 40


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_api_shows_progress_by_default_in_a_terminal(monkeypatch):
    x, y = _xy()
    seen = _Terminal()
    monkeypatch.setattr(sys, "stderr", seen)
    mz.score("mlp", x, y, epochs=2, lr=0.1, batch_size=8, hidden=32, device="cpu")
    assert "2/2" in seen.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    mz.score("mlp", x, y, epochs=2, lr=0.1, batch_size=8, hidden=32, device="cpu")
    assert "2/2" not in quiet.getvalue()


# --- the command line ---------------------------------------------------------------------


def test_summary_of_a_folder_without_results_fails_with_a_message(tmp_path):
    result = invoke("summary", tmp_path)
    assert result.exit_code == 1 and "holds no results" in result.output
    result = invoke("summary", tmp_path / "nonexistent")
    assert result.exit_code == 1 and "is not a folder of results" in result.output


def test_top_refuses_an_unknown_form_listing_every_form(tmp_path):
    result = invoke("top", "x", "--results", tmp_path, "--form", "bogus")
    assert result.exit_code == 1, result.output
    assert "'bogus' is not a score form" in result.output
    from memorization.method.scoring import SCORE_FORMS

    for form in SCORE_FORMS:
        assert form in result.output
    assert all(form in " ".join(invoke("top", "--help").output.split()) for form in SCORE_FORMS)


def test_top_of_an_example_config_names_its_results_folder_and_command(tmp_path):
    result = invoke("top", "digits_mlp", "--results", tmp_path)
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "config/examples/arrays.yaml (results: results/examples/arrays)" in flat
    assert "--configfile config/examples/arrays.yaml" in flat
    assert "memorization top digits_mlp --results results/examples/arrays" in flat


def test_examples_into_an_unwritable_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke("examples", "--folder", blocker / "xyz")
    assert result.exit_code == 1 and "--folder" in result.output
    assert "Traceback" not in result.output


def test_ctrl_c_ends_the_command_line_without_a_traceback(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_help_has_no_rst_backticks_and_no_broken_sentences():
    text = invoke("--help").output + invoke("run", "--help").output
    assert "``" not in text
    assert cli.plain_help("A sentence\n    broken here.\n\n    Next ``-n``.") == (
        "A sentence broken here.\n\nNext -n."
    )
    doc = textwrap.dedent(cli.run.__doc__ or "")
    assert "``" in doc  # the source keeps its reStructuredText; --help does not


def test_ctrl_c_ends_a_job_with_its_line_and_no_traceback(monkeypatch, capsys, tmp_path):
    from types import SimpleNamespace

    import memorization.workflow.snakemake as glue

    def interrupted(ctx):
        raise KeyboardInterrupt

    execution = SimpleNamespace(threads=1)
    monkeypatch.setattr(glue, "context", lambda smk: SimpleNamespace(execution=execution))
    monkeypatch.setattr(glue, "stage", lambda rule: SimpleNamespace(run=interrupted))
    smk = SimpleNamespace(log=[str(tmp_path / "job.log")], rule="scores", threads=1)
    with pytest.raises(SystemExit) as stop:  # not a KeyboardInterrupt: no traceback
        glue.run_from_snakemake(smk)
    assert stop.value.code == 130
    assert "scores stopped (KeyboardInterrupt); run again to resume" in capsys.readouterr().err


def test_a_float_image_is_read_as_grey_levels_and_refused_out_of_range(tmp_path):
    Image.fromarray(np.array([[0, 10.4, 254.6]], np.float32)).save(tmp_path / "f.tif")
    assert read_image(tmp_path / "f.tif", channels=1).tolist() == [[[0, 10, 255]]]
    Image.fromarray(np.array([[0, 300.0]], np.float32)).save(tmp_path / "g.tif")
    with pytest.raises(DatasetError) as err:
        read_image(tmp_path / "g.tif", channels=1)
    assert str(err.value).count("g.tif") == 1 and "0.0..300.0" in str(err.value)
