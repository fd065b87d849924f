"""The trust stages (never in the default target): peer estimators from one plain run
(``peers``), the Feldman-Zhang ground truth (``truth_shard``, merged by ``truth``),
turn-over influence pairs (``influence``) and every estimator against the truth
(``validation``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...trust.metrics import MEMORIZED, REPLICATES_COMPARED
from ...trust.peer_records import PEERS as PEER_RECORDS
from ..artifacts import Schema, Var, config_of, flag, open_artifact
from ..context import StageContext
from ..resources import EVAL, EVAL_BATCH, GRADSTATS_CHUNK, GRADSTATS_FACTOR, TRAIN, Pass
from ..slices import InfluenceSlice, OptionsSlice, StudySlice, TruthSlice, summary
from ..specs import Experiment
from .common import bytes_estimate, load_split, split_tensors
from .scores import scores_passes, scores_slice

if TYPE_CHECKING:
    import xarray as xr

    from ...trust.validation import Runs

__all__ = [
    "INFLUENCE",
    "PEERS",
    "PEERS_WITHOUT_GRADIENTS",
    "TRUTH",
    "TRUTH_SHARD",
    "VALIDATION",
    "influence",
    "peers",
    "truth",
    "truth_shard",
    "validation",
]

log = logging.getLogger(__name__)

_NATS = "nats"

PEERS = Schema(
    "Peer estimators of memorization from plain training runs",
    required={
        **{p.name: Var(p.long_name, p.units) for p in PEER_RECORDS},
        "loss": Var("training loss at the end of the epoch", _NATS),
        "correct": flag("classified correctly at the end of the epoch"),
        "grad_sq_norm": Var(
            "squared norm of the example's loss gradient at the end of the epoch",
            "nats^2 per squared parameter unit",
        ),
        "lr": Var("learning rate of the epoch"),
        "accuracy": Var("training accuracy at the end of the epoch"),
    },
    optional={
        "run_seed": Var("seed of the plain run (peer_runs > 1)", ""),
        "run_train_seconds": Var("measured seconds of the run's plain training (its clock)", "s"),
    },
)

#: what the peers artifact must hold without the gradient records (``peer_gradients:
#: false``): the gradient norms and the peers that read them become optional
_GRADIENT_VARS = ("grad_sq_norm", *(p.name for p in PEER_RECORDS if p.gradients))
PEERS_WITHOUT_GRADIENTS = Schema(
    PEERS.title,
    required={k: v for k, v in PEERS.required.items() if k not in _GRADIENT_VARS},
    optional={
        **PEERS.optional,
        **{k: v for k, v in PEERS.required.items() if k in _GRADIENT_VARS},
    },
)

TRUTH_SHARD = Schema(
    "Models of the Feldman-Zhang ground truth and their predictions",
    required={
        "in_train": flag("example is in the model's training subset"),
        "correct": flag("model classifies the training example correctly"),
        "prob": Var("model's probability of the example's label"),
        "model_seed": Var("initialisation seed of the model", ""),
    },
    optional={
        "correct_test": flag("model classifies the test example correctly"),
        "prob_test": Var("model's probability of the test example's label"),
    },
)

TRUTH = Schema(
    "Feldman-Zhang memorization and influence by retraining",
    required={
        "memorization": Var("Feldman-Zhang memorization: P[correct | in] - P[correct | out]"),
        "memorization_se": Var("standard error of the Feldman-Zhang memorization"),
        "memorization_half": Var("Feldman-Zhang memorization from models [0, K/2) and [K/2, K)"),
    },
    optional={
        "memorization_prob": Var(
            "mean label probability of the models trained on it minus of the others"
        ),
        "p_in": Var("fraction correct among models trained on the example"),
        "p_out": Var("fraction correct among models not trained on the example"),
        "n_in": Var("models trained on the example", ""),
        "n_out": Var("models not trained on the example", ""),
        "influence": Var(
            "Feldman-Zhang influence on the test example: P[correct | i in] - P[correct | i out]"
        ),
        "influence_example": Var("training example of the influence pair (example id)", ""),
    },
)

INFLUENCE = Schema(
    "Turn-over influence of training examples on test examples (eq. 5)",
    required={
        "influence": Var(
            "turn-over influence on the test example: loss(muted) - loss(unmuted), eq. 5", _NATS
        ),
        "influence_example": Var("training example of the influence pair (example id)", ""),
    },
)

VALIDATION = Schema(
    "Quality and cost of every memorization estimator against the Feldman-Zhang truth",
    required={
        "auc_memorized": Var("ROC AUC for Feldman-Zhang memorization > threshold (clean regime)"),
        "top_overlap": Var("overlap of the top 10 % with Feldman-Zhang's (clean regime)"),
        "spearman": Var("Spearman rank correlation with Feldman-Zhang memorization"),
        "pearson": Var("Pearson correlation with Feldman-Zhang memorization"),
        "random_label_auc": Var("ROC AUC for the wrong labels, once fitted (noisy regime)"),
        "cost_runs": Var("cost in training-run equivalents (clean regime)", ""),
        "cost_seconds": Var("measured compute time (from the artifacts' provenance)", "s"),
        "noisy_cost_runs": Var("cost in training-run equivalents (noisy regime)", ""),
        "noisy_cost_seconds": Var("measured compute time in the noisy regime", "s"),
        "estimate": Var("the estimator's value for the example (the metrics' input)", ""),
        "truth_memorization": Var("Feldman-Zhang memorization of the example"),
        "truth_seconds": Var("wall time of the experiment's ground truth", "s"),
        "truth_train_seconds": Var(
            "compute time of the ground truth's training on its clock (CPU seconds on a CPU)",
            "s",
        ),
        "truth_memorized": Var("examples with Feldman-Zhang memorization > threshold", ""),
        "truth_models": Var("retrained models of the experiment's ground truth", ""),
    },
    optional={
        "noisy_estimate": Var("the estimator's value for the noisy experiment's example", ""),
        "mislabeled": flag("the noisy experiment's label differs from the true label"),
        "noisy_example": Var("example id of the noisy experiment (dataset example id)", ""),
        "experiment": Var("clean experiment (one per architecture) with its own truth", ""),
        "architecture": Var("the experiment's model", ""),
        "spearman_corrected": Var(
            "Spearman correlation divided by sqrt of the truth's Spearman-Brown reliability"
        ),
        "pearson_corrected": Var(
            "Pearson correlation divided by sqrt of the truth's Spearman-Brown reliability"
        ),
        "truth_half_auc": Var("ROC AUC of one half of the truth's models against the other"),
        "truth_half_overlap": Var("top-10 % overlap of the two halves of the truth's models"),
        "truth_half_spearman": Var("Spearman correlation of the two halves of the truth"),
        "truth_reliability": Var(
            "Spearman-Brown reliability of the full truth, 2 r / (1 + r) of the split-half "
            "Spearman r"
        ),
        "truth_reliability_pearson": Var(
            "Spearman-Brown reliability of the full truth from the split-half Pearson"
        ),
        "truth_design": Var("how the truth's models' subsets were drawn", ""),
        "goal_metric": Var("metric of the equal-cost comparison", ""),
        "equal_cost_estimate": Var("best estimate (not a peer) at the equal-cost budget", ""),
        "equal_cost_peer": Var("best peer at the equal-cost budget", ""),
        "equal_cost_difference": Var("best estimate's metric minus the best peer's"),
        "equal_cost_low": Var("2.5 % bound of the difference (paired bootstrap over examples)"),
        "equal_cost_high": Var("97.5 % bound of the difference (paired bootstrap over examples)"),
    },
)


# --- slices and costs ------------------------------------------------------------------------


def truth_shard_slice(exp: Experiment, shard: int) -> TruthSlice:
    return TruthSlice(exp.dataset, exp.labels, exp.model, exp.optim, _truth(exp), int(shard))


def truth_slice(exp: Experiment) -> TruthSlice:
    return TruthSlice(exp.dataset, exp.labels, exp.model, exp.optim, _truth(exp))


def _truth(exp: Experiment):
    if exp.truth is None:
        raise ValueError(f"experiment {exp.name!r} has no truth settings")
    return exp.truth


def truth_wildcards(exp: Experiment) -> list[dict]:
    return [{"shard": k} for k in range(exp.truth.shards)] if exp.truth else []


def influence_slice(exp: Experiment) -> InfluenceSlice:
    """The turn-over training of the scores' replicate 0, and how many pairs to keep."""
    return InfluenceSlice(scores_slice(exp, 0), exp.truth.top_k if exp.truth else 10)


