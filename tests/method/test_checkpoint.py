"""Checkpoint and resume: a training stage killed at any point and run again writes the
bit-identical artifact of an uninterrupted run, and never resumes another config's state.

Each stage runs as the workflow runs it: its function in
:mod:`memorization.workflow.stages`, called with a
:class:`~memorization.workflow.context.StageContext` whose params are the stage's slice
of an experiment (``STAGES[stage].slice_of(exp).params()``). Interruptions are injected
by wrapping ``memorization.method.training._batches`` (the batch order of every epoch):
before a chosen batch it either raises (a SIGKILL: nothing is saved, the last periodic
checkpoint is used) or sends the process a real SIGTERM or SIGINT (the training finishes
the batch, saves mid-epoch and exits). One test kills a separate process with SIGTERM
from outside.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import Killed, interrupt

from memorization.method import training
from memorization.method.checkpoint import Checkpoint, Records, checkpoint_path
from memorization.method.subsets import easy_difficult
from memorization.workflow.artifacts import ENGINE, write_artifact
from memorization.workflow.context import Execution, StageContext
from memorization.workflow.provenance import provenance
from memorization.workflow.registry import STAGES
from memorization.workflow.specs import Experiment
from memorization.workflow.stages.scores import SUBSETS

EXPERIMENT = {
    "dataset": "digits",
    "model": "mlp",
    "hidden": 32,
    "lr": 0.05,
    "epochs": 6,
    "batch_size": 128,  # 12 batches an epoch on the 1,437 training digits
    "seed": 0,
    "corrupt": 100,
    "subset_size": 100,
    "probe_size": 20,
    "control": True,
}
#: the model with momentum and a milestone schedule
MOMENTUM = {"momentum": 0.9, "milestones": [2, 4], "gamma": 0.5}
VGG = {"model": "vgg11", "width": 0.0625, "masked_layers": 2, "epochs": 4, "batch_size": 256}
BATCHES = 12


def experiment(**overrides) -> Experiment:
    return Experiment.from_config("t", {**EXPERIMENT, **overrides})


def slice_of(stage: str, level: int | None = None, **overrides) -> dict:
    """The params of ``stage``'s slice of the experiment (with ``overrides``)."""
    wildcards = {} if level is None else {"level": level}
    return STAGES[stage].slice_of(experiment(**overrides), **wildcards).params()


def execution(every: int = 2) -> Execution:
    return Execution(device="cpu", threads=1, checkpoint_every=every)


