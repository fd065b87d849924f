"""Out-of-bag sub-networks: the design, the refusal of unscorable examples, known answers
(a duplicated example, planted label noise), the ensemble against one-by-one training, the
cost arithmetic and the stage in a tiny workflow."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from helpers import ROOT

from memorization.data import TensorSplit, prepare_dataset
from memorization.data.tensors import to_tensors
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.trust.ensemble import predict_split, train_ensemble, train_sequential
from memorization.trust.metrics import roc_auc
from memorization.trust.oob import (
    FORMS,
    OOBSpec,
    balanced_halves,
    check_design,
    cost_runs,
    narrow,
    network_seeds,
    oob_forms,
    train_oob,
)

OPT = OptimSpec(epochs=4, lr=0.1, momentum=0.9, batch_size=32, milestones=(3,), gamma=0.5)


def mlp(hidden=32, classes=10) -> ModelSpec:
    return ModelSpec.from_config("mlp", {"hidden": hidden}).with_classes(classes)


@pytest.fixture(scope="module")
def digits() -> TensorSplit:
    return to_tensors(prepare_dataset("digits"), "train")


def _subset(split: TensorSplit, rows) -> TensorSplit:
    rows = torch.as_tensor(np.asarray(rows))
    return TensorSplit(split.x[rows], split.y[rows], split.examples[rows.numpy()])


# --------------------------------------------------------------------------- design
@pytest.mark.parametrize("networks", [2, 4, 16])
def test_every_example_in_exactly_half_of_the_networks(networks):
    labels = np.repeat(np.arange(5), [7, 10, 13, 4, 1])  # odd class sizes on purpose
    design = balanced_halves(labels, networks, seed=3)
    assert design.shape == (networks, len(labels))
    np.testing.assert_array_equal(design.sum(0), networks // 2)
    for k in range(networks):  # each network holds half of every class (to one example)
        for c in range(5):
            size = (labels == c).sum()
            assert abs(2 * design[k, labels == c].sum() - size) <= 1
    assert not np.array_equal(design[0], design[2 % networks]) or networks == 2
    np.testing.assert_array_equal(design, balanced_halves(labels, networks, seed=3))


def test_an_example_no_network_left_out_is_refused(digits):
    design = balanced_halves(np.arange(20) % 4, 4)
    design[:, 7] = True  # example 7 is in every network: no out-network
    with pytest.raises(ValueError, match=r"1 examples have no network left out.*examples 107"):
        check_design(design, np.arange(20) + 100)
    design[:, 7] = False  # in none: no in-network
    with pytest.raises(ValueError, match="no network trained on"):
        check_design(design)
    final = {n: np.zeros((4, 20)) for n in ("correct", "prob", "loss")}
    with pytest.raises(ValueError, match="cannot be scored"):
        oob_forms(design, final, final["loss"], final["prob"], np.arange(20))
    # a user-given design is refused before any network is trained
    split = _subset(digits, range(20))
    with pytest.raises(ValueError, match="cannot be scored"):
        train_oob(mlp(), split, OPT, OOBSpec(4), in_train=design)


def test_settings_are_checked_naming_the_key():
    with pytest.raises(ValueError, match="oob_networks"):
        OOBSpec(networks=3)
    with pytest.raises(ValueError, match="oob_fork"):
        OOBSpec(fork=1.0)
    with pytest.raises(ValueError, match="oob_width .* 'torchvision:resnet18' has none"):
        narrow(ModelSpec("torchvision:resnet18", {}), 0.5)
    assert OOBSpec.from_values({"oob_networks": 16}) == OOBSpec(16, 1.0, 0.0, 2)


def test_narrow_copies_scale_the_width_option():
    assert narrow(mlp(64), 0.25).options["hidden"] == 16
    assert narrow(mlp(64), 1.0) == mlp(64)
    vgg = ModelSpec.from_config("vgg11", {"width": 0.5})
    assert narrow(vgg, 0.5).options["width"] == 0.25
    cct = ModelSpec.from_config("cct", {"heads": 4, "embed_dim": 64, "tokenizer_channels": 32})
    small = narrow(cct, 0.3).options
    assert small["embed_dim"] % 4 == 0 and small["embed_dim"] == 20
    assert small["tokenizer_channels"] == 10


def test_cost_arithmetic():
    # K networks on half the data: K/2 runs; recording every network on every example
    # after R of E epochs: K R / (3 E) more; a fork f: f + (1 - f) K / 2
    assert cost_runs(OOBSpec(8, record_every=10), 10) == pytest.approx(4 + 8 / 30)
    assert cost_runs(OOBSpec(8, record_every=1), 10) == pytest.approx(4 + 8 * 10 / 30)
    fork = OOBSpec(4, fork=0.5, record_every=10)
    assert fork.recorded_epochs(10) == [10]
    assert cost_runs(fork, 10) == pytest.approx(0.5 + 0.5 * 2 + 4 / 30)
    assert cost_runs(OOBSpec(8, record_every=10), 10, flops_ratio=0.25) == pytest.approx(
        (4 + 8 / 30) / 4
    )
    assert OOBSpec(4, record_every=3).recorded_epochs(10) == [3, 6, 9, 10]


# --------------------------------------------------------------------------- equal to one by one
def test_vectorised_networks_equal_networks_trained_one_by_one(digits):
    split = _subset(digits, range(240))
    spec = OOBSpec(4, record_every=OPT.epochs)  # one record: cumulative = the end's loss
    got = train_oob(mlp(), split, OPT, spec, seed=5, chunk_size=3, path="func")
    design = balanced_halves(split.y.numpy(), 4, seed=5)
    np.testing.assert_array_equal(got["in_train"].values, design)
    nets = train_sequential(mlp(), split, OPT, network_seeds(4, 5), design)
    pred = predict_split(nets, split)
    final = {"correct": pred.correct, "prob": pred.prob, "loss": pred.loss}
    want = oob_forms(design, final, pred.loss, pred.prob, split.examples)
    for name in FORMS:
        np.testing.assert_allclose(
            got[f"oob_{name}"].values, want[f"oob_{name}"].values, atol=2e-4, err_msg=name
        )
    np.testing.assert_allclose(got["oob_cumulative"].values, got["oob_loss"].values, atol=1e-6)


def test_branches_start_from_the_fork_state(digits):
    split = _subset(digits, range(64))
    trunk = train_ensemble(mlp(), split, OPT, [1], np.ones((1, 64), bool), epochs=(0, 2))
    state = trunk.state_dicts()[0]
    halves = balanced_halves(split.y.numpy(), 2)
    idle = train_ensemble(mlp(), split, OPT, [7, 8], halves, start=state, epochs=(2, 2))
    for branch in idle.state_dicts():
        for name, value in state.items():
            torch.testing.assert_close(branch[name], value)
    moved = train_ensemble(mlp(), split, OPT, [7, 8], halves, start=state, epochs=(2, 4))
    a, b = moved.state_dicts()
    assert not torch.allclose(a["hidden.weight"], b["hidden.weight"])


# --------------------------------------------------------------------------- known answers
def test_a_duplicated_example_scores_near_zero(digits):
    """60 copies of one image among 300: whichever half a network trains on holds about 30
    of them, so its out-copies are as well learnt as its in-copies."""
    rows = np.r_[np.arange(240), np.full(60, 250)]
    split = _subset(digits, rows)
    split = TensorSplit(split.x, split.y, np.arange(len(rows)))
    opt = OptimSpec(epochs=10, lr=0.1, momentum=0.9, batch_size=32, milestones=())
    out = train_oob(mlp(64), split, opt, OOBSpec(8), seed=0)
    copies = np.arange(240, 300)
    for name in ("correct", "prob", "cumulative_prob"):
        assert abs(float(out[f"oob_{name}"].values[copies].mean())) < 0.02, name
    assert abs(float(out["oob_cumulative"].values[copies].mean())) < 0.05
    # while the singletons of the same training are memorized on average
    assert float(out["oob_cumulative"].values[:240].mean()) > 0.1


def test_planted_label_noise_is_found(digits):
    split = _subset(digits, range(600))
    rng = np.random.default_rng(0)
    flipped = rng.random(600) < 0.1
    y = split.y.numpy().copy()
    y[flipped] = (y[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    split = TensorSplit(split.x, torch.from_numpy(y), split.examples)
    opt = OptimSpec(epochs=30, lr=0.1, momentum=0.9, batch_size=32, milestones=(20,))
    out = train_oob(mlp(128), split, opt, OOBSpec(8), seed=0)
    for name in ("prob", "cumulative", "cumulative_prob"):
        assert roc_auc(out[f"oob_{name}"].values, flipped) > 0.95, name


# --------------------------------------------------------------------------- workflow
@pytest.mark.workflow
def test_oob_stage_in_a_tiny_workflow(tmp_path):
    cfg = {
        "device": "cpu",
        "threads": 1,
        "experiments": {
            "tiny": {
                "dataset": "digits", "model": "mlp", "hidden": 32, "seed": 0, "epochs": 3,
                "lr": 0.1, "batch_size": 64, "oob_networks": 4, "oob_record_every": 1,
                "oob_width": 0.5,
            }
        },
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "results/tiny/oob.nc",
           "--configfile", str(tmp_path / "config.yaml"), "--cores", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-5000:]
    with xr.open_dataset(tmp_path / "results/tiny/oob.nc", engine="netcdf4") as ds:
        assert ds.attrs["kind"] == "oob"
        np.testing.assert_array_equal(ds["in_train"].values.sum(0), 2)
        np.testing.assert_array_equal(ds["n_out"].values, 2)
        # 4 half-width MLPs on half the data, recording all 4 on every example each epoch
        runs = (2 + 4 / 3) * float(ds.attrs["flops_ratio"])
        assert 0.4 < float(ds.attrs["flops_ratio"]) < 0.6
        for name in ("correct", "prob", "loss", "cumulative"):
            var = ds[f"oob_{name}"]
            assert var.attrs["family"] == "oob" and var.attrs["units"] in ("1", "nats")
            assert float(var.attrs["cost_runs"]) == pytest.approx(runs, rel=1e-3)
            assert np.isfinite(var.values).all() and var.values.std() > 0
        assert float(ds.attrs["train_seconds"]) > 0


def test_oob_keys_decide_only_the_oob_artifact():
    from memorization.workflow.provenance import slice_hash
    from memorization.workflow.registry import STAGES
    from memorization.workflow.specs import Experiment

    base = {
        "dataset": "digits",
        "model": "mlp",
        "hidden": 32,
        "epochs": 10,
        "lr": 0.1,
        "batch_size": 64,
        "seed": 0,
    }
    a, b = (Experiment.from_config("a", {**base, **extra}) for extra in ({}, {"oob_networks": 16}))
    for stage in ("labels", "scores", "peers"):
        assert slice_hash(STAGES[stage].slice_of(a).params()) == slice_hash(
            STAGES[stage].slice_of(b).params()
        ), stage
    oob_a, oob_b = (STAGES["oob"].slice_of(e).params() for e in (a, b))
    assert (oob_a["oob"]["networks"], oob_b["oob"]["networks"]) == (8, 16)
    # the shared start enters the slice only when set: default hashes stay as they were
    assert "shared_init" not in oob_a["oob"]
    shared = Experiment.from_config("s", {**base, "oob_shared_init": True})
    params = STAGES["oob"].slice_of(shared).params()
    assert params["oob"]["shared_init"] is True
    assert STAGES["oob"].slice_of(shared).from_params(params).oob.shared_init
    # twice the networks: twice the training passes
    train = [p.examples * p.epochs for p in STAGES["oob"].passes(a)][0]
    assert [p.examples * p.epochs for p in STAGES["oob"].passes(b)][0] == 2 * train
    resnet = Experiment.from_config(
        "r", {**base, "model": "torchvision:resnet18", "oob_width": 0.5}
    )
    with pytest.raises(ValueError, match="oob_width"):
        STAGES["oob"].slice_of(resnet)


# --------------------------------------------------------------------------- shared start
def test_shared_init_pairs_seeds_and_refuses_a_design_without_pairs(digits):
    seeds = network_seeds(6, 3, shared_init=True)
    assert (seeds[0::2] == seeds[1::2]).all() and len(set(seeds[0::2])) == 3
    # a stream of its own: none of the default's seeds
    assert not set(seeds) & set(network_seeds(6, 3))
    split = _subset(digits, range(64))
    design = balanced_halves(split.y.numpy(), 4, seed=2)
    one_step = OptimSpec(epochs=1, lr=0.1, batch_size=32)
    out = train_oob(mlp(8), split, one_step, OOBSpec(4, shared_init=True), in_train=design)
    assert np.isfinite(out["oob_prob_se"].values).all()
    unpaired = design[[0, 2, 1, 3]]  # every example still on both sides, but 0 and 1 overlap
    check_design(unpaired)
    with pytest.raises(ValueError, match="complementary"):
        train_oob(mlp(8), split, OPT, OOBSpec(4, shared_init=True), in_train=unpaired)


def test_shared_init_starts_each_pair_alike_and_keeps_the_estimate(digits):
    """The pair's networks start from the same weights; the estimate is the same
    difference of means, its standard error the within-pair one."""
    split = _subset(digits, range(200))
    start = OptimSpec(epochs=1, lr=0.0, batch_size=50)  # lr 0: the networks stay at their start
    out = train_oob(mlp(16), split, start, OOBSpec(4, shared_init=True), seed=1)
    # identical networks on both sides of every example: nothing memorized, no spread
    for name in FORMS:
        np.testing.assert_allclose(out[f"oob_{name}"].values, 0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(out[f"oob_{name}_se"].values, 0, atol=1e-6, err_msg=name)
    # without the shared start the same networks differ
    plain = train_oob(mlp(16), split, start, OOBSpec(4), seed=1)
    assert np.abs(plain["oob_prob"].values).max() > 1e-3


def test_paired_standard_error_from_known_pairs():
    in_train = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], bool)
    metric = np.array([[0.9, 0.2, 0.7], [0.5, 0.6, 0.1], [0.8, 0.9, 0.3], [0.6, 0.4, 0.5]])
    final = {"correct": (metric > 0.5).astype(float), "prob": metric, "loss": -np.log(metric)}
    out = oob_forms(in_train, final, -np.log(metric), metric, np.arange(3), paired=True)
    # example 0: pair differences 0.9-0.5 = 0.4 and 0.8-0.6 = 0.2
    assert out["oob_prob"].values[0] == pytest.approx(0.3)
    assert out["oob_prob_se"].values[0] == pytest.approx(np.std([0.4, 0.2], ddof=1) / np.sqrt(2))
    # example 2: 0.7-0.1 = 0.6 and 0.5-0.3 = 0.2
    assert out["oob_prob_se"].values[2] == pytest.approx(np.std([0.6, 0.2], ddof=1) / np.sqrt(2))
    unpaired = oob_forms(in_train, final, -np.log(metric), metric, np.arange(3))
    np.testing.assert_allclose(out["oob_prob"].values, unpaired["oob_prob"].values)
    assert not np.allclose(out["oob_prob_se"].values, unpaired["oob_prob_se"].values)
