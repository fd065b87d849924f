"""The plain-training studies: ``dynamics`` (figures 3, 5), ``gradstats`` (figure 4),
``crosstrain`` (figure 6) and ``sweep`` (figure 10, one corruption level a job)."""

from __future__ import annotations

import logging

from ...data.corruption import corrupt_labels
from ..artifacts import Schema, Var
from ..context import StageContext
from ..resources import EVAL, EVAL_BATCH, GRADSTATS_CHUNK, GRADSTATS_FACTOR, TRAIN, Pass
from ..slices import StudySlice
from ..specs import Experiment
from .common import classes_of, load_split, plain_study, split_tensors, subset_rows
from .scores import subsets_slice, subsets_test_slice

__all__ = [
    "CROSSTRAIN",
    "DYNAMICS",
    "GRADSTATS",
    "crosstrain",
    "dynamics",
    "gradstats",
    "sweep",
]

log = logging.getLogger(__name__)

_NATS = "nats"

DYNAMICS = Schema(
    "Plain training: accuracy and loss on the easy, difficult and full subsets per epoch",
    required={
        "accuracy": Var("accuracy on the subset's labels"),
        "loss": Var("mean cross-entropy loss on the subset's labels", _NATS),
        "subset_size": Var("number of examples in the subset", ""),
    },
    optional={
        "loss_sd": Var("standard deviation of the loss over the subset's examples", _NATS),
    },
)

GRADSTATS = Schema(
    "Gradient statistics of easy and difficult examples during plain training",
    required={
        "contribution": Var(
            "mean contribution (v_i . g) / ||g|| of the subset's examples to the update in the "
            "epoch, eq. 4",
            "loss gradient units",
        ),
        "cosine_similarity": Var(
            "mean pairwise cosine similarity of per-example gradients (probe after the epoch, or "
            "pairs within the epoch's batches), eq. 3"
        ),
        "probe_size": Var("examples in the cosine-similarity probe", ""),
    },
)

CROSSTRAIN = Schema(
    "Training on the easy subset only and on the difficult subset only",
    required={
        "accuracy": Var("accuracy on the evaluated subset"),
        "loss": Var("mean cross-entropy loss on the evaluated subset", _NATS),
    },
    optional={"subset_size": Var("number of examples in the evaluated subset", "")},
)


# --- slices and costs ------------------------------------------------------------------------


def _study(exp: Experiment, study: str, **extra) -> StudySlice:
    """The slice of a plain-training study (its ``claim_seeds`` seeds)."""
    seeds = exp.claim_seeds if exp.claim_seeds > 1 else None
    return StudySlice(exp.dataset, exp.labels, exp.model, exp.study(study), seeds=seeds, **extra)


def dynamics_slice(exp: Experiment) -> StudySlice:
    return _study(
        exp,
        "dynamics",
        subsets=subsets_slice(exp),
        subsets_test=subsets_test_slice(exp),
        control=exp.control,
    )


def gradstats_slice(exp: Experiment) -> StudySlice:
    return _study(exp, "gradstats", subsets=subsets_slice(exp), gradstats=exp.gradstats)


def crosstrain_slice(exp: Experiment) -> StudySlice:
    return _study(exp, "crosstrain", subsets=subsets_slice(exp))


def sweep_slice(exp: Experiment, level: int) -> StudySlice:
    return _study(exp.with_labels(level), "sweep")


def sweep_wildcards(exp: Experiment) -> list[dict]:
    return [{"level": level} for level in exp.corruption_levels]


def _plain_run(exp: Experiment, study: str, trained: int, evaluated: int) -> list[Pass]:
    """One plain training run of a study, repeated for every seed."""
    opt = exp.study(study)
    return [
        Pass(trained, opt.epochs, TRAIN, opt.batch_size),
        Pass(evaluated, opt.epochs + 1, EVAL, EVAL_BATCH),
    ] * exp.claim_seeds


def dynamics_passes(exp: Experiment) -> list[Pass]:
    """Plain training on all examples (and, with ``control``, without the difficult
    subset), train and test splits evaluated before training and after every epoch."""
    n, t = exp.info.n_train, exp.info.n_test
    passes = _plain_run(exp, "dynamics", n, n + t)
    if exp.control:
        passes += _plain_run(exp, "dynamics", n - int(exp.subset_size or 0), n + t)
    return passes