def peer_record_cost(gradients: bool = True) -> float:
    """Forward-pass equivalents per example of a peers' run's records after each epoch:
    the exact per-example gradient norms, or (``peer_gradients: false``) one evaluation
    pass for the loss and correctness."""
    return TRAIN * GRADSTATS_FACTOR if gradients else EVAL


def peers_passes(exp: Experiment) -> list[Pass]:
    """``peer_runs`` plain runs, every example's exact gradient norm recorded after every
    epoch of each (``peer_gradients: false``: its loss and correctness, one evaluation
    pass per epoch)."""
    opt, n, gradients = exp.optim, exp.info.n_train, exp.peer_gradients
    cost = peer_record_cost(gradients)
    records = Pass(n, opt.epochs, cost, GRADSTATS_CHUNK, per_example=gradients)
    return [Pass(n, opt.epochs, TRAIN, opt.batch_size), records] * exp.peer_runs


def truth_shard_passes(exp: Experiment) -> list[Pass]:
    """This shard's models, each on its fraction of the training set, then evaluated on
    both splits."""
    truth, opt, info = _truth(exp), exp.optim, exp.info
    models = -(-truth.models // truth.shards)
    trained = int(round(truth.subset_fraction * info.n_train))
    return [
        Pass(trained * models, opt.epochs, TRAIN, opt.batch_size),
        Pass((info.n_train + info.n_test) * models, 1, EVAL, EVAL_BATCH),
    ]


def influence_passes(exp: Experiment) -> list[Pass]:
    """One turn-over run, then both sub-networks of every training example on every test
    example (the MLP's fast path costs far less: an upper bound)."""
    info = exp.info
    pairs = info.n_train * info.n_test if exp.model.name != "mlp" else info.n_test * 64
    return scores_passes(exp) + [Pass(pairs, 1, 2.0, EVAL_BATCH)]


# --- stages ------------------------------------------------------------------------------------


def peers(ctx: StageContext) -> None:
    """The peer estimators (TracIn self-influence, final loss, slow learning, forgetting
    events, cumulative sample loss), averaged over the slice's plain runs (one by default)
    with the experiment's own settings; records the measured seconds of one plain run.
    Without the gradient records (``peer_gradients: false``), every peer but TracIn."""
    from ...trust.peers import peers_over_runs  # heavy dependency: torch (the job's)

    spec = ctx.slice(StudySlice)
    data, _, train = load_split(ctx, model=spec.model)
    model = spec.model.with_classes(data.sizes["class"])
    runs = int(spec.seeds or 1)
    gradients = spec.gradients is not False
    ctx.preflight(bytes_estimate(len(train), 8 * runs * spec.study.epochs))
    with ctx.lease() as dev:
        out = peers_over_runs(
            model, train.to(dev), spec.study, spec.labels.seed, runs, gradients=gradients
        )
    log.info(
        "%d plain run(s), %.1f s of training each; final training accuracy %.4f",
        runs,
        out.attrs["train_seconds_per_run"],
        float(np.mean(out["accuracy"].values[..., -1])),
    )
    schema = PEERS if gradients else PEERS_WITHOUT_GRADIENTS
    ctx.write(out, schema, seconds=ctx.seconds(), n_classes=int(data.sizes["class"]))


def truth_shard(ctx: StageContext) -> None:
    """Models [k0, k1) of the Feldman-Zhang ground truth, trained as one ensemble."""
    from ...trust.truth import train_shard  # heavy dependency: torch (the job's)

    spec = ctx.slice(TruthSlice)
    data, _, train = load_split(ctx, model=spec.model)
    test = split_tensors(data, "test", spec.model)
    k0, k1 = spec.truth.shard_range(spec.shard)
    ctx.preflight(bytes_estimate((k1 - k0) * (len(train) + len(test)), 8))
    checkpoint = ctx.checkpoint()  # after every chunk of models: a killed shard goes on
    with ctx.lease() as dev:
        out = train_shard(
            spec.model.with_classes(data.sizes["class"]),
            train.to(dev),
            test.to(dev),
            spec.study,
            n_models=spec.truth.models,
            fraction=spec.truth.fraction,
            seed=spec.labels.seed,
            k0=k0,
            k1=k1,
            design=spec.truth.design,
            checkpoint=checkpoint,
        )
    # the training's wall time, before an interruption included
    seconds = round(float(out.attrs["seconds"]), 3)
    ctx.write(out, TRUTH_SHARD, seconds=seconds, models=f"{k0}-{k1 - 1}")
    checkpoint.remove()


def truth(ctx: StageContext) -> None:
    """Merge the shards into the Feldman-Zhang memorization and influence estimates."""
    from ...trust.truth import merge_shards, truth_dataset  # heavy dependency: torch (the job's)

    spec = ctx.slice(TruthSlice)
    loaded = ctx.open_all("truth_shard")
    ctx.preflight()
    merged = merge_shards(loaded)
    out = truth_dataset(merged, top_k=int(spec.truth.top_k))
    memorized = int((out["memorization"].values > MEMORIZED).sum())
    log.info(
        "%d models; %d examples with memorization > %g", len(merged["model"]), memorized, MEMORIZED
    )
    seconds = sum(float(ds.attrs.get("seconds", 0.0)) for ds in loaded)
    ctx.write(out, TRUTH, seconds=round(seconds, 3))


def influence(ctx: StageContext) -> None:
    """Turn-over influence (eq. 5) of the training examples on every test example: the
    top-k pairs. Trains the turn-over model again (the same as the scores' replicate 0)."""
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    from ...method.scoring import train_turnover  # heavy dependency: torch (the job's)
    from ...trust.influence import top_turnover_influence  # heavy dependency: torch (the job's)

    spec = ctx.slice(InfluenceSlice)
    data, _, train = load_split(ctx, model=spec.scores.model)
    test = split_tensors(data, "test", spec.scores.model)
    ctx.preflight(bytes_estimate(len(test) * spec.top_k, 16))
    with ctx.lease() as dev:
        model = spec.scores.model.with_classes(data.sizes["class"])
        run = train_turnover(model, train.to(dev), spec.scores.optim, spec.scores.seed)
        rows, values = top_turnover_influence(run.model, run.masks, test.to(dev), spec.top_k)
    out = xr.Dataset(
        {
            "influence": (("test_example", "rank"), values),
            "influence_example": (("test_example", "rank"), train.examples[rows]),
        },
        coords={"test_example": test.examples, "rank": np.arange(rows.shape[1])},
    )
    ctx.write(out, INFLUENCE, seconds=ctx.seconds())


def _architecture(ds: xr.Dataset | None) -> str:
    """The model's name (``mlp``, ``vgg11``, ...) from an artifact's provenance."""
    return "" if ds is None else str(summary(config_of(ds)).get("model") or "")


def _names(value) -> list[str]:
    """The experiments a figure option names (a string or a list of them)."""
    return [value] if isinstance(value, str) else list(value or [])


def validation_runs(ctx: StageContext, options) -> tuple[list[Runs], Runs | None]:
    """The clean experiments' artifacts (each variant attached to the first clean
    experiment of its architecture, else to the first) and the noisy experiment's."""
    from ...trust.validation import Runs  # heavy dependency: torch (the job's)

    def each(name, kind):
        return {Path(p).parent.name: open_artifact(p, kind) for p in ctx.paths(name)}

    scores, peers = each("clean_scores", "scores"), each("clean_peers", "peers")
    truths, estimates = each("clean_truth", "truth"), each("clean_estimates", "estimates")
    clean = [
        Runs(
            n,
            scores.get(n),
            peers.get(n),
            truths.get(n),
            {},
            _architecture(scores.get(n)),
            estimates.get(n),
        )
        for n in _names(options.get("clean"))
    ]
    for name, ds in each("variants", "scores").items():
        arch = _architecture(ds)
        home = next((c for c in clean if c.architecture == arch), clean[0] if clean else None)
        if home is not None:
            home.variants[name] = ds
    noisy = None
    if options.get("noisy"):
        noisy_scores = each("noisy_scores", "scores").get(options["noisy"])
        noisy = Runs(
            options["noisy"],
            noisy_scores,
            each("noisy_peers", "peers").get(options["noisy"]),
            variants=each("noisy_variants", "scores"),
            architecture=_architecture(noisy_scores),
        )
    return clean, noisy


def validation(ctx: StageContext) -> None:
    """The quality and cost of every memorization estimator (validation.nc): per clean
    experiment (architecture) against its own truth, and for the noisy experiment's
    fitted random labels."""
    from ...trust.validation import (
        estimator_table,
        influence_agreement,
    )  # heavy dependency: torch (the job's)

    options = ctx.slice(OptionsSlice).options
    clean, noisy = validation_runs(ctx, options)
    table = estimator_table(
        clean=clean,
        noisy=noisy,
        replicates=tuple(options.get("replicates", REPLICATES_COMPARED)),
        threshold=float(options.get("threshold", MEMORIZED)),
    )
    influence_paths = ctx.paths("clean_influence")
    if influence_paths and clean and clean[0].truth is not None:
        truth_ds = clean[0].truth
        if "influence" in truth_ds:
            pairs = open_artifact(influence_paths[0], "influence")
            table.attrs.update(influence_agreement(pairs, truth_ds))
            table.attrs["influence_experiment"] = clean[0].name
    _log_table(table)
    ctx.preflight()
    ctx.write(table, VALIDATION)


def _log_table(table: xr.Dataset) -> None:
    for exp in table["experiment"].values:
        for name in table["estimator"].values:
            row = table.sel(experiment=exp, estimator=name)
            if not np.isfinite(float(row["auc_memorized"])):
                continue
            log.info(
                "%-10s %-32s AUC %.3f  top-10%% %.3f  Spearman %.3f  Pearson %.3f  cost %.1f runs",
                exp,
                name,
                *(float(row[m]) for m in ("auc_memorized", "top_overlap", "spearman", "pearson")),
                float(row["cost_runs"]),
            )
    for name in table["estimator"].values:
        auc = float(table["random_label_auc"].sel(estimator=name))
        if np.isfinite(auc):
            log.info("noisy      %-32s random-label AUC %.3f", name, auc)
