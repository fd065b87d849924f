"""The ``oob`` stage: out-of-bag sub-networks (``<exp>/oob.nc``).

K plain networks of the experiment's model, each on a balanced half of the training
set, trained together in one job; every example is scored by the networks that did not
train on it against those that did (:mod:`memorization.trust.oob`). Never part of the
default target: build it by name (``results/<exp>/oob.nc``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...data.spec import DatasetSpec
from ...method.models.spec import ModelSpec
from ...method.optim import OptimSpec
from ...trust.oob_spec import FORMS, OOBSpec, cost_runs, narrow
from ..artifacts import Schema, Var, flag
from ..context import StageContext
from ..resources import EVAL, EVAL_BATCH, TRAIN, Pass
from ..slices import Slice
from ..specs import Experiment, LabelSpec
from .common import bytes_estimate, load_split

__all__ = ["OOB", "OOBSlice", "oob", "oob_passes", "oob_slice"]

#: the family every out-of-bag variable belongs to (the estimates' ``family`` attribute)
FAMILY = "oob"

OOB = Schema(
    "Out-of-bag sub-networks: memorization from networks that never saw the example",
    required={
        **{f"oob_{name}": Var(*FORMS[name]) for name in ("correct", "prob", "loss", "cumulative")},
        "in_train": flag("the network trained on the example"),
        "n_in": Var("networks trained on the example", "networks"),
        "n_out": Var("networks not trained on the example", "networks"),
    },
    optional={
        "oob_cumulative_prob": Var(*FORMS["cumulative_prob"]),
        **{
            f"oob_{name}_se": Var(f"standard error of oob_{name}", FORMS[name][1]) for name in FORMS
        },
    },
)


@dataclass(frozen=True)
class OOBSlice(Slice):
    """The out-of-bag estimator: labels, model, training and its own settings."""

    dataset: DatasetSpec
    labels: LabelSpec
    model: ModelSpec
    study: OptimSpec
    oob: OOBSpec


def _spec(exp: Experiment) -> OOBSpec:
    spec = OOBSpec.from_values(exp.given)
    narrow(exp.model, spec.width)  # refuses a width for a model without a width option
    return spec


def oob_slice(exp: Experiment) -> OOBSlice:
    return OOBSlice(exp.dataset, exp.labels, exp.model, exp.optim, _spec(exp))


def oob_passes(exp: Experiment) -> list[Pass]:
    """The fork's plain run, the K networks on half the data each, and the recording
    passes (every network on every example); narrow networks counted at full width (an
    upper bound)."""
    spec, opt, n = _spec(exp), exp.optim, exp.info.n_train
    fork = spec.fork_epochs(opt.epochs)
    k, recorded = spec.networks, len(spec.recorded_epochs(opt.epochs))
    passes = [Pass(k * n // 2, opt.epochs - fork, TRAIN, opt.batch_size)]
    if fork:
        passes.append(Pass(n, fork, TRAIN, opt.batch_size))
    return [*passes, Pass(k * n, recorded, EVAL, EVAL_BATCH)]


def oob(ctx: StageContext) -> None:
    """Train the out-of-bag networks and write every form of their estimate."""
    from ...trust.oob import forward_flops, train_oob  # heavy dependency: torch (the job's)

    spec = ctx.slice(OOBSlice)
    data, _, train = load_split(ctx, model=spec.model)
    model = spec.model.with_classes(data.sizes["class"])
    shape = tuple(train.x.shape[1:])
    ctx.preflight(bytes_estimate(len(train) * (spec.oob.networks + 16), 8))
    with ctx.lease() as dev:
        out = train_oob(model, train.to(dev), spec.study, spec.oob, seed=spec.labels.seed)
    ratio = forward_flops(narrow(model, spec.oob.width), shape) / forward_flops(model, shape)
    runs = cost_runs(spec.oob, spec.study.epochs, ratio)
    for name in FORMS:
        out[f"oob_{name}"].attrs.update(family=FAMILY, cost_runs=round(runs, 4))
    ctx.write(
        out, OOB, seconds=ctx.seconds(), flops_ratio=round(ratio, 6), cost_runs=round(runs, 4)
    )