def gradstats_passes(exp: Experiment) -> list[Pass]:
    """Plain training with per-example gradient statistics, three probes per epoch."""
    opt = exp.study("gradstats")
    probe = 3 * min(int(exp.gradstats.probe_size or 0), int(exp.subset_size or 0))
    cost = TRAIN * GRADSTATS_FACTOR
    return [
        Pass(exp.info.n_train, opt.epochs, cost, opt.batch_size, per_example=True),
        Pass(probe, opt.epochs, cost, GRADSTATS_CHUNK, per_example=True),
    ] * exp.claim_seeds


def crosstrain_passes(exp: Experiment) -> list[Pass]:
    """Two runs, on the easy and on the difficult subset, both subsets evaluated."""
    size = int(exp.subset_size or 0)
    return _plain_run(exp, "crosstrain", size, 2 * size) * 2


def sweep_passes(exp: Experiment) -> list[Pass]:
    """One plain run at one corruption level, train and test evaluated."""
    return _plain_run(exp, "sweep", exp.info.n_train, exp.info.n_train + exp.info.n_test)


# --- stages ------------------------------------------------------------------------------------


def dynamics(ctx: StageContext) -> None:
    """Plain training; accuracy on easy/difficult/full train and test examples per epoch."""
    from ...studies.dynamics import training_dynamics  # heavy dependency: torch (the job's)

    spec = ctx.slice(StudySlice)
    data, _, train = load_split(ctx, model=spec.model)
    test = split_tensors(data, "test", spec.model)
    train_rows = subset_rows(ctx, "subsets", train.examples)
    test_rows = subset_rows(ctx, "subsets_test", test.examples)

    def study(dev, kwargs):
        return training_dynamics(
            train=train.to(dev),
            test=test.to(dev),
            train_subsets=train_rows,
            test_subsets=test_rows,
            control=bool(spec.control),
            **kwargs,
        )

    out = plain_study(ctx, DYNAMICS, study, data.sizes["class"], train.x.shape[1:])
    final = _seed_mean(out["accuracy"]).sel(run="all").isel(epoch=-1)
    log.info("final accuracy (all data): %s", final.to_pandas().to_dict())


def gradstats(ctx: StageContext) -> None:
    """Contribution and cosine similarity of per-example gradients during plain training."""
    from ...studies.gradient_statistics import gradient_statistics  # heavy dependency: torch

    study_spec = ctx.slice(StudySlice)
    spec = study_spec.gradstats
    data, _, train = load_split(ctx, model=study_spec.model)
    rows = subset_rows(ctx, "subsets", train.examples)

    def study(dev, kwargs):
        return gradient_statistics(
            train=train.to(dev),
            train_subsets=rows,
            probe_size=spec.probe_size,
            cosine_pairs=spec.cosine_pairs,
            method=spec.method,
            **kwargs,
        )

    plain_study(ctx, GRADSTATS, study, data.sizes["class"], train.x.shape[1:])


def crosstrain(ctx: StageContext) -> None:
    """Train on the easy subset only and on the difficult subset only."""
    from ...studies.crosstrain import cross_training  # heavy dependency: torch (the job's)

    data, _, train = load_split(ctx, model=ctx.slice(StudySlice).model)
    rows = subset_rows(ctx, "subsets", train.examples)

    def study(dev, kwargs):
        return cross_training(train=train.to(dev), train_subsets=rows, **kwargs)

    out = plain_study(ctx, CROSSTRAIN, study, data.sizes["class"], train.x.shape[1:])
    final = _seed_mean(out["accuracy"]).isel(epoch=-1)
    log.info("final accuracy: %s", final.to_pandas().to_dict())


def _seed_mean(values):
    """The mean over the study's seeds (for the log)."""
    return values.mean("seed") if "seed" in values.dims else values


def sweep(ctx: StageContext) -> None:
    """Plain training at one corruption level of the sweep (appendix E)."""
    import torch  # heavy dependency: imported by the job, not by the workflow's parse

    from ...data.tensors import TensorSplit  # heavy dependency: torch (the job's)
    from ...studies.dynamics import corruption_level  # heavy dependency: torch (the job's)

    spec = ctx.slice(StudySlice)
    data = ctx.open("dataset")
    level = spec.labels.corrupt
    train, test = split_tensors(data, "train", spec.model), split_tensors(data, "test", spec.model)
    labels, _ = corrupt_labels(
        train.y.numpy(), level, data.sizes["class"], spec.labels.seed, spec.labels.corruption
    )
    train = TensorSplit(train.x, torch.as_tensor(labels, dtype=torch.int64), train.examples)

    def study(dev, kwargs):
        out = corruption_level(train=train.to(dev), test=test.to(dev), **kwargs)
        return out.expand_dims(corrupt=[level])

    plain_study(
        ctx, DYNAMICS, study, data.sizes["class"], train.x.shape[1:], classes=classes_of(data)
    )
