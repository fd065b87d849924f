"""What several stages share: loading a split with its labels, subset rows, the frame
of a plain-training study."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import xarray as xr

from ...data.tensors import TensorSplit, to_tensors
from ...method.checkpoint import checkpoint_bytes
from ..artifacts import Schema
from ..context import StageContext
from ..slices import StudySlice

__all__ = ["bytes_estimate", "classes_of", "load_split", "plain_study", "subset_rows"]


def bytes_estimate(n_examples: int, per_example: int = 64, extra: int = 0) -> int:
    """A generous size of an artifact over ``n_examples`` (before compression)."""
    return n_examples * per_example + extra + (1 << 20)


def classes_of(data: xr.Dataset) -> list[str]:
    return [str(c) for c in data["class_name"].values]


def load_split(
    ctx: StageContext, split: str = "train", labels: bool = True
) -> tuple[xr.Dataset, xr.Dataset | None, TensorSplit]:
    """(dataset, labels or None, tensors of the split with the training labels)."""
    data = ctx.open("dataset")
    lab = ctx.open("labels") if labels and split == "train" else None
    tensors = to_tensors(data, split, None if lab is None else lab["label"].values)
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
    """The frame of a plain-training study: preflight, device lease, checkpoint, write.

    ``study(device, kwargs)`` runs the study; ``kwargs`` holds what every study takes:
    ``model`` (the slice's model with its classes), ``opt`` (the study's optimizer),
    ``seed`` and, when ``resumable``, ``checkpoint``.
    """
    spec = ctx.slice(StudySlice)
    model = spec.model.with_classes(n_classes)
    needed = bytes_estimate(n_examples, 8)
    if resumable:
        needed += checkpoint_bytes(model.parameter_count(in_shape), spec.study.momentum)
    ctx.preflight(needed)
    checkpoint = ctx.checkpoint() if resumable else None
    kwargs = {
        "model": model,
        "opt": spec.study,
        "seed": spec.labels.seed,
    }
    if resumable:
        kwargs["checkpoint"] = checkpoint
    with ctx.lease() as dev:
        ds = study(dev, kwargs)
    ctx.write(ds, schema, classes=classes, seconds=ctx.seconds(), n_classes=int(n_classes))
    if checkpoint is not None:
        checkpoint.remove()
    return ds
