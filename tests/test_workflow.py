"""The workflow end to end on a tiny config (scikit-learn's 8x8 digits, small models)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "device": "cpu",
    "threads": 1,
    "experiments": {
        "clean": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 128,
            "corrupt": 0,
            "seed": 0,
            "epochs": 4,
            "lr": 0.1,
            "batch_size": 64,
            "subset_size": 100,
            "corruption_levels": [0, 700],
        },
        "noisy": {
            "dataset": "digits",
            "model": "mlp",
            "hidden": 256,
            "corrupt": 300,
            "seed": 1,
            "epochs": 15,
            "lr": 0.1,
            "batch_size": 64,
            "subset_size": 100,
            "dynamics_lr": 0.05,
            "dynamics_epochs": 6,
            "probe_size": 20,
        },
        "vgg": {
            "dataset": "digits",
            "model": "vgg11",
            "width": 0.0625,
            "masked_layers": 2,
            "corrupt": 0,
            "seed": 0,
            "epochs": 2,
            "lr": 0.02,
            "momentum": 0.9,
            "batch_size": 64,
            "milestones": [1],
            "subset_size": 100,
        },
        "cct": {
            "dataset": "digits",
            "model": "cct",
            "depth": 1,
            "heads": 2,
            "embed_dim": 16,
            "tokenizer_channels": 8,
            "corrupt": 0,
            "seed": 0,
            "epochs": 2,
            "lr": 0.05,
            "momentum": 0.9,
            "batch_size": 64,
        },
    },
    "figures": {
        "fig2": {"clean": "clean", "corrupted": "noisy", "bins": 20},
        "fig7": {"experiment": "clean", "per_class": 2},
        "fig8": {"experiment": "vgg", "per_class": 2},
        "fig9": {"experiments": ["clean", "cct"]},
        "fig3": {"experiment": "noisy", "window": 3},
        "fig4": {"experiment": "noisy", "window": 1},
        "fig5": {"experiments": ["clean", "vgg"]},
        "fig6": {"experiment": "clean"},
        "fig10": {"experiment": "clean"},
    },
}


def snakemake(workdir, *args, config=None, check=True):
    cfg = workdir / "config.yaml"
    if config is not None:
        cfg.write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        "--cores",
        "2",
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
    return res


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    snakemake(workdir, config=TINY)
    return workdir


def test_builds_every_figure_as_pdf(built):
    for fig in ("fig2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10"):
        pdf = (built / "results" / f"{fig}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 5000


def test_scores_artifact_is_self_describing(built):
    with xr.open_dataset(built / "results/noisy/scores.nc", engine="netcdf4") as ds:
        for var in (
            "memorization",
            "loss_muted",
            "loss_unmuted",
            "prob_muted",
            "prob_unmuted",
            "pred_muted",
            "pred_unmuted",
            "label",
            "true_label",
            "corrupted",
            "subnet_accuracy",
        ):
            assert ds[var].attrs["long_name"] and "units" in ds[var].attrs, var
        assert ds["memorization"].dims == ("example",)
        assert ds["subnet_accuracy"].dims == ("epoch", "subnet")
        assert ds.sizes["epoch"] == 15
        assert int(ds["corrupted"].sum()) == 300
        assert ds.attrs["seed"] == 1 and ds.attrs["device"] == "cpu"
        cfg = yaml.safe_load(ds.attrs["config"])
        assert cfg["corrupt"] == 300 and cfg["model"] == "mlp"
        # the random labels stand out by their memorization score
        assert ds.attrs["corrupted_auc"] > 0.75
        mem, cor = ds["memorization"].values, ds["corrupted"].values.astype(bool)
        assert np.median(mem[cor]) > np.median(mem[~cor])
    with xr.open_dataset(built / "results/noisy/labels.nc", engine="netcdf4") as lab:
        changed = lab["label"].values != lab["true_label"].values
        assert np.array_equal(changed, lab["corrupted"].values.astype(bool))
    assert not list(built.glob("results/**/*.part"))


def test_cct_scores_through_the_workflow(built):
    with xr.open_dataset(built / "results/cct/scores.nc", engine="netcdf4") as ds:
        assert ds.sizes["example"] == 1437 and ds.sizes["epoch"] == 2
        assert np.isfinite(ds["memorization"].values).all()
        assert "blocks.0.norm1.weight" in ds.attrs["shared_parameters"]
        assert yaml.safe_load(ds.attrs["config"])["model"] == "cct"
        # the tokenizer's hidden maps, one block's heads and its MLP are masked
        assert ds.attrs["masked_layers"] == 3


def test_training_dynamics_artifacts(built):
    res = built / "results"
    with xr.open_dataset(res / "clean/dynamics.nc", engine="netcdf4") as ds:
        assert ds["accuracy"].dims == ("run", "epoch", "split", "subset")
        assert list(ds["run"].values) == ["all", "without_difficult"]
        assert list(ds["subset"].values) == ["full", "easy", "difficult"]
        assert ds.sizes["epoch"] == 5  # epoch 0 (untrained) + 4
        assert int(ds["subset_size"].sel(split="train", subset="easy")) == 100
        assert int(ds["subset_size"].sel(split="test", subset="easy")) == 25  # 100 * 360/1437
        final = ds["accuracy"].sel(run="all", split="train").isel(epoch=-1)
        assert float(final.sel(subset="easy")) > float(final.sel(subset="difficult"))
        assert ds["accuracy"].attrs["units"] == "1"
    with xr.open_dataset(res / "clean/scores_test.nc", engine="netcdf4") as ds:
        assert ds.sizes["example"] == 360 and ds.attrs["split"] == "test"
    with xr.open_dataset(res / "noisy/gradstats.nc", engine="netcdf4") as ds:
        assert ds["contribution"].dims == ("epoch", "subset")
        assert ds.sizes["epoch"] == 6 and ds.attrs["lr"] == 0.05
        cos = ds["cosine_similarity"].values
        assert np.isfinite(cos).all() and (np.abs(cos) <= 1).all()
        assert ds["probe_size"].values.tolist() == [20, 20, 20]
        assert np.isfinite(ds["contribution"].values).all()
    with xr.open_dataset(res / "clean/crosstrain.nc", engine="netcdf4") as ds:
        acc = ds["accuracy"]
        assert acc.dims == ("epoch", "train_on", "evaluate_on")
        for subset in ("easy", "difficult"):  # training on a subset fits that subset
            trained = acc.sel(train_on=subset, evaluate_on=subset).values
            assert trained[-1] > trained[0]
    for level in (0, 700):
        with xr.open_dataset(res / f"clean/sweep/corrupt{level}.nc", engine="netcdf4") as ds:
            assert int(ds["corrupt"].values[0]) == level
            assert ds.sizes["epoch"] == 5


def test_html_report_holds_every_figure_with_its_caption(built):
    snakemake(built, "--report", str(built / "report.html"), config=TINY)
    html = (built / "report.html").read_text()
    for fig in TINY["figures"]:
        assert f"{fig}.pdf" in html
    for caption in ("Figure 2.", "Figure 4.", "Figure 6.", "Figure 10.", "ROC AUC"):
        assert caption in html


def test_second_run_does_nothing_and_figure_options_rerun_only_the_figure(built):
    res = snakemake(built, "-n", config=TINY)
    assert "Nothing to be done" in res.stdout + res.stderr
    changed = {
        **TINY,
        "figures": {**TINY["figures"], "fig2": {**TINY["figures"]["fig2"], "bins": 30}},
    }
    res = snakemake(built, "-n", "--quiet", "rules", config=changed)
    out = res.stdout + res.stderr
    assert "figure" in out and "score" not in out and "corrupt_labels" not in out
    # a nested --config override reaches the experiment it names, and only its stages
    res = snakemake(
        built, "-n", "--quiet", "rules", "--config", "experiments={vgg: {epochs: 3}}", config=TINY
    )
    out = res.stdout + res.stderr
    assert "score" in out and "figure" in out and "corrupt_labels" not in out
    assert "sweep_level" not in out  # the clean experiment's sweep is untouched
    snakemake(built, config=TINY)  # restore the config file for the other tests


@pytest.mark.parametrize(
    "path,value,message",
    [
        (("experiments", "clean", "dataset"), "svhn", "experiments.clean.dataset"),
        (("experiments", "noisy", "corrupt"), 5000, "experiments.noisy.corrupt: 5000 exceeds"),
        (("experiments", "clean", "subset_size"), 1000, "experiments.clean.subset_size"),
        (("figures", "fig7", "experiment"), "ghost", "figures.fig7: experiment 'ghost'"),
        (("experiments", "clean", "lr"), 0, "experiments.clean.lr"),
    ],
)
def test_bad_config_is_refused_before_any_job(tmp_path, path, value, message):
    import copy

    cfg = copy.deepcopy(TINY)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    res = snakemake(tmp_path, config=cfg, check=False)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()


def test_lint_is_clean():
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr


def test_paper_config_plans_every_figure():
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/paper.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    with open(ROOT / "config/paper.yaml") as fh:
        paper = yaml.safe_load(fh)
    for fig in paper["figures"]:
        assert f"results/{fig}.pdf" in out
    # figure 9b trains the compact convolutional transformer on Fashion-MNIST
    assert "results/fashion_mnist_cct/scores.nc" in out
    assert "results/data/fashion_mnist.nc" in out
