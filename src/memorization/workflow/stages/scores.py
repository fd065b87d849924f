"""The turn-over stages: ``scores`` (and its replicates), ``scores_test``, and the easy
and difficult subsets of each (``subsets``, ``subsets_test``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...infra.clock import WALL_CLOCK, clock_kind, compute_clock
from ...method.forms import SCORE_FORMS
from ...method.subsets import easy_difficult
from ...trust.metrics import roc_auc
from ...trust.oob_spec import OPTIONS as OOB_OPTIONS
from ..artifacts import Schema, Var, flag, label
from ..context import StageContext
from ..resources import EVAL_BATCH, SCORE, TRAIN, Pass
from ..slices import EstimatesSlice, ScoresSlice, StudySlice, SubsetsSlice
from ..specs import Experiment
from .common import bytes_estimate, classes_of, load_split, split_tensors

if TYPE_CHECKING:
    from ...method.turnover import TurnoverCheck

__all__ = [
    "SCORES",
    "SUBSETS",
    "estimates_slice",
    "oob_options",
    "peers_slice",
    "scores",
    "scores_passes",
    "scores_slice",
    "scores_test_slice",
    "subsets",
    "subsets_slice",
    "subsets_test_slice",
]

log = logging.getLogger(__name__)

#: training examples the zero-gradient check runs on before training
CHECK_EXAMPLES = 8

_NATS = "nats"
_SCORE_UNITS = {
    "memorization": _NATS,
    "probability_memorization": "1",
    "zero_one_memorization": "1",
    "sharpened_memorization": "1",
    "cumulative_memorization": _NATS,
}

SCORES = Schema(
    "Memorization scores from turn-over dropout",
    required={
        "memorization": Var("memorization score: loss(muted) - loss(unmuted), eq. 6", _NATS),
        "probability_memorization": Var(
            "memorization score, probability form: p_unmuted(label) - p_muted(label)"
        ),
        "zero_one_memorization": Var(
            "memorization score, 0/1 form: 1[unmuted right] - 1[muted right]"
        ),
        "loss_muted": Var("cross-entropy loss of the muted sub-network", _NATS),
        "loss_unmuted": Var("cross-entropy loss of the unmuted sub-network", _NATS),
        "prob_muted": Var("probability the muted sub-network gives the label"),
        "prob_unmuted": Var("probability the unmuted sub-network gives the label"),
        "pred_muted": label("prediction of the muted sub-network"),
        "pred_unmuted": label("prediction of the unmuted sub-network"),
        "label": label("label the model was trained on"),
        "true_label": label("original label"),
        "corrupted": flag("label drawn at random (it may equal the true label)"),
        "mislabeled": flag("label differs from the true label"),
        "subnet_accuracy": Var("accuracy of each sub-network on the training labels"),
        "subnet_loss": Var("mean loss of each sub-network on the training labels", _NATS),
    },
    optional={
        **{
            f"{v}_se": Var(f"standard error over the replicates of {v}", u)
            for v, u in _SCORE_UNITS.items()
        },
        **{
            f"{v}_by_replicate": Var(f"{v} of each turn-over replicate", u)
            for v, u in _SCORE_UNITS.items()
        },
        "sharpened_memorization": Var(
            "memorization score, sharpened form: p_unmuted(label) - p_muted(label) at softmax "
            "temperature score_temperature"
        ),
        "cumulative_memorization": Var(
            "memorization score, cumulative form: sum over the epochs of the end-of-epoch "
            "loss(muted) - loss(unmuted)",
            _SCORE_UNITS["cumulative_memorization"],
        ),
        "replicate_seed": Var("seed of the turn-over replicate", ""),
        "replicate_seconds": Var("compute time of the turn-over replicate", "s"),
        "heldout_accuracy": Var(
            "accuracy of each sub-network on the held-out test split, under the test "
            "examples' own masks (both sub-networks are unseen there)"
        ),
    },
)


def subsets_schema(form: str = "loss") -> Schema:
    """The subsets' schema; ``memorization`` holds the score form they rank by."""
    var = SCORE_FORMS[form]
    return Schema(
        "Easy and difficult subsets: the lowest and highest memorization scores",
        required={
            "easy": flag("in the easy subset (lowest memorization scores)"),
            "difficult": flag("in the difficult subset (highest memorization scores)"),
            "memorization": Var(f"the score the subsets rank by ({var})", _SCORE_UNITS[var]),
        },
    )


SUBSETS = subsets_schema()


# --- slices and costs ------------------------------------------------------------------------


def scores_slice(exp: Experiment, rep: int | None = None) -> ScoresSlice:
    """Turn-over training on the training split: replicate ``rep``, or the whole score
    (the merge of ``replicates`` replicates, or the one training)."""
    return ScoresSlice(
        "train",
        exp.dataset,
        exp.seed,
        exp.model,
        exp.optim,
        exp.score_temperature,
        labels=exp.labels,
        replicate=None if rep is None else int(rep),
        replicates=exp.replicates if rep is None and exp.replicates > 1 else None,
    )


