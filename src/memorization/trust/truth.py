"""Ground truth by retraining: Feldman & Zhang's subsampled estimator (2020).

K models of the experiment's architecture are trained, each on a subset of the
training set drawn by one of two designs (:data:`DESIGNS`):

- ``random`` (the default): model ``k`` on a random subset of exactly
  ``round(fraction * N)`` examples (default fraction 0.7). An example is left out of
  about ``(1 - fraction) K`` models, a binomial count (some examples by none);
- ``pairs`` (complementary pairs): model ``2j`` on a random half of the training set,
  stratified by label, model ``2j + 1`` on its complement, so every example is in
  exactly ``K / 2`` models and out of the other ``K / 2``. Fraction 0.5 gives the
  difference of two means its smallest standard error for a given K (equal counts in
  and out), and no example goes without an estimate. The estimand is memorization at
  half the training set, not at 70 %: Feldman and Zhang's estimand depends on the
  fraction (a model trained on less data generalizes less, so more examples count as
  memorized). K must be a multiple of 4, so each half of the models (below) holds whole
  pairs.

From every model's correctness on every example:

- memorization of training example ``i``:
  ``mem_i = P[correct_i | i in the subset] - P[correct_i | i not in it]``,
  each probability the fraction of the models (with ``i`` in, resp. out) that
  classify ``i`` correctly, with the standard error of the difference of two
  independent proportions, ``sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out)``;
- the same from each half of the models (models ``[0, K/2)`` and ``[K/2, K)``):
  how well the two half-estimates agree is the most any estimator can agree
  with the full one;
- influence of training example ``i`` on test example ``j``:
  ``infl(i, j) = P[correct_j | i in] - P[correct_j | i out]``, computed blockwise
  as products of the [K, N] in/out indicator matrix and the [K, M] correctness
  matrix, kept as the ``top_k`` largest per test example.

Model ``k``'s subset and its initialisation seed are pure functions of
``(seed, k)`` (with pairs: of the seed, the pair ``k // 2`` and the side ``k % 2``), so
the K models can be trained in shards (:func:`train_shard`
trains models ``[k0, k1)``) by separate jobs and merged (:func:`merge_shards`).
Each shard trains its models together as one vectorised ensemble
(:mod:`memorization.trust.ensemble`). An example that is in (or out of) every
model's subset has no estimate (NaN).

The truth's models are never an estimator's: the pairs design's seeds are drawn from a
stream of their own, at or above :data:`TRUTH_SEED_BASE`, above every seed an estimator
trains with (the experiment's seed is below 2**32, turn-over replicates' below 2**31,
and training adds at most 2 to a seed for its batch order and augmentation);
:func:`check_disjoint` refuses a truth whose seeds meet any estimator's. The random
design keeps the seeds it always had (below 2**31, drawn from ``(seed, k)``), so the
artifacts it made stay what they were.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..data.tensors import TensorSplit
from ..infra.clock import clock_kind, compute_clock
from ..method.checkpoint import Checkpoint, Records
from ..method.models.spec import ModelSpec
from ..method.optim import OptimSpec
from .ensemble import Ensemble, train_in_chunks
from .replicates import replicate_seed
from .truth_spec import TRUTH_OPTIONS

__all__ = [
    "DESIGNS",
    "TRUTH_SEED_BASE",
    "check_disjoint",
    "draw_subsets",
    "estimator_seeds",
    "influence_matrix",
    "memorization_estimate",
    "merge_shards",
    "model_seeds",
    "pair_subsets",
    "top_fz_influence",
    "train_shard",
    "truth_dataset",
]

log = logging.getLogger(__name__)


def _model_range(n_models: int, k0: int, k1: int | None) -> range:
    k1 = n_models if k1 is None else k1
    if not 0 <= k0 <= k1 <= n_models:
        raise ValueError(f"need 0 <= k0 <= k1 <= n_models, got k0={k0}, k1={k1}, n={n_models}")
    return range(k0, k1)


#: the designs of the models' training subsets
DESIGNS = ("random", "pairs")

#: the smallest seed of a pairs-design truth model: every estimator's seeds (and the
#: seed + 1 and + 2 training derives from them) lie below it
TRUTH_SEED_BASE = 2**33


def _check_design(design: str, n_models: int) -> None:
    if design not in DESIGNS:
        raise ValueError(f"truth design must be one of {DESIGNS}, got {design!r}")
    if design == "pairs" and n_models % 4:
        raise ValueError(
            f"the pairs design needs a multiple of 4 models (whole pairs in each half), "
            f"got {n_models}"
        )


def draw_subsets(
    n_train: int,
    n_models: int,
    fraction: float = TRUTH_OPTIONS["fraction"].default,
    seed: int = 0,
    k0: int = 0,
    k1: int | None = None,
    *,
    design: str = "random",
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Training subsets of models ``[k0, k1)``: [k1 - k0, n_train] bool.

    ``random``: each row with exactly ``round(fraction * n_train)`` true entries, drawn
    from ``(seed, k)``. ``pairs``: :func:`pair_subsets` of ``labels`` (``fraction`` is
    not used: it is 1/2).
    """
    _check_design(design, n_models)
    if design == "pairs":
        if labels is None or len(labels) != n_train:
            raise ValueError(f"the pairs design needs the {n_train} training labels")
        return pair_subsets(labels, n_models, seed, k0, k1)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    size = int(round(fraction * n_train))
    if not 0 < size < n_train:
        raise ValueError(f"fraction {fraction} of {n_train} examples leaves no example in or out")
    models = _model_range(n_models, k0, k1)
    out = np.zeros((len(models), n_train), dtype=bool)
    for row, k in enumerate(models):
        rng = np.random.default_rng([int(seed), k, 0])
        out[row, rng.choice(n_train, size, replace=False)] = True
    return out


