import numpy as np
import pytest
import torch

from memorization.data import TensorSplit
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.trust.truth import (
    draw_subsets,
    influence_matrix,
    memorization_estimate,
    merge_shards,
    model_seeds,
    top_fz_influence,
    train_shard,
    truth_dataset,
)

COPIES = 12
OPT = OptimSpec(epochs=30, lr=0.2, batch_size=8)
MODEL = ModelSpec.from_config("mlp", {"hidden": 16}).with_classes(3)


def _synthetic():
    """Two typical inputs, each duplicated COPIES times (classes 0 and 1), and one special
    input, alone in class 2: only its own presence can teach a model class 2."""
    protos = torch.zeros(3, 1, 4, 4)
    protos[0, 0, 0, :] = 2.0
    protos[1, 0, 1, :] = 2.0
    protos[2, 0, 2:, 2:] = 2.0
    x = torch.cat(
        [protos[0].expand(COPIES, 1, 4, 4), protos[1].expand(COPIES, 1, 4, 4), protos[2:3]]
    ).contiguous()
    y = torch.tensor([0] * COPIES + [1] * COPIES + [2])
    train = TensorSplit(x, y, np.arange(len(y)) + 10)
    test = TensorSplit(protos.clone(), torch.tensor([0, 1, 2]), np.array([500, 501, 502]))
    return train, test


def _shard(k0=0, k1=None, n_models=40):
    train, test = _synthetic()
    return train_shard(MODEL, train, test, OPT, n_models=n_models, seed=0, k0=k0, k1=k1)


@pytest.fixture(scope="module")
def shard():
    return _shard()


def test_subsets_have_the_exact_size_and_shard():
    full = draw_subsets(100, 10, 0.7, seed=3)
    assert full.shape == (10, 100)
    assert (full.sum(1) == 70).all()
    parts = np.concatenate([draw_subsets(100, 10, 0.7, 3, 0, 4), draw_subsets(100, 10, 0.7, 3, 4)])
    np.testing.assert_array_equal(parts, full)
    assert not np.array_equal(draw_subsets(100, 10, 0.7, seed=4), full)
    assert len({tuple(r) for r in full}) == 10  # every model its own subset
    seeds = model_seeds(10, 3)
    np.testing.assert_array_equal(np.r_[model_seeds(10, 3, 0, 6), model_seeds(10, 3, 6)], seeds)
    assert len(set(seeds.tolist())) == 10
    with pytest.raises(ValueError):
        draw_subsets(100, 10, 1.0)
    with pytest.raises(ValueError):
        draw_subsets(100, 10, 0.7, k0=5, k1=11)


def test_memorization_estimate_known_numbers():
    in_train = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    correct = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 1], [1, 0, 0]], dtype=bool)
    est = memorization_estimate(in_train, correct)
    # example 0: in {0, 1} both right; out {2, 3}: 1 of 2 right -> 1 - 0.5
    assert est["memorization"][0] == pytest.approx(0.5)
    assert est["se"][0] == pytest.approx(np.sqrt(0.25 / 2))
    # example 1: in {0, 2} both right; out {1, 3} none right -> 1
    assert est["memorization"][1] == pytest.approx(1.0)
    assert est["se"][1] == 0
    # example 2: in no model -> no estimate
    assert np.isnan(est["memorization"][2]) and est["n_in"][2] == 0 and est["n_out"][2] == 4
    np.testing.assert_array_equal(est["n_in"], [2, 2, 0])
    # a real-valued metric: plain means, sample variances
    prob = np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.1], [0.4, 0.6, 0.1], [0.2, 0.3, 0.1]])
    est = memorization_estimate(in_train, prob)
    assert est["memorization"][0] == pytest.approx(0.8 - 0.3)
    assert est["se"][0] == pytest.approx(np.sqrt(0.02 / 2 + 0.02 / 2))


def test_influence_blockwise_equals_brute_force():
    rng = np.random.default_rng(1)
    in_train = rng.random((30, 12)) < 0.6
    in_train[:, 5] = True  # no model without example 5: no estimate
    correct_test = rng.random((30, 7)) < 0.5
    full = influence_matrix(in_train, correct_test)
    for i in (0, 3, 11):
        for j in (0, 6):
            c = correct_test[:, j]
            want = c[in_train[:, i]].mean() - c[~in_train[:, i]].mean()
            assert full[i, j] == pytest.approx(want, abs=1e-6)
    assert np.isnan(full[5]).all()
    rows, values = top_fz_influence(in_train, correct_test, top_k=4, block_elements=25)
    assert rows.shape == values.shape == (7, 4)
    assert (rows != 5).all()
    for j in range(7):
        col = np.where(np.isnan(full[:, j]), -np.inf, full[:, j])
        np.testing.assert_array_equal(rows[j], np.argsort(-col, kind="stable")[:4])
        np.testing.assert_allclose(values[j], col[rows[j]], atol=1e-6)
    assert (np.diff(values, axis=1) <= 0).all()