def scores_test_slice(exp: Experiment) -> ScoresSlice:
    """Turn-over training on the test split, as many optimizer steps as the training's."""
    return ScoresSlice(
        "test", exp.dataset, exp.seed, exp.model, exp.test_optim(), exp.score_temperature
    )


def peers_slice(exp: Experiment) -> StudySlice:
    """The peers' plain runs with the experiment's own training: one (the experiment's
    seed), or ``peer_runs`` (``seeds``); ``gradients`` only where ``peer_gradients`` is
    false (so the slices and hashes of peers with the gradient records stay those they
    were made with)."""
    runs = exp.peer_runs if exp.peer_runs > 1 else None
    gradients = None if exp.peer_gradients else False
    return StudySlice(
        exp.dataset, exp.labels, exp.model, exp.optim, seeds=runs, gradients=gradients
    )


def oob_options(exp: Experiment) -> dict | None:
    """The experiment's out-of-bag options (``oob_*``, defaults applied) when it asks for
    the out-of-bag estimator by setting at least one ``oob_*`` key itself; else None."""
    if not any(key in exp.set_keys for key in OOB_OPTIONS):
        return None
    return {key: exp.given.get(key, option.default) for key, option in OOB_OPTIONS.items()}


def estimates_slice(exp: Experiment) -> EstimatesSlice:
    """What decides estimates.nc: the scores, the peers and the out-of-bag options."""
    return EstimatesSlice(scores_slice(exp), peers_slice(exp), oob_options(exp))


def subsets_slice(exp: Experiment) -> SubsetsSlice:
    """The subsets: of the turn-over score (``score_form``), or of the estimate
    ``subsets_from`` names (then the estimates' slice is part of theirs)."""
    if exp.subsets_from is None:
        return SubsetsSlice(scores_slice(exp), exp.subset_size, exp.score_form)
    return SubsetsSlice(
        scores_slice(exp),
        exp.subset_size,
        exp.score_form,
        subsets_from=exp.subsets_from,
        estimates=estimates_slice(exp),
    )


def subsets_test_slice(exp: Experiment) -> SubsetsSlice:
    return SubsetsSlice(scores_test_slice(exp), exp.test_subset_size, exp.score_form)


def replicate_wildcards(exp: Experiment) -> list[dict]:
    return [{"rep": k} for k in range(exp.replicates)] if exp.replicates > 1 else []


def scores_passes(exp: Experiment, *, merge: bool = False, test: bool = False) -> list[Pass]:
    """One turn-over run (train, both sub-networks scored every epoch, and for the
    training split both also on the held-out test split); with R > 1 replicates the score
    job only merges their files. The test split's run takes as many steps as the training
    split's."""
    if merge and exp.replicates > 1:
        return []
    opt = exp.test_optim() if test else exp.optim
    n = exp.info.n_test if test else exp.info.n_train
    passes = [Pass(n, opt.epochs, TRAIN, opt.batch_size), Pass(n, opt.epochs, SCORE, EVAL_BATCH)]
    if not test:  # the held-out accuracy of both sub-networks after every epoch
        passes.append(Pass(exp.info.n_test, opt.epochs, SCORE, EVAL_BATCH))
    return passes


# --- stages ------------------------------------------------------------------------------------


def scores(ctx: StageContext) -> None:
    """Turn-over training and memorization scores of a split (``train`` or ``test``);
    with R > 1 replicates, the merge of their artifacts."""
    from ...method.checkpoint import checkpoint_bytes  # heavy dependency: torch (the job's)
    from ...method.scoring import score_split  # heavy dependency: torch (the job's)
    from ...trust.replicates import replicate_seed  # heavy dependency: torch (the job's)

    spec = ctx.slice(ScoresSlice)
    if ctx.paths("scores_replicate"):
        return _merge(ctx, spec)
    data, lab, tensors = load_split(
        ctx, spec.split, labels=spec.labels is not None, model=spec.model
    )
    heldout = split_tensors(data, "test", spec.model) if spec.split == "train" else None
    seed = replicate_seed(spec.seed, spec.replicate or 0)
    model = spec.model.with_classes(data.sizes["class"])
    params = model.parameter_count(tuple(tensors.x.shape[1:]))
    ctx.preflight(
        bytes_estimate(len(tensors), 100) + checkpoint_bytes(params, spec.optim, 64 * len(tensors))
    )
    checkpoint = ctx.checkpoint(split=spec.split)
    with ctx.lease() as dev:
        proof = _check(model, tensors, seed, dev, spec.optim)
        clock = compute_clock(dev)
        start = clock()  # the training and its scoring passes, set-up not counted
        out = score_split(
            model,
            tensors.to(dev),
            spec.optim,
            seed,
            true_labels=None if lab is None else lab["true_label"].values,
            corrupted=None if lab is None else lab["corrupted"].values,
            heldout=None if heldout is None else heldout.to(dev),
            checkpoint=checkpoint,
            sharpen_temperature=spec.score_temperature,
        )
        trained = round(clock() - start, 3)
        clock_name = clock_kind(dev)
    acc = out["subnet_accuracy"].isel(epoch=-1).values
    log.info("final training accuracy: unmuted %.4f, muted %.4f", *acc)
    _log_auc(out)
    out.attrs.update(turnover_check=proof.text, shared_fraction=proof.shared_fraction)
    ctx.write(
        out,
        SCORES,
        classes=classes_of(data),
        split=spec.split,
        turnover_seed=seed,
        seconds=ctx.seconds(),
        train_seconds=trained,
        clock=clock_name,
    )
    checkpoint.remove()