def _half(labels: np.ndarray, seed: int, pair: int) -> np.ndarray:
    """Pair ``pair``'s first half: half of every label's examples, drawn from
    ``(seed, pair)`` (of a label with an odd count, the extra example falls on either
    side by a coin)."""
    rng = np.random.default_rng([int(seed), int(pair), 2])
    half = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        take = len(idx) // 2 + int(len(idx) % 2 * rng.integers(2))
        half[rng.permutation(idx)[:take]] = True
    return half


def pair_subsets(
    labels: np.ndarray, n_models: int, seed: int = 0, k0: int = 0, k1: int | None = None
) -> np.ndarray:
    """Complementary pairs: model ``2j`` trains on pair ``j``'s random half (stratified by
    ``labels``), model ``2j + 1`` on its complement; [k1 - k0, N] bool, each model's row a
    pure function of ``(seed, k // 2, k % 2)``, so a shard may end inside a pair."""
    labels = np.asarray(labels).ravel()
    _check_design("pairs", n_models)
    models = _model_range(n_models, k0, k1)
    out = np.zeros((len(models), len(labels)), dtype=bool)
    halves: dict[int, np.ndarray] = {}
    for row, k in enumerate(models):
        if k // 2 not in halves:
            halves[k // 2] = _half(labels, seed, k // 2)
        out[row] = halves[k // 2] if k % 2 == 0 else ~halves[k // 2]
    return out


def model_seeds(
    n_models: int,
    seed: int = 0,
    k0: int = 0,
    k1: int | None = None,
    *,
    design: str = "random",
) -> np.ndarray:
    """Initialisation (and batch-order) seeds of models ``[k0, k1)``, drawn from
    ``(seed, k)``: below 2**31 for the random design (the seeds it always had), at or
    above :data:`TRUTH_SEED_BASE` for the pairs design (a stream no estimator draws
    from)."""
    _check_design(design, n_models)
    models = _model_range(n_models, k0, k1)
    stream, base = (1, 0) if design == "random" else (3, TRUTH_SEED_BASE)
    return np.array(
        [
            base + int(np.random.SeedSequence([int(seed), k, stream]).generate_state(1)[0] >> 1)
            for k in models
        ],
        dtype=np.int64,
    )


def estimator_seeds(seed: int, count: int = 64) -> list[int]:
    """The seeds the experiment's estimators train with: its turn-over replicates and its
    plain runs (the peers, the studies' seeds) draw :func:`replicate_seed` of the first
    ``count`` indices."""
    return [replicate_seed(seed, r) for r in range(count)]


def check_disjoint(truth_seeds, estimator_seeds) -> None:
    """Refuse truth models whose seeds (or the batch-order and augmentation seeds training
    derives from them, seed + 1 and + 2) meet an estimator's."""
    truth = {int(s) + d for s in np.ravel(truth_seeds) for d in range(3)}
    others = {int(s) + d for s in np.ravel(estimator_seeds) for d in range(3)}
    shared = sorted(truth & others)
    if shared:
        raise ValueError(
            f"truth models share seeds with the estimators' models ({shared[:5]}): "
            "the ground truth must be trained independently of what it judges"
        )


def _models(train: TensorSplit, n_models: int, fraction: float, seed: int, models: range,
            design: str) -> tuple[np.ndarray, np.ndarray, float]:  # fmt: skip
    """The seeds and subsets of ``models`` (checked apart from the estimators' seeds), and
    the fraction each model sees."""
    seeds = model_seeds(n_models, seed, models.start, models.stop, design=design)
    check_disjoint(seeds, estimator_seeds(seed))
    labels = train.y.cpu().numpy() if design == "pairs" else None
    subsets = draw_subsets(len(train), n_models, fraction, seed, models.start, models.stop,
                           design=design, labels=labels)  # fmt: skip
    return seeds, subsets, 0.5 if design == "pairs" else fraction


def train_shard(
    model: ModelSpec,
    train: TensorSplit,
    test: TensorSplit | None,
    opt: OptimSpec,
    *,
    n_models: int,
    fraction: float = TRUTH_OPTIONS["fraction"].default,
    seed: int = 0,
    k0: int = 0,
    k1: int | None = None,
    chunk_size: int | None = None,
    path: str = "auto",
    progress: bool = False,
    design: str = "random",
    checkpoint: Checkpoint | None = None,
) -> xr.Dataset:
    """Train models ``[k0, k1)`` of the K, their subsets drawn by ``design``, and record
    their predictions.

    ``checkpoint``: saved after every chunk of models (their predictions and the seconds
    spent so far), so a job killed in the middle goes on from the last finished chunk:
    every model's subset and seed are pure functions of its index, so the resumed shard
    holds the same models as an uninterrupted one.

    Returns a Dataset over ``model`` and ``example`` (the training examples' ids) with
    ``in_train`` (the subsets), ``correct`` and ``prob`` (label probability) on the
    training examples, and ``correct_test`` / ``prob_test`` over ``test_example``
    (when ``test`` is given).
    """
    models = _model_range(n_models, k0, k1)
    seeds, subsets, fraction = _models(train, n_models, fraction, seed, models, design)
    splits = {"": train} if test is None else {"": train, "_test": test}
    out = {
        f"{what}{tag}": np.zeros((len(models), len(split)), dtype=dtype)
        for tag, split in splits.items()
        for what, dtype in (("correct", bool), ("prob", np.float32))
    }

    # the models done and the (wall, compute) seconds they took, kept by the checkpoint
    done, spent = np.zeros(len(models), dtype=bool), np.zeros(2)
    if checkpoint is not None and checkpoint.track(Records(done=done, spent=spent, **out)):
        log.info(
            "resuming from %s: %d of the %d models were trained before the interruption",
            checkpoint.path, int(done.sum()), len(models),
        )  # fmt: skip
    before = spent.copy()

    def elapsed() -> np.ndarray:
        """(wall, compute) seconds of training, those before an interruption included."""
        return before + (time.perf_counter() - start, clock() - compute_start)

    def evaluate(ens: Ensemble, j0: int) -> None:
        rows = slice(j0, j0 + len(ens))
        for tag, split in splits.items():
            pred = ens.predict(split)
            out[f"correct{tag}"][rows], out[f"prob{tag}"][rows] = pred.correct, pred.prob
        done[rows], spent[:] = True, elapsed()
        if checkpoint is not None:
            checkpoint.save(None, None)  # the records: predictions, models done, seconds
        log.info(
            "models %d-%d of %d trained", models.start + j0, models.start + rows.stop - 1, n_models
        )

    clock = compute_clock(train.x.device)
    start, compute_start = time.perf_counter(), clock()
    train_in_chunks(model, train, opt, seeds, subsets, evaluate, chunk_size=chunk_size,
                    path=path, progress=progress,
                    skip=lambda j0, j1: bool(done[j0:j1].all()))  # fmt: skip
    seconds, train_seconds = elapsed()
    ds = _shard_dataset(models, seeds, subsets, out, train, test)
    ds.attrs.update(n_models=int(n_models), fraction=float(fraction), seed=int(seed),
                    seconds=float(seconds), train_seconds=round(float(train_seconds), 3),
                    clock=clock_kind(train.x.device))  # fmt: skip
    if design != "random":  # recorded only where not the default: old artifacts stay as made
        ds.attrs["design"] = design
    return ds


def _shard_dataset(models: range, seeds, subsets, out: dict, train, test) -> xr.Dataset:
    """The shard's subsets, predictions and seeds over ``model`` and ``example`` (and
    ``test_example``)."""
    ds = xr.Dataset(
        {
            "in_train": (("model", "example"), subsets),
            "correct": (("model", "example"), out["correct"]),
            "prob": (("model", "example"), out["prob"]),
            "model_seed": ("model", seeds),
        },
        coords={"model": np.arange(models.start, models.stop), "example": train.examples},
    )
    if test is not None:
        ds["correct_test"] = (("model", "test_example"), out["correct_test"])
        ds["prob_test"] = (("model", "test_example"), out["prob_test"])
        ds = ds.assign_coords(test_example=test.examples)
    return ds


def merge_shards(shards: Sequence[xr.Dataset]) -> xr.Dataset:
    """Concatenate shards over ``model`` (sorted); refuses overlaps, gaps and mismatches."""
    if not shards:
        raise ValueError("no shards to merge")
    first = shards[0]
    for key in ("n_models", "fraction", "seed", "design"):
        values = {s.attrs.get(key, "random" if key == "design" else None) for s in shards}
        if len(values) != 1:
            raise ValueError(f"shards disagree on {key}: {sorted(values, key=str)}")
    for s in shards[1:]:
        for dim in ("example", "test_example"):
            if (dim in s.coords) != (dim in first.coords) or (
                dim in s.coords and not np.array_equal(s[dim].values, first[dim].values)
            ):
                raise ValueError(f"shards have different {dim} coordinates")
    merged = xr.concat(shards, dim="model", data_vars="minimal", coords="minimal").sortby("model")
    models = merged["model"].values
    if len(np.unique(models)) != len(models):
        raise ValueError("shards overlap: some models appear twice")
    n_models = int(first.attrs["n_models"])
    if not np.array_equal(models, np.arange(n_models)):
        missing = sorted(set(range(n_models)) - set(models.tolist()))
        raise ValueError(f"shards miss models {missing[:10]}{'...' if len(missing) > 10 else ''}")
    merged.attrs.update(first.attrs)
    merged.attrs["seconds"] = float(sum(s.attrs.get("seconds", 0.0) for s in shards))
    for key in ("train_seconds", "clock"):  # one shard's, not the whole's
        merged.attrs.pop(key, None)
    merged.attrs.update(_compute_seconds(shards))
    return merged


def _compute_seconds(shards: Sequence[xr.Dataset]) -> dict:
    """``train_seconds`` (the sum over the shards, on their compute clock) and ``clock``
    where every shard timed its training on the same clock; nothing for older shards or
    for shards timed on different clocks (a CPU's seconds and a GPU's do not add)."""
    clocks = {s.attrs.get("clock") for s in shards}
    if len(clocks) != 1 or None in clocks or any("train_seconds" not in s.attrs for s in shards):
        return {}
    total = sum(float(s.attrs["train_seconds"]) for s in shards)
    return {"train_seconds": round(total, 3), "clock": clocks.pop()}


def memorization_estimate(in_train: np.ndarray, metric: np.ndarray) -> dict[str, np.ndarray]:
    """Feldman–Zhang estimate from ``in_train`` [K, N] bool and a per-model ``metric``
    [K, N] (correctness for FZ's memorization; a label probability works too).

    Returns ``memorization`` = mean metric over the models that trained on the example
    minus over those that did not, ``se`` (its standard error: binomial for a 0/1
    metric, else from the sample variances), ``p_in``, ``p_out``, ``n_in``, ``n_out``;
    NaN where n_in or n_out is 0.
    """
    in_train = np.asarray(in_train, dtype=bool)
    metric = np.asarray(metric, dtype=np.float64)
    if in_train.shape != metric.shape:
        raise ValueError(f"in_train {in_train.shape} and metric {metric.shape} differ")
    n_in = in_train.sum(0)
    n_out = len(in_train) - n_in
    with np.errstate(invalid="ignore", divide="ignore"):
        p_in = np.where(in_train, metric, 0).sum(0) / n_in
        p_out = np.where(~in_train, metric, 0).sum(0) / n_out
        binary = np.isin(metric, (0.0, 1.0)).all()
        if binary:
            var_in, var_out = p_in * (1 - p_in), p_out * (1 - p_out)
        else:
            var_in = np.where(in_train, (metric - p_in) ** 2, 0).sum(0) / np.maximum(n_in - 1, 1)
            var_out = np.where(~in_train, (metric - p_out) ** 2, 0).sum(0) / np.maximum(
                n_out - 1, 1
            )
        se = np.sqrt(var_in / n_in + var_out / n_out)
    bad = (n_in == 0) | (n_out == 0)
    mem = p_in - p_out
    for a in (mem, se, p_in, p_out):
        a[bad] = np.nan
    return {
        "memorization": mem,
        "se": se,
        "p_in": p_in,
        "p_out": p_out,
        "n_in": n_in,
        "n_out": n_out,
    }


def _influence_block(in_f: np.ndarray, n_in, n_out, c: np.ndarray) -> np.ndarray:
    """infl [N, m] of all training examples on a block of test examples (c: [K, m])."""
    both = in_f.T @ c  # models with i in that got j right: [N, m]
    total = c.sum(0)  # models that got j right
    with np.errstate(invalid="ignore", divide="ignore"):
        return both / n_in[:, None] - (total[None, :] - both) / n_out[:, None]


def influence_matrix(in_train: np.ndarray, correct_test: np.ndarray) -> np.ndarray:
    """The full influence matrix infl(i, j) [N, M] (float32), FZ's estimator."""
    in_f = np.asarray(in_train, dtype=np.float32)
    n_in = in_f.sum(0)
    return _influence_block(
        in_f, n_in, len(in_f) - n_in, np.asarray(correct_test, dtype=np.float32)
    ).astype(np.float32)


def top_fz_influence(
    in_train: np.ndarray,
    correct_test: np.ndarray,
    top_k: int = 10,
    block_elements: int = 2**24,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` most influential training rows of every test example.

    Returns ``(rows, influence)``, both [M, top_k], in decreasing influence (ties: the
    lower row first); rows are positions in the training set. Computed a block of test
    examples at a time, at most ``block_elements`` matrix entries per block. Training
    examples without an estimate (in or out of every subset) are never listed.
    """
    in_f = np.asarray(in_train, dtype=np.float32)
    c_all = np.asarray(correct_test, dtype=np.float32)
    n_train, n_test = in_f.shape[1], c_all.shape[1]
    top_k = min(int(top_k), n_train)
    n_in = in_f.sum(0)
    n_out = len(in_f) - n_in
    block = max(1, block_elements // max(n_train, 1))
    rows = np.zeros((n_test, top_k), dtype=np.int64)
    values = np.zeros((n_test, top_k), dtype=np.float32)
    for j0 in range(0, n_test, block):
        infl = _influence_block(in_f, n_in, n_out, c_all[:, j0 : j0 + block]).T  # [m, N]
        infl = np.where(np.isnan(infl), -np.inf, infl)
        # stable sort of -infl: decreasing influence, lower row first among ties
        order = np.argsort(-infl, axis=1, kind="stable")[:, :top_k]
        rows[j0 : j0 + block] = order
        values[j0 : j0 + block] = np.take_along_axis(infl, order, axis=1)
    values[np.isinf(values)] = np.nan
    return rows, values


def truth_dataset(merged: xr.Dataset, top_k: int = 10) -> xr.Dataset:
    """Memorization (FZ, with its standard error, half-estimates and counts) and the
    ``top_k`` influence pairs per test example, from merged shards."""
    in_train = merged["in_train"].values
    correct = merged["correct"].values
    k = len(in_train)
    est = memorization_estimate(in_train, correct)
    prob = memorization_estimate(in_train, merged["prob"].values)
    halves = np.stack(
        [
            memorization_estimate(in_train[part], correct[part])["memorization"]
            for part in (slice(0, k // 2), slice(k // 2, k))
        ]
    )
    ds = xr.Dataset(
        {
            "memorization": ("example", est["memorization"]),
            "memorization_se": ("example", est["se"]),
            "memorization_half": (("half", "example"), halves),
            "memorization_prob": ("example", prob["memorization"]),
            "p_in": ("example", est["p_in"]),
            "p_out": ("example", est["p_out"]),
            "n_in": ("example", est["n_in"]),
            "n_out": ("example", est["n_out"]),
        },
        coords={"example": merged["example"].values, "half": [0, 1]},
    )
    attrs = {
        "memorization": ("Feldman-Zhang memorization: P[correct | in] - P[correct | out]", "1"),
        "memorization_se": ("standard error of the memorization estimate", "1"),
        "memorization_half": ("memorization from models [0, K/2) and [K/2, K)", "1"),
        "memorization_prob": (
            "mean label probability of the models trained on it minus of the others",
            "1",
        ),
        "p_in": ("fraction correct among models trained on the example", "1"),
        "p_out": ("fraction correct among models not trained on the example", "1"),
        "n_in": ("models trained on the example", "models"),
        "n_out": ("models not trained on the example", "models"),
    }
    if "correct_test" in merged:
        rows, values = top_fz_influence(in_train, merged["correct_test"].values, top_k)
        ds = ds.assign_coords(
            test_example=merged["test_example"].values, rank=np.arange(rows.shape[1])
        )
        ds["influence"] = (("test_example", "rank"), values)
        ds["influence_example"] = (("test_example", "rank"), merged["example"].values[rows])
        attrs["influence"] = (
            "Feldman-Zhang influence on the test example: P[correct | i in] - P[correct | i out]",
            "1",
        )
        attrs["influence_example"] = ("training example of the influence pair", "example id")
    for name, (long_name, units) in attrs.items():
        ds[name].attrs.update(long_name=long_name, units=units)
    ds.attrs.update(
        {
            k: merged.attrs[k]
            for k in ("n_models", "fraction", "seed", "design", "train_seconds", "clock")
            if k in merged.attrs
        }
    )
    ds.attrs["n_models_merged"] = int(k)
    return ds