def make_labels(data: str, output: str, **overrides) -> None:
    """The labels stage's artifact of the experiment (with ``overrides``)."""
    ctx = StageContext("labels", output, slice_of("labels", **overrides), {"dataset": data},
                       execution=execution())  # fmt: skip
    STAGES["labels"].run(ctx)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Dataset, labels and easy/difficult subsets (of random scores) of the digits."""
    root = tmp_path_factory.mktemp("inputs")
    names = ("dataset", "labels", "subsets", "subsets_test")
    paths = {k: str(root / f"{k}.nc") for k in names}
    dataset = STAGES["dataset"].slice(experiment().dataset).params()
    STAGES["dataset"].run(StageContext("dataset", paths["dataset"], dataset, execution=execution()))
    make_labels(paths["dataset"], paths["labels"])
    with xr.open_dataset(paths["dataset"], engine=ENGINE) as ds:
        split = ds["split"].values
        examples = ds["example"].values
    rng = np.random.default_rng(0)
    for name, part, size in (("subsets", "train", 100), ("subsets_test", "test", 25)):
        ex = examples[split == part]
        scores = xr.DataArray(rng.normal(size=len(ex)), coords={"example": ex}, dims="example")
        write_artifact(easy_difficult(scores, size), paths[name], name, SUBSETS, provenance({}))
    return paths


#: stage -> the inputs it reads
STAGE_INPUTS = {
    "scores": ("dataset", "labels"),
    "dynamics": ("dataset", "labels", "subsets", "subsets_test"),
    "gradstats": ("dataset", "labels", "subsets"),
    "crosstrain": ("dataset", "labels", "subsets"),
    "sweep": ("dataset",),
}


def run_stage(stage: str, inputs, output, config, every=2):
    ctx = StageContext(
        stage,
        str(output),
        params=config,
        inputs={k: inputs[k] for k in STAGE_INPUTS[stage]},
        execution=execution(every),
    )
    STAGES[stage].run(ctx)


@pytest.fixture
def safe_signals():
    """Handlers that fail the test (instead of ending pytest) if a signal escapes fit."""

    def escaped(signum, frame):
        raise AssertionError(f"signal {signum} reached the handler outside training")

    previous = {s: signal.signal(s, escaped) for s in (signal.SIGTERM, signal.SIGINT)}
    yield escaped
    for s, handler in previous.items():
        signal.signal(s, handler)


def assert_bit_identical(a_path, b_path) -> None:
    with xr.open_dataset(a_path, engine=ENGINE) as a, xr.open_dataset(b_path, engine=ENGINE) as b:
        assert sorted(a.variables) == sorted(b.variables)
        for name in a.variables:
            va, vb = a[name].values, b[name].values
            assert va.dtype == vb.dtype, name
            if va.dtype.kind == "O":
                assert va.tolist() == vb.tolist(), name
            else:
                assert va.tobytes() == vb.tobytes(), f"{name} differs after resuming"


_REFERENCES: dict[tuple, Path] = {}


def reference(stage, inputs, config, tmp_path_factory) -> Path:
    """The artifact of an uninterrupted run (made once per stage and config)."""
    key = (stage, json.dumps(config, sort_keys=True))
    if key not in _REFERENCES:
        out = tmp_path_factory.mktemp("reference") / f"{stage}.nc"
        run_stage(stage, inputs, out, config)
        _REFERENCES[key] = out
    return _REFERENCES[key]


def interrupted_then_resumed(stage, inputs, config, out, monkeypatch, at, how, caplog):
    """Run ``stage`` interrupted before batch ``at``, then again; return the resume log."""
    expected = {"kill": Killed, "sigterm": SystemExit, "sigint": KeyboardInterrupt}[how]
    with monkeypatch.context() as m:
        interrupt(m, at, how)
        with pytest.raises(expected) as err:
            run_stage(stage, inputs, out, config)
    if how == "sigterm":
        assert err.value.code == 128 + signal.SIGTERM
    assert not out.exists()
    assert checkpoint_path(out).exists()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run_stage(stage, inputs, out, config)
    assert out.exists()
    assert not checkpoint_path(out).exists(), "the checkpoint outlived the artifact"
    assert not list(out.parent.glob(f".{checkpoint_path(out).name}.*")), "a half-written file"
    return caplog.text


# --- bit-identical resume ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("optim", "how"),
    [({}, "kill"), (MOMENTUM, "sigterm"), (MOMENTUM, "sigint")],
    ids=["mlp-sgd-killed", "mlp-momentum-sigterm", "mlp-momentum-sigint"],
)
def test_score_resumes_bit_identical(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog, safe_signals, optim, how
):
    config = slice_of("scores", **optim)
    ref = reference("scores", inputs, config, tmp_path_factory)
    at = int(np.random.default_rng(len(how)).integers(2 * BATCHES + 1, 6 * BATCHES))
    out = tmp_path / "scores.nc"
    text = interrupted_then_resumed("scores", inputs, config, out, monkeypatch, at, how, caplog)
    done = (at - 1) // BATCHES  # epochs finished before the interruption
    if how == "kill":  # the last periodic checkpoint (every 2 epochs)
        assert f"resuming from epoch {done // 2 * 2 + 1} of 6" in text
    else:  # saved after the batch in progress
        assert f"resuming from epoch {done + 1} of 6" in text
    assert signal.getsignal(signal.SIGTERM) is safe_signals, "handlers not restored"
    assert_bit_identical(ref, out)


def test_vgg_with_momentum_and_milestones_resumes_bit_identical(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog, safe_signals
):
    config = slice_of("scores", **MOMENTUM, **VGG)
    ref = reference("scores", inputs, config, tmp_path_factory)
    out = tmp_path / "scores.nc"
    text = interrupted_then_resumed(
        "scores", inputs, config, out, monkeypatch, 15, "sigterm", caplog
    )
    assert "resuming from epoch 3 of 4, after 3 of its 6 batches" in text
    assert_bit_identical(ref, out)


def test_dynamics_killed_in_the_control_run(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog
):
    config = slice_of("dynamics", **MOMENTUM)
    ref = reference("dynamics", inputs, config, tmp_path_factory)
    out = tmp_path / "dynamics.nc"
    at = 6 * BATCHES + 5 * 11 + 3  # the control run trains 1,337 examples: 11 batches an epoch
    text = interrupted_then_resumed(
        "dynamics", inputs, config, out, monkeypatch, at, "kill", caplog
    )
    assert "all: finished before the interruption" in text
    assert "plain training (without_difficult): resuming from epoch 5 of 6" in text
    assert_bit_identical(ref, out)


@pytest.mark.parametrize("pairs", ["probe", "batch"])
def test_gradstats_signalled_mid_epoch(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog, safe_signals, pairs
):
    config = slice_of("gradstats", cosine_pairs=pairs, **MOMENTUM)
    ref = reference("gradstats", inputs, config, tmp_path_factory)
    out = tmp_path / "gradstats.nc"
    at = 3 * BATCHES + 7  # within-epoch sums of contributions (and cosines) are in flight
    text = interrupted_then_resumed(
        "gradstats", inputs, config, out, monkeypatch, at, "sigterm", caplog
    )
    assert "resuming from epoch 4 of 6, after 7 of its 12 batches" in text
    assert_bit_identical(ref, out)


@pytest.mark.parametrize(
    ("at", "how", "logged"),
    [
        (6 * 4 + 3 * 4 + 2, "kill", "on the difficult subset: resuming from epoch 3 of 6 ("),
        (2 * 4 + 3, "sigterm", "on the easy subset: resuming from epoch 3 of 6, after 3 of"),
    ],
    ids=["killed-training-on-difficult", "sigterm-training-on-easy"],
)
def test_crosstrain_resumes_bit_identical(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog, safe_signals, at, how, logged
):
    # 4 batches an epoch of either run (100 easy, 100 difficult examples)
    config = slice_of("crosstrain", **MOMENTUM, batch_size=32, crosstrain_epochs=6)
    ref = reference("crosstrain", inputs, config, tmp_path_factory)
    out = tmp_path / "crosstrain.nc"
    text = interrupted_then_resumed("crosstrain", inputs, config, out, monkeypatch, at, how, caplog)
    assert logged in text
    assert ("easy: finished before the interruption" in text) == (how == "kill")
    assert_bit_identical(ref, out)


def test_sweep_level_resumes_bit_identical(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog, safe_signals
):
    config = slice_of("sweep", level=300, **MOMENTUM)
    ref = reference("sweep", inputs, config, tmp_path_factory)
    out = tmp_path / "sweep.nc"
    text = interrupted_then_resumed(
        "sweep", inputs, config, out, monkeypatch, 4 * BATCHES + 1, "sigint", caplog
    )
    assert "plain training (all): resuming from epoch 5 of 6, after 1 of its 12" in text
    assert_bit_identical(ref, out)


# --- a real signal from outside ---------------------------------------------------------

CHILD = """
import json, logging, sys, time
import torch
torch.set_num_threads(1)
from memorization.method import checkpoint, training
from memorization.workflow.context import Execution, StageContext
from memorization.workflow.registry import STAGES
args = json.loads(sys.argv[1])
source = args.pop("source_hash")
checkpoint.source_hash = lambda: source  # the parent's (see the test)
batches = training._batches
def slow(*args):  # slow enough for the parent to signal in the middle of training
    for batch in batches(*args):
        time.sleep(0.02)
        yield batch