def _check(model, tensors, seed: int, device, opt) -> TurnoverCheck:
    """The zero-gradient check on the first examples of the split, before any training,
    of the gradient and of ``opt``'s update."""
    import torch  # heavy dependency: imported by the job, not by the workflow's parse

    from ...method.turnover import check_turnover  # heavy dependency: torch (the job's)

    net = model.build(tuple(tensors.x.shape[1:]), seed=seed).to(device)
    rows = torch.arange(min(CHECK_EXAMPLES, len(tensors)))
    x, y = tensors.x[rows].to(device), tensors.y[rows].to(device)
    check = check_turnover(net, x, y, seed, opt)
    log.info("%s", check.text)
    return check


def _log_auc(scores) -> None:
    wrong = scores["mislabeled"].values
    if wrong.any() and not wrong.all():
        auc = roc_auc(scores["memorization"].values, wrong)
        scores.attrs["mislabeled_auc"] = float(auc)
        log.info("ROC AUC of the memorization score for the wrong labels: %.4f", auc)


def _merge(ctx: StageContext, spec: ScoresSlice) -> None:
    from ...trust.replicates import merge_replicates, replicate_seed  # heavy dependency: torch

    runs = ctx.open_all("scores_replicate", "scores_replicate")
    ctx.preflight(bytes_estimate(runs[0].sizes["example"], 100 * len(runs)))
    merged = merge_replicates(runs, [replicate_seed(spec.seed, r) for r in range(len(runs))])
    merged["replicate_seconds"] = (  # the training's compute (older artifacts: the job's)
        "replicate",
        [float(r.attrs.get("train_seconds", r.attrs.get("seconds", "nan"))) for r in runs],
    )
    _log_auc(merged)
    log.info(
        "merged %d replicates; mean standard error of the memorization score %.4f",
        len(runs),
        float(merged["memorization_se"].mean()),
    )
    ctx.device = runs[0].attrs.get("device", "cpu")
    ctx.write(
        merged,
        SCORES,
        split="train",
        seconds=round(sum(float(r.attrs.get("seconds", 0.0)) for r in runs), 3),
        train_seconds=round(sum(float(r.attrs.get("train_seconds", "nan")) for r in runs), 3),
        clock=str(runs[0].attrs.get("clock", WALL_CLOCK)),
    )


def subsets(ctx: StageContext) -> None:
    """The easy and difficult subsets: lowest and highest memorization scores (of the
    estimate ``subsets_from`` names, when it names one)."""
    spec = ctx.slice(SubsetsSlice)
    if spec.subsets_from is not None:
        return _subsets_from(ctx, spec)
    name = "scores" if spec.scores.split == "train" else "scores_test"
    scores_ds = ctx.open(name)
    ctx.preflight()
    out = easy_difficult(scores_ds[SCORE_FORMS[spec.score_form]], int(spec.size))
    ctx.write(out, subsets_schema(spec.score_form))


def _subsets_from(ctx: StageContext, spec: SubsetsSlice) -> None:
    """The subsets of a variable of estimates.nc (higher: more memorized, so difficult)."""
    (path,) = ctx.paths("estimates")
    estimates = ctx.open("estimates")  # refused when made from another config (expect)
    if spec.subsets_from not in estimates:
        raise ValueError(
            f"subsets_from: {spec.subsets_from!r} is not a variable of {path} "
            f"(it holds {', '.join(map(str, estimates.data_vars))})"
        )
    ctx.preflight()
    values = estimates[spec.subsets_from]
    out = easy_difficult(values, int(spec.size))
    schema = Schema(
        "Easy and difficult subsets: the lowest and highest memorization estimates",
        required={
            **SUBSETS.required,
            "memorization": Var(
                f"the estimate the subsets rank by ({spec.subsets_from}: "
                f"{values.attrs.get('long_name', '')})",
                str(values.attrs.get("units", "1")),
            ),
        },
    )
    ctx.write(out, schema, subsets_from=spec.subsets_from)
