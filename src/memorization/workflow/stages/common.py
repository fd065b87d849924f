"""What several stages share: loading a split with its labels (as tensors the stage's
model reads), subset rows, the frame of a plain-training study."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ...method.models.spec import ModelSpec
from ..artifacts import Schema
from ..context import StageContext
from ..slices import StudySlice

if TYPE_CHECKING:
    import torch
    import xarray as xr

    from ...data.preprocess import Preprocess
    from ...data.tensors import TensorSplit

__all__ = [
    "bytes_estimate",
    "classes_of",
    "load_split",
    "plain_study",
    "preprocessing",
    "slice_model",
    "split_tensors",
    "subset_rows",
]


def bytes_estimate(n_examples: int, per_example: int = 64, extra: int = 0) -> int:
    """A generous size of an artifact over ``n_examples`` (before compression)."""
    return n_examples * per_example + extra + (1 << 20)


def classes_of(data: xr.Dataset) -> list[str]:
    return [str(c) for c in data["class_name"].values]


def preprocessing(model: ModelSpec, data: xr.Dataset) -> Preprocess | None:
    """How ``model`` reads the images of ``data``: None (standardised with the training
    split's channel statistics) unless its options say ``preprocess: model``; then the
    model's own input size, mean, std and interpolation (refused, naming the key, for a
    model that has none)."""
    from ...method.models import (
        external,
    )  # heavy dependency: torch, imported by the job, not by the workflow's parse

    channels = len(np.atleast_1d(data.attrs["channel_mean"]))
    return external.preprocessing_of(model.name, dict(model.options), channels)


def split_tensors(
    data: xr.Dataset, split: str, model: ModelSpec, labels: np.ndarray | None = None
) -> TensorSplit:
    """A split of ``data`` as the tensors ``model`` reads (see :func:`preprocessing`): the
    one route from a prepared dataset to a stage's tensors."""
    from ...data.tensors import (
        to_tensors,
    )  # heavy dependency: torch, imported by the job, not by the workflow's parse

    return to_tensors(data, split, labels, preprocessing(model, data))


def slice_model(ctx: StageContext) -> ModelSpec:
    """The model of the stage's slice (``model``, or that of its ``scores``); refused,
    naming the stage, for a slice without one."""
    params = ctx.params.get("scores", ctx.params) if "model" not in ctx.params else ctx.params
    if "model" not in params:
        raise ValueError(f"the {ctx.stage} stage's slice has no model to read its data with")
    return ModelSpec.from_params(params["model"])


def load_split(
    ctx: StageContext,
    split: str = "train",
    labels: bool = True,
    *,
    model: ModelSpec | None = None,
) -> tuple[xr.Dataset, xr.Dataset | None, TensorSplit]:
    """(dataset, labels or None, tensors of the split with the training labels) as
    ``model`` reads them (None: the slice's model, :func:`slice_model`)."""
    model = slice_model(ctx) if model is None else model
    data = ctx.open("dataset")
    lab = ctx.open("labels") if labels and split == "train" else None
    tensors = split_tensors(data, split, model, None if lab is None else lab["label"].values)
    if lab is not None and not np.array_equal(lab["example"].values, tensors.examples):
        raise ValueError(
            f"{ctx.paths('labels')[0]} does not match the training examples of "
            f"{ctx.paths('dataset')[0]}"
        )
    return data, lab, tensors


def subset_rows(ctx: StageContext, name: str, examples: np.ndarray) -> dict[str, np.ndarray]:
    """The easy/difficult rows of a subsets input, checked against the split's examples."""
    sub = ctx.open(name, "subsets" if name == "subsets" else "subsets_test")
    if not np.array_equal(sub["example"].values, examples):
        raise ValueError(f"{ctx.paths(name)[0]} does not list the examples it is used with")
    return {k: sub[k].values.astype(bool) for k in ("easy", "difficult")}


def plain_study(
    ctx: StageContext,
    schema: Schema,
    study: Callable[[torch.device, dict], xr.Dataset],
    n_classes: int,
    in_shape,
    *,
    classes: list[str] | None = None,
    n_examples: int = 0,
    resumable: bool = True,
) -> xr.Dataset:
    """The frame of a plain-training study: preflight, device lease, checkpoints, write.

    ``study(device, kwargs)`` runs the study once; ``kwargs`` holds what every study takes:
    ``model`` (the slice's model with its classes), ``opt`` (the study's optimizer),
    ``seed`` and, when ``resumable``, ``checkpoint``. With the slice's ``seeds`` S > 1,
    the study runs S times with independent seeds (the first is the experiment's own),
    each with its own checkpoint, and the artifact gains a ``seed`` dimension.
    """
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    from ...method.checkpoint import (
        checkpoint_bytes,
    )  # heavy dependency: torch, imported by the job, not by the workflow's parse
    from ...trust.replicates import (
        replicate_seed,
    )  # heavy dependency: torch, imported by the job, not by the workflow's parse

    spec = ctx.slice(StudySlice)
    model = spec.model.with_classes(n_classes)
    seeds = [replicate_seed(spec.labels.seed, k) for k in range(spec.seeds or 1)]
    needed = bytes_estimate(n_examples, 8 * len(seeds))
    if resumable:
        needed += checkpoint_bytes(model.parameter_count(in_shape), spec.study)
    ctx.preflight(needed)
    parts = [None] if len(seeds) == 1 else list(range(len(seeds)))
    checkpoints = [ctx.checkpoint(part) if resumable else None for part in parts]
    runs = []
    with ctx.lease() as dev:
        for seed, checkpoint in zip(seeds, checkpoints, strict=True):
            kwargs = {"model": model, "opt": spec.study, "seed": seed}
            if resumable:
                kwargs["checkpoint"] = checkpoint
            runs.append(study(dev, kwargs))
    ds = runs[0] if len(runs) == 1 else xr.concat(runs, "seed").assign_coords(seed=seeds)
    ctx.write(ds, schema, classes=classes, seconds=ctx.seconds(), n_classes=int(n_classes))
    for checkpoint in checkpoints:
        if checkpoint is not None:
            checkpoint.remove()
    return ds
