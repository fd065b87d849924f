"""The ``dataset`` and ``labels`` stages: a dataset prepared once, an experiment's labels."""

from __future__ import annotations

import logging

from ...data.corruption import corrupt_labels
from ...data.fingerprint import check_unchanged
from ...data.spec import DatasetSpec
from ..artifacts import Schema, Var, flag, label
from ..context import StageContext
from ..slices import DatasetSlice, LabelsSlice
from ..specs import Experiment
from .common import classes_of

__all__ = ["DATASET", "LABELS", "dataset", "dataset_slice", "labels", "labels_slice"]

log = logging.getLogger(__name__)

DATASET = Schema(
    "A dataset prepared for the memorization workflow",
    required={
        "label": label("true class label"),
        "split": Var("dataset split (train or test)", ""),
        "class_name": Var("class name", ""),
    },
    optional={
        "image": Var("image pixels (uint8: grey levels 0-255; float: as given)", "1"),
        "path": Var("image file, read when used (a lazily read image folder)", ""),
        "file_size": Var("size of the image file when the dataset was prepared", "bytes"),
        "file_mtime": Var(
            "modification time of the image file when the dataset was prepared "
            "(nanoseconds since 1970-01-01 UTC)",
            "ns",
        ),
    },
)

LABELS = Schema(
    "Training labels of an experiment, some drawn at random",
    required={
        "label": label("training label, after corruption"),
        "true_label": label("original label"),
        "corrupted": flag("label drawn at random (it may equal the true label)"),
        "mislabeled": flag("label differs from the true label"),
    },
)


def dataset_slice(spec: DatasetSpec) -> DatasetSlice:
    return DatasetSlice(spec)


def dataset(ctx: StageContext) -> None:
    """Prepare a dataset by its spec into one NetCDF file."""
    from ...data.lazy import file_manifest  # heavy dependency: torch, imported by the job
    from ...data.prepare import prepare_dataset  # heavy dependency: the sources' loaders

    spec = ctx.slice(DatasetSlice).dataset
    ctx.preflight()
    root = ctx.execution.data_root
    check_unchanged(spec, root)
    ds = prepare_dataset(spec, root, ctx.execution.download)
    if "path" in ds.variables:  # read lazily: each file as prepared, checked before training
        sizes, mtimes = file_manifest(ds["path"].values)
        ds["file_size"], ds["file_mtime"] = ("example", sizes), ("example", mtimes)
    check_unchanged(spec, root)  # nothing changed while it was read
    ctx.write(ds, DATASET, classes=classes_of(ds), data_root=str(root))


def labels_slice(exp: Experiment) -> LabelsSlice:
    return LabelsSlice(exp.dataset, exp.labels)


def labels(ctx: StageContext) -> None:
    """The training labels, ``corrupt`` of them replaced by random labels."""
    import xarray as xr  # heavy dependency: the workflow's parse imports this module

    spec = ctx.slice(LabelsSlice).labels
    data = ctx.open("dataset")
    ctx.preflight()
    train = data.sel(example=data["split"].values == "train")
    true = train["label"].values
    new, corrupted = corrupt_labels(
        true, spec.corrupt, data.sizes["class"], spec.seed, spec.corruption
    )
    out = xr.Dataset(
        {
            "label": ("example", new),
            "true_label": ("example", true),
            "corrupted": ("example", corrupted),
            "mislabeled": ("example", new != true),
        },
        coords={"example": train["example"].values},
    )
    log.info(
        "drew %d of %d training labels at random (%s); %d are now wrong",
        corrupted.sum(),
        len(new),
        spec.corruption,
        (new != true).sum(),
    )
    ctx.write(out, LABELS, classes=classes_of(data))
