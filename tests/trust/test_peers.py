import copy

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.training import fit
from memorization.trust.peers import (
    PEER_NAMES,
    average_peers,
    cumulative_loss,
    estimators_from_records,
    forgetting_events,
    peer_estimates,
    peers_of_first_runs,
    record_plain_run,
    slow_learning,
    tracin_self_influence,
)
from memorization.workflow.registry import STAGES


class Linear(nn.Module):
    """Softmax regression, called like the project's models: ``model(x, masks=None)``."""

    def __init__(self, d: int, c: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, c)

    def forward(self, x, masks=None):
        return self.fc(x.flatten(1))


def _split(n=60, d=5, c=3, seed=0) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    return TensorSplit(
        torch.randn(n, 1, 1, d, generator=g),
        torch.randint(0, c, (n,), generator=g),
        np.arange(n) + 7,
    )


def test_forgetting_events_on_a_hand_made_history():
    history = np.array(
        [
            # epochs down, examples across
            [1, 1, 0, 0, 1, 1],
            [1, 0, 0, 1, 0, 1],
            [1, 1, 0, 0, 0, 0],
            [1, 0, 0, 0, 1, 1],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(forgetting_events(history), [0, 2, 4, 1, 1, 1])
    np.testing.assert_allclose(slow_learning(history), [0, 0.5, 1, 0.75, 0.5, 0.25])


def test_tracin_sums_learning_rate_times_squared_norms():
    sq = np.array([[1.0, 4.0], [2.0, 0.0], [3.0, 1.0]])
    np.testing.assert_allclose(tracin_self_influence(sq, [0.1, 0.1, 0.01]), [0.33, 0.41])


def test_cumulative_loss_sums_the_end_of_epoch_losses():
    losses = np.array([[2.0, 0.5], [1.0, 0.25], [0.5, 0.125]], dtype=np.float32)
    np.testing.assert_array_equal(cumulative_loss(losses), [3.5, 0.875])
    assert cumulative_loss(losses).dtype == np.float64


def test_gradient_norms_of_softmax_regression_are_the_closed_form():
    """||∇_W ℓ||² + ||∇_b ℓ||² = ||p - e_y||² (||x||² + 1) at every checkpoint."""
    train = _split()
    opt = OptimSpec(epochs=3, lr=0.5, batch_size=16, milestones=(2,), gamma=0.2)
    torch.manual_seed(0)
    model = Linear(5, 3)
    twin = copy.deepcopy(model)
    records = record_plain_run(model, train, opt, seed=4)
    # the same training again, keeping the weights of every checkpoint
    weights = []
    fit(
        twin,
        train,
        opt,
        seed=4,
        progress=False,
        after_epoch=lambda e: weights.append(copy.deepcopy(twin.fc.state_dict())),
    )
    x = train.x.flatten(1).double()
    onehot = torch.nn.functional.one_hot(train.y, 3).double()
    for e, w in enumerate(weights):
        p = torch.softmax(x @ w["weight"].double().T + w["bias"].double(), 1)
        want = ((p - onehot) ** 2).sum(1) * ((x**2).sum(1) + 1)
        np.testing.assert_allclose(records["grad_sq_norm"].values[e], want.numpy(), rtol=1e-4)
        loss = -(p * onehot).sum(1).log()
        np.testing.assert_allclose(records["loss"].values[e], loss.numpy(), rtol=1e-4)
    np.testing.assert_allclose(records["lr"].values, [0.5, 0.5, 0.1])
    est = estimators_from_records(records)
    np.testing.assert_allclose(
        est["tracin_self_influence"].values,
        (records["lr"] * records["grad_sq_norm"]).sum("epoch").values,
        rtol=1e-6,
    )
    np.testing.assert_array_equal(
        est["cumulative_loss"].values, records["loss"].values.astype(np.float64).sum(0)
    )


def test_an_example_that_is_never_fitted_ranks_highest():
    """Labels from a linear rule, plus three copies of one input: the two with the rule's
    label win, the one with another label is never fitted."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 1, 1, 5, generator=g)
    y = (x.flatten(1) @ torch.randn(5, 3, generator=g)).argmax(1)
    rule, other = int(y[0]), (int(y[0]) + 1) % 3
    x = torch.cat([x, x[:1].expand(3, -1, -1, -1)])
    y = torch.cat([y, torch.tensor([rule, rule, other])])
    train = TensorSplit(x, y, np.arange(len(y)))
    opt = OptimSpec(epochs=8, lr=0.5, batch_size=8)
    model = ModelSpec.from_config("mlp", {"hidden": 32}).with_classes(3)
    est = peer_estimates(model, train, opt, seed=0)
    odd = len(y) - 1
    assert est["final_loss"].values.argmax() == odd
    assert est["forgetting_events"].values[odd] == 8  # never learnt: the number of epochs
    assert est["slow_learning"].values[odd] == 1.0
    assert est["tracin_self_influence"].values.argmax() == odd
    assert est["cumulative_loss"].values.argmax() == odd
    assert set(PEER_NAMES) <= set(est.data_vars) and "cumulative_loss" in PEER_NAMES
    # every variable is described by the peers artifact's schema (long_name and units)
    schema = STAGES["peers"].schema
    assert set(est.data_vars) <= set(schema.required)
    for name in PEER_NAMES:
        assert est[name].dims == ("example",)
        assert schema.required[name].long_name
    np.testing.assert_array_equal(est["example"].values, train.examples)
    assert est["accuracy"].dims == ("epoch",) and len(est["epoch"]) == 8
    assert est["accuracy"].values[-1] == pytest.approx(est["correct"].values[-1].mean())
    assert est["accuracy"].values[-1] > 0.9  # the rest is fitted


def _records(rng, epochs=4, n=30) -> xr.Dataset:
    """Synthetic per-epoch records of one plain run (losses, correctness, gradient norms)."""
    return xr.Dataset(
        {
            "loss": (("epoch", "example"), rng.exponential(1.0, (epochs, n)).astype(np.float32)),
            "correct": (("epoch", "example"), rng.random((epochs, n)) < 0.7),
            "grad_sq_norm": (("epoch", "example"), rng.exponential(2.0, (epochs, n))),
            "lr": ("epoch", np.linspace(0.5, 0.1, epochs)),
            "accuracy": ("epoch", np.full(epochs, 0.7)),
        },
        coords={"epoch": np.arange(1, epochs + 1), "example": np.arange(n) + 3},
    )


def test_peers_of_the_first_runs_recompute_the_average_of_fewer_runs():
    """From a 3-run artifact: all 3 runs give its own averages, r runs the average of the
    first r runs' own estimators; more runs than it holds are refused."""
    rng = np.random.default_rng(0)
    single = [estimators_from_records(_records(rng)) for _ in range(3)]
    artifact = average_peers(single, [11, 12, 13])
    for name, values in peers_of_first_runs(artifact, 3).items():
        np.testing.assert_allclose(values, artifact[name].values, rtol=1e-12)
    two = peers_of_first_runs(artifact, 2)
    assert set(two) == set(PEER_NAMES)
    for name in PEER_NAMES:
        want = (single[0][name].values + single[1][name].values) / 2
        np.testing.assert_allclose(two[name], want, rtol=1e-12)
        assert not np.allclose(two[name], artifact[name].values)  # not the 3-run average
    one = peers_of_first_runs(single[0], 1)  # a single run: no run dimension
    np.testing.assert_array_equal(one["cumulative_loss"], single[0]["cumulative_loss"].values)
    with pytest.raises(ValueError, match="holds 3 plain run"):
        peers_of_first_runs(artifact, 4)
