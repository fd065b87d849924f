"""Figures: declared once with their options, drawn by their own modules from artifacts."""

import json
import pkgutil

import numpy as np
import pytest

import memorization.report.figures as drawings
from memorization.report.figures import DRAWINGS, run_figure
from memorization.workflow.figures import FIGURES, figure
from memorization.workflow.registry import Paths
from memorization.workflow.specs import Experiment


def test_every_declared_figure_is_drawn_and_every_drawing_declared():
    assert list(DRAWINGS) == list(FIGURES)
    helpers = {"base", "curves", "grid", "stages"}
    modules = {m.name for m in pkgutil.iter_modules(drawings.__path__)} - helpers
    assert modules == set(FIGURES), "a drawing module without a declaration, or the reverse"
    for name, found in DRAWINGS.items():
        assert found.figure is FIGURES[name] and callable(found.draw) and callable(found.claims)


def test_every_figure_of_the_paper_is_declared():
    assert list(FIGURES) == [f"fig{n}" for n in range(2, 11)] + ["influence", "validation"]
    for name, fig in FIGURES.items():
        assert fig.name == name and fig.caption and fig.title
        schema = fig.schema()
        assert schema["additionalProperties"] is False
        # every option that names experiments is required, unless it has a default
        optional = {k for k, v in fig.options.items() if "default" in v}
        assert set(fig.experiments) - optional <= set(schema["required"])
        assert set(schema["required"]) <= set(fig.options)
    with pytest.raises(ValueError, match="unknown figure 'fig11'"):
        figure("fig11")


def _experiment(name, dataset, **extra):
    raw = {"dataset": dataset, "model": "mlp", "seed": 0, "epochs": 1, "lr": 0.1, "batch_size": 64}
    raw.update(extra)
    return Experiment.from_config(name, raw)


def test_inputs_follow_the_named_experiments():
    experiments = {
        "a": _experiment("a", "digits", corruption_levels=[0, 5]),
        "b": _experiment("b", "mnist5k"),
    }
    paths = Paths("out", experiments)
    assert FIGURES["fig2"].inputs({"clean": "a", "corrupted": "b"}, paths) == {
        "clean__scores": "out/a/scores.nc",
        "corrupted__scores": "out/b/scores.nc",
    }
    assert FIGURES["fig7"].inputs({"experiment": "b", "per_class": 2}, paths) == {
        "experiment__scores": "out/b/scores.nc",
        "experiment__dataset": "out/data/mnist5k.nc",
    }
    assert FIGURES["fig9"].inputs({"experiments": ["a", "b"]}, paths) == {
        "experiments__scores": ["out/a/scores.nc", "out/b/scores.nc"]
    }
    assert FIGURES["fig10"].inputs({"experiment": "a"}, paths) == {
        "experiment__sweep": ["out/a/sweep/corrupt0.nc", "out/a/sweep/corrupt5.nc"]
    }
    needs = FIGURES["fig5"].needs({"experiments": ["a", "b"]})
    assert needs == [("experiments", "a", "dynamics"), ("experiments", "b", "dynamics")]


def test_a_figure_draws_a_pdf_and_writes_its_claims(tmp_path):
    import xarray as xr

    from memorization.studies.plain import SUBSETS
    from memorization.workflow.artifacts import open_artifact, write_artifact
    from memorization.workflow.provenance import provenance
    from memorization.workflow.stages.studies import DYNAMICS

    epochs = np.arange(6)
    acc = np.zeros((1, 6, 2, 3))
    acc[0, :, 0] = np.stack(
        [0.5 + 0.08 * epochs, np.minimum(1, 0.6 + 0.2 * epochs), 0.02 * epochs], 1
    )
    acc[0, :, 1] = 0.9
    ds = xr.Dataset(
        {
            "accuracy": (("run", "epoch", "split", "subset"), acc),
            "loss": (("run", "epoch", "split", "subset"), 1 - acc),
            "subset_size": (("split", "subset"), np.array([[100, 10, 10], [50, 5, 5]])),
        },
        coords={
            "run": ["all"],
            "epoch": epochs,
            "split": ["train", "test"],
            "subset": list(SUBSETS),
        },
    )
    # the dynamics stage's slice params, as the stage records them
    cfg = {
        "dataset": {"name": "digits", "source": "builtin"},
        "labels": {"corrupt": 30, "corruption": "uniform", "seed": 0},
        "model": {"model": "mlp", "hidden": 8},
        "study": {"lr": 0.01, "epochs": 5},
    }
    attrs = provenance(cfg, experiment="noisy")
    path = write_artifact(ds, tmp_path / "dyn.nc", "dynamics", DYNAMICS, attrs)
    out, claims = tmp_path / "fig3.pdf", tmp_path / "claims" / "fig3.json"
    run_figure("fig3", {"experiment__dynamics": str(path)}, {"experiment": "noisy"}, out, claims)
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_size > 5000
    found = json.loads(claims.read_text())
    assert [c["key"] for c in found] == [
        "easy_learnt_faster",
        "learnt_simultaneously",
        "test_peaks_then_drops",
    ]
    assert all(c["experiment"] == "noisy" and c["figure"] == "fig3" for c in found)
    assert found[0]["verdict"] == "supported"  # easy at epoch 2, difficult never
    # titles come from the artifact's provenance, not from the experiment's name
    from memorization.report.figures.base import title_of

    title = title_of(open_artifact(path, "dynamics"))
    assert title == "noisy: digits, mlp (hidden 8), 30 random labels (uniform), lr 0.01, 5 epochs"