def test_memorization_of_a_self_fitted_example_and_of_duplicates(shard):
    truth = truth_dataset(shard, top_k=3)
    mem = truth["memorization"].values
    special = len(mem) - 1
    assert mem[special] > 0.9  # fitted when present, never predicted when absent
    assert truth["p_in"].values[special] > 0.9 and truth["p_out"].values[special] < 0.1
    assert np.abs(mem[:special]).max() < 0.1  # a duplicate is always there to teach it
    assert (truth["memorization_half"].values[:, special] > 0.8).all()
    assert truth["memorization_se"].values[special] < 0.1
    assert (truth["n_in"] + truth["n_out"] == 40).all()
    # the special example is the most influential one on its test copy (label 2)
    assert truth["influence_example"].sel(test_example=502).values[0] == 10 + special
    assert truth["influence"].sel(test_example=502).values[0] > 0.9
    assert np.abs(truth["influence"].sel(test_example=500).values).max() < 0.1
    for name in ("memorization", "memorization_se", "influence"):
        assert truth[name].attrs["long_name"]


def test_shards_merge_into_the_whole(shard):
    parts = [_shard(0, 15), _shard(15, 40)]
    merged = merge_shards(parts[::-1])  # order does not matter
    np.testing.assert_array_equal(merged["model"].values, np.arange(40))
    for name in ("in_train", "correct", "correct_test", "model_seed"):
        np.testing.assert_array_equal(merged[name].values, shard[name].values)
    np.testing.assert_allclose(merged["prob"].values, shard["prob"].values, atol=1e-5)
    # every shard times its training on the CPU's compute clock; the merge adds them up
    assert all(p.attrs["clock"] == "process_cpu" and p.attrs["train_seconds"] > 0 for p in parts)
    assert merged.attrs["clock"] == "process_cpu"
    assert merged.attrs["train_seconds"] == pytest.approx(
        sum(p.attrs["train_seconds"] for p in parts), abs=2e-3
    )
    truth = truth_dataset(merged, top_k=3)
    assert truth.attrs["train_seconds"] == merged.attrs["train_seconds"]
    mixed = [p.copy() for p in parts]
    mixed[1].attrs["clock"] = "wall"  # a CPU's seconds and a GPU's do not add
    assert "train_seconds" not in merge_shards(mixed).attrs
    del mixed[1].attrs["train_seconds"], mixed[1].attrs["clock"]  # a shard of an older version
    assert "clock" not in merge_shards(mixed).attrs
    with pytest.raises(ValueError, match="miss models"):
        merge_shards(parts[:1])
    with pytest.raises(ValueError, match="overlap"):
        merge_shards([parts[0], parts[0], parts[1]])
    other = _shard(15, 40)
    other.attrs["seed"] = 1
    with pytest.raises(ValueError, match="disagree on seed"):
        merge_shards([parts[0], other])


def test_a_killed_shard_goes_on_from_its_last_finished_chunk(tmp_path, monkeypatch):
    """A shard interrupted after its first chunk of models resumes from its checkpoint:
    it trains only the chunks not finished, and holds the same models as a shard that was
    never interrupted."""
    from memorization.method.checkpoint import Checkpoint
    from memorization.trust import truth as truth_module
    from memorization.trust.ensemble import train as train_module

    train, test = _synthetic()
    kwargs = dict(n_models=12, seed=0, k0=0, k1=12, chunk_size=4)
    whole = train_shard(MODEL, train, test, OPT, **kwargs)
    trained, real = [], train_module.train_ensemble

    def killed_after_one_chunk(*args, **kw):
        if trained:
            raise KeyboardInterrupt  # the job is killed during its second chunk
        trained.append(len(args[3]))
        return real(*args, **kw)

    path = tmp_path / ".truth_shard.checkpoint"
    monkeypatch.setattr(train_module, "train_ensemble", killed_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        train_shard(MODEL, train, test, OPT, checkpoint=Checkpoint(path, {"s": 1}), **kwargs)
    assert path.exists() and trained == [4]

    chunks = []

    def counted(*args, **kw):
        chunks.append(list(args[3]))  # the seeds of the chunk it trains
        return real(*args, **kw)

    monkeypatch.setattr(train_module, "train_ensemble", counted)
    resumed = train_shard(MODEL, train, test, OPT, checkpoint=Checkpoint(path, {"s": 1}), **kwargs)
    assert len(chunks) == 2  # models 4-11: the first chunk is not trained again
    np.testing.assert_array_equal(np.concatenate(chunks), whole["model_seed"].values[4:])
    for name in ("in_train", "correct", "correct_test", "model_seed"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)
    np.testing.assert_allclose(resumed["prob"].values, whole["prob"].values, atol=1e-6)
    assert resumed.attrs["train_seconds"] > 0 and truth_module.merge_shards([resumed])
    # another shard's checkpoint (another identity) is never resumed: it trains everything
    chunks.clear()
    train_shard(MODEL, train, test, OPT, checkpoint=Checkpoint(path, {"s": 2}), **kwargs)
    assert len(chunks) == 3
