"""One function per workflow stage: read inputs, call the library, write the artifact.

The Snakemake scripts in ``scripts/`` are one call to :func:`run_from_snakemake`,
which maps the rule's ``input``/``output``/``params``/``threads``/``log`` onto
the stage function of the same name. Each stage can also be called directly
from Python with file paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from .artifacts import open_artifact, provenance, write_artifact

__all__ = ["STAGES", "run_from_snakemake"]

log = logging.getLogger("memorization.stages")

OPTIM_KEYS = ("epochs", "lr", "momentum", "batch_size", "milestones", "gamma", "weight_decay")


def model_options(exp: Mapping) -> dict:
    from .models import MODEL_OPTIONS

    return {k: exp[k] for k in MODEL_OPTIONS.get(exp["model"], {}) if k in exp}


def _load_train(data_path, labels_path=None, split="train"):
    from .data import to_tensors

    data = open_artifact(data_path, "dataset")
    labels = None
    if labels_path is not None and split == "train":
        labels = open_artifact(labels_path, "labels")
    tensors = to_tensors(data, split, None if labels is None else labels["label"].values)
    if labels is not None and not np.array_equal(labels["example"].values, tensors.examples):
        raise ValueError(f"{labels_path} does not match the training examples of {data_path}")
    return data, labels, tensors


# --- stages ---------------------------------------------------------------------------


def prepare_dataset(output, dataset: str, data_root: str = "data", download: bool = False):
    from .data import prepare_dataset as prepare

    ds = prepare(dataset, data_root, download)
    write_artifact(
        ds, output, "dataset", provenance({"dataset": dataset, "data_root": str(data_root)})
    )


def corrupt_labels(data, output, exp: Mapping):
    from .corruption import corrupt_labels as corrupt

    ds = open_artifact(data, "dataset")
    train = ds.sel(example=ds["split"].values == "train")
    true = train["label"].values
    labels, corrupted = corrupt(true, int(exp.get("corrupt", 0)), ds.sizes["class"], exp["seed"])
    out = xr.Dataset(
        {
            "label": ("example", labels),
            "true_label": ("example", true),
            "corrupted": ("example", corrupted),
        },
        coords={"example": train["example"].values},
    )
    log.info("corrupted %d of %d training labels", corrupted.sum(), len(labels))
    write_artifact(out, output, "labels", provenance(exp, dataset=exp["dataset"]))


def score(data, output, exp: Mapping, labels=None, device="auto", threads=1, split="train"):
    """Turn-over training and memorization scores of a split (``train`` or ``test``)."""
    from .device import lease_device, resolve_threads
    from .scoring import score_split
    from .training import OptimConfig

    resolve_threads(threads)
    ds, lab, tensors = _load_train(data, labels, split)
    with lease_device(device) as dev:
        ds_scores = score_split(
            exp["model"],
            model_options(exp),
            tensors.to(dev),
            ds.sizes["class"],
            OptimConfig.from_config(exp),
            int(exp["seed"]),
            true_labels=None if lab is None else lab["true_label"].values,
            corrupted=None if lab is None else lab["corrupted"].values,
        )
        attrs = provenance(exp, device=dev, split=split)
    acc = ds_scores["subnet_accuracy"].isel(epoch=-1).values
    log.info("final training accuracy: unmuted %.4f, muted %.4f", *acc)
    if ds_scores["corrupted"].values.any():
        from sklearn.metrics import roc_auc_score

        auc = roc_auc_score(ds_scores["corrupted"].values, ds_scores["memorization"].values)
        ds_scores.attrs["corrupted_auc"] = float(auc)
        log.info("ROC AUC of the memorization score for the random labels: %.4f", auc)
    write_artifact(ds_scores, output, "scores", attrs)


def subsets(scores, output, exp: Mapping):
    from .subsets import easy_difficult

    sc = open_artifact(scores, "scores")
    out = easy_difficult(sc["memorization"], int(exp["subset_size"]))
    write_artifact(out, output, "subsets", provenance(exp, subset_size=int(exp["subset_size"])))


def dynamics_optim(exp: Mapping, epochs_key: str = "dynamics_epochs"):
    """Optimizer settings of the plain-training studies (``dynamics_lr``/``dynamics_epochs``
    override the experiment's ``lr``/``epochs``, as figure 3 uses lr 0.01; the cross-subset
    runs, on a sixth of the data, may train longer with ``crosstrain_epochs``)."""
    from .training import OptimConfig

    cfg = dict(exp)
    cfg["lr"] = exp.get("dynamics_lr") or exp["lr"]
    cfg["epochs"] = exp.get(epochs_key) or exp.get("dynamics_epochs") or exp["epochs"]
    return OptimConfig.from_config(cfg)


def _subset_rows(path, examples) -> dict[str, np.ndarray]:
    sub = open_artifact(path, "subsets")
    if not np.array_equal(sub["example"].values, examples):
        raise ValueError(f"{path} does not list the examples it is used with")
    return {k: sub[k].values.astype(bool) for k in ("easy", "difficult")}


def _plain_study(kind, output, exp, opt, n_classes, device, threads, study, **attrs):
    """Shared frame of the plain-training studies: threads, device lease, provenance.

    ``study(dev, model)`` gets the device and the arguments every study takes
    (``model_name``, ``model_options``, ``n_classes``, ``opt``, ``seed``) as a dict.
    """
    from .device import lease_device, resolve_threads

    resolve_threads(threads)
    model = {
        "model_name": exp["model"],
        "model_options": model_options(exp),
        "n_classes": n_classes,
        "opt": opt,
        "seed": int(exp["seed"]),
    }
    with lease_device(device) as dev:
        ds = study(dev, model)
        attrs = provenance(exp, device=dev, lr=opt.lr, epochs=opt.epochs, **attrs)
    write_artifact(ds, output, kind, attrs)
    return ds


def dynamics(data, labels, subsets, subsets_test, output, exp: Mapping, device="auto", threads=1):
    from .data import to_tensors
    from .dynamics import training_dynamics

    ds, _, train = _load_train(data, labels)
    test = to_tensors(ds, "test")
    train_rows = _subset_rows(subsets, train.examples)
    test_rows = _subset_rows(subsets_test, test.examples)

    def study(dev, model):
        return training_dynamics(
            train=train.to(dev),
            test=test.to(dev),
            train_subsets=train_rows,
            test_subsets=test_rows,
            **model,
        )

    opt = dynamics_optim(exp)
    out = _plain_study("dynamics", output, exp, opt, ds.sizes["class"], device, threads, study)
    final = out["accuracy"].sel(run="all").isel(epoch=-1)
    log.info("final accuracy (all data): %s", final.to_pandas().to_dict())


def gradstats(data, labels, subsets, output, exp: Mapping, device="auto", threads=1):
    from .dynamics import gradient_statistics

    ds, _, train = _load_train(data, labels)
    rows = _subset_rows(subsets, train.examples)

    def study(dev, model):
        return gradient_statistics(
            train=train.to(dev),
            train_subsets=rows,
            probe_size=int(exp["probe_size"]),
            method=exp.get("gradstats_method", "auto"),
            **model,
        )

    opt = dynamics_optim(exp)
    _plain_study("gradstats", output, exp, opt, ds.sizes["class"], device, threads, study)


def crosstrain(data, labels, subsets, output, exp: Mapping, device="auto", threads=1):
    from .dynamics import cross_training

    ds, _, train = _load_train(data, labels)
    rows = _subset_rows(subsets, train.examples)

    def study(dev, model):
        return cross_training(train=train.to(dev), train_subsets=rows, **model)

    opt = dynamics_optim(exp, "crosstrain_epochs")
    out = _plain_study("crosstrain", output, exp, opt, ds.sizes["class"], device, threads, study)
    log.info("final accuracy: %s", out["accuracy"].isel(epoch=-1).to_pandas().to_dict())


def sweep_level(data, output, exp: Mapping, level: int, device="auto", threads=1):
    import torch

    from .corruption import corrupt_labels as corrupt
    from .data import TensorSplit, to_tensors
    from .dynamics import corruption_level

    ds = open_artifact(data, "dataset")
    train, test = to_tensors(ds, "train"), to_tensors(ds, "test")
    labels, _ = corrupt(train.y.numpy(), int(level), ds.sizes["class"], exp["seed"])
    train = TensorSplit(train.x, torch.as_tensor(labels, dtype=torch.int64), train.examples)

    def study(dev, model):
        out = corruption_level(train=train.to(dev), test=test.to(dev), **model)
        return out.expand_dims(corrupt=[int(level)])

    opt = dynamics_optim(exp)
    _plain_study(
        "dynamics",
        output,
        exp,
        opt,
        ds.sizes["class"],
        device,
        threads,
        study,
        corrupt_level=int(level),
    )


def figure(output, figure: str, inputs: Mapping[str, str | list], options: Mapping):
    """Draw one figure from its artifacts (``inputs``: name -> path or list of paths)."""
    from . import plots

    plots.draw(figure, inputs, dict(options), output)


STAGES = {
    "prepare_dataset": prepare_dataset,
    "corrupt_labels": corrupt_labels,
    "score": score,
    "subsets": subsets,
    "dynamics": dynamics,
    "gradstats": gradstats,
    "crosstrain": crosstrain,
    "sweep_level": sweep_level,
    "figure": figure,
}


@contextlib.contextmanager
def _logging_to(path: str | None):
    """Send logging, stdout and stderr (progress bars) to the rule's log file."""
    if not path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        root = logging.getLogger()
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            log.exception("stage failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = old_out, old_err


def run_from_snakemake(smk, stage: str) -> None:
    """Run ``stage`` with a Snakemake ``script:`` object's input/output/params."""
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    func = STAGES[stage]
    named_inputs = {k: v if isinstance(v, str) else list(v) for k, v in smk.input.items()}
    if "inputs" in func.__code__.co_varnames:  # figures take their inputs as one mapping
        kwargs = {"inputs": named_inputs, **dict(smk.params.items())}
    else:
        kwargs = {**named_inputs, **dict(smk.params.items())}
    kwargs.update(dict(smk.output.items()))  # rules name their outputs
    if "threads" in func.__code__.co_varnames:
        kwargs["threads"] = smk.threads
    with _logging_to(smk.log[0] if len(smk.log) else None):
        func(**kwargs)