training._batches = slow
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
args["execution"] = Execution(**args["execution"])
STAGES[args["stage"]].run(StageContext(**args))
"""


def test_sigterm_from_outside_then_resume(inputs, tmp_path, caplog):
    # true labels (none drawn at random): the stage then never computes a ROC AUC
    config = slice_of("scores", **MOMENTUM, epochs=10, corrupt=0)
    labels = str(tmp_path / "labels.nc")
    make_labels(inputs["dataset"], labels, corrupt=0)
    args = {
        "stage": "scores",
        "params": config,
        "inputs": {"dataset": inputs["dataset"], "labels": labels},
        "execution": {"device": "cpu", "threads": 1, "checkpoint_every": 2},
    }

    def run(output):
        STAGES["scores"].run(
            StageContext(**{**args, "output": str(output), "execution": execution(2)})
        )

    ref = tmp_path / "reference.nc"
    run(ref)
    out = tmp_path / "scores.nc"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    # the child fingerprints its checkpoint with this process's source hash: the same code
    # runs in both, and the test does not depend on edits to the checkout while it runs
    # (test_checkpoint_of_other_code_is_not_resumed checks that another hash is refused)
    from memorization.method.checkpoint import source_hash

    child_args = {**args, "output": str(out), "source_hash": source_hash()}
    cmd = [sys.executable, str(script), json.dumps(child_args)]
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint_path(out).exists():
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM received; saved a checkpoint" in err
    assert not out.exists() and checkpoint_path(out).exists()
    with caplog.at_level(logging.INFO):  # the second run, in this process
        run(out)
    assert "turn-over training: resuming from epoch" in caplog.text
    assert not checkpoint_path(out).exists()
    assert_bit_identical(ref, out)


# --- what is never resumed --------------------------------------------------------------


def _leave_checkpoint(inputs, out, config, monkeypatch):
    with monkeypatch.context() as m:
        interrupt(m, 4 * BATCHES, "kill")
        with pytest.raises(Killed):
            run_stage("scores", inputs, out, config)
    assert checkpoint_path(out).exists()


def test_checkpoint_of_another_config_is_not_resumed(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog
):
    out = tmp_path / "scores.nc"
    _leave_checkpoint(inputs, out, slice_of("scores", lr=0.2), monkeypatch)
    config = slice_of("scores")
    with caplog.at_level(logging.INFO):
        run_stage("scores", inputs, out, config)
    assert "was made from another config or code (config_hash" in caplog.text
    assert "resuming from" not in caplog.text
    assert_bit_identical(reference("scores", inputs, config, tmp_path_factory), out)


def test_checkpoint_of_other_code_is_not_resumed(
    inputs, tmp_path, tmp_path_factory, monkeypatch, caplog
):
    from memorization.method import checkpoint

    out = tmp_path / "scores.nc"
    config = slice_of("scores")
    _leave_checkpoint(inputs, out, config, monkeypatch)
    monkeypatch.setattr(checkpoint, "source_hash", lambda: "edited-source")
    with caplog.at_level(logging.INFO):
        run_stage("scores", inputs, out, config)
    assert "another config or code (source" in caplog.text
    assert "resuming from" not in caplog.text
    assert_bit_identical(reference("scores", inputs, config, tmp_path_factory), out)


def test_truncated_checkpoint_is_ignored(inputs, tmp_path, tmp_path_factory, monkeypatch, caplog):
    out = tmp_path / "scores.nc"
    config = slice_of("scores")
    _leave_checkpoint(inputs, out, config, monkeypatch)
    path = checkpoint_path(out)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.INFO):
        run_stage("scores", inputs, out, config)
    assert f"checkpoint {path} cannot be read" in caplog.text
    assert "resuming from" not in caplog.text
    assert not path.exists()
    assert_bit_identical(reference("scores", inputs, config, tmp_path_factory), out)


# --- without a checkpoint -----------------------------------------------------------------


def test_fit_without_checkpoint_writes_nothing_and_keeps_handlers(tmp_path, monkeypatch):
    import torch

    from memorization.data import TensorSplit
    from memorization.method.models import build_model
    from memorization.method.optim import OptimSpec

    monkeypatch.chdir(tmp_path)
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    seen = []

    def after_epoch(epoch):
        seen.append({s: signal.getsignal(s) for s in before})

    g = torch.Generator().manual_seed(0)
    train = TensorSplit(torch.randn(64, 1, 4, 4, generator=g), torch.arange(64) % 3, np.arange(64))
    model = build_model("mlp", (1, 4, 4), 3, hidden=8, turnover=False)
    opt = OptimSpec(epochs=2, lr=0.1, batch_size=16)
    training.fit(model, train, opt, seed=0, after_epoch=after_epoch, progress=False)
    assert seen == [before, before]
    assert list(tmp_path.iterdir()) == []


def test_records_restore_in_place():
    acc, history, sums = np.zeros(3), [], {"a": 0.0}
    records = Records(acc=acc, history=history, sums=sums)
    acc[1], sums["a"] = 2.0, 1.5
    history.append(0.25)
    state = records.state_dict()
    acc[:], sums["a"] = 9.0, 9.0
    history.append(9.0)
    records.load_state_dict(state)
    assert acc.tolist() == [0.0, 2.0, 0.0] and history == [0.25] and sums == {"a": 1.5}
    with pytest.raises(TypeError):
        Records(total=0.0)


def test_checkpoint_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError):
        Checkpoint(tmp_path / "x", {"stage": "scores"}, every=0)
