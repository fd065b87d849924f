"""The library from Python: memorization scores for a model on arrays, in one call.

:func:`score` trains a turn-over model on your images and labels and returns the same
``scores`` Dataset the workflow writes to ``scores.nc`` (every score form, both
sub-networks' losses and predictions, their accuracy per epoch, the zero-gradient
check's report); :func:`prepare` gives the ``dataset`` artifact of arrays;
:func:`memorization.method.turnover.turnover` (re-exported as ``turnover``) puts
turn-over masks on a network you built::

    import memorization as mz

    scores = mz.score("torchvision:resnet18", images, labels, epochs=10, lr=0.05,
                      momentum=0.9, corrupt=500, turnover="head")
    scores["memorization"].to_series().nlargest(10)

    net = mz.turnover(my_module, sites="head", n_classes=10, in_shape=(3, 32, 32))
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn

from .data.corruption import corrupt_labels
from .data.prepare import prepare_dataset
from .data.spec import DatasetSpec
from .data.tensors import to_tensors
from .infra.device import lease_device
from .method.models.base import TurnOverNet
from .method.models.spec import ModelSpec
from .method.optim import OptimSpec
from .method.scoring import SHARPEN_TEMPERATURE, score_split
from .method.turnover import check_turnover, turnover
from .workflow.artifacts import annotate
from .workflow.stages.scores import CHECK_EXAMPLES, SCORES

__all__ = ["prepare", "score", "turnover"]


def prepare(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    split: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    layout: str | None = None,
) -> xr.Dataset:
    """The ``dataset`` artifact of arrays, checked as ``source: arrays`` checks a file:
    ``images`` (N,H,W | N,H,W,C | N,C,H,W), ``labels`` (N,), optionally ``split``
    ("train"/"test" per example; else a stratified ``test_fraction`` split)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "arrays.npz"
        extra = {} if split is None else {"split": np.asarray(split, dtype=str)}
        if class_names is not None:
            extra["class_names"] = np.asarray(class_names, dtype=str)
        np.savez(path, images=np.asarray(images), labels=np.asarray(labels), **extra)
        options = {
            "path": str(path),
            "test_fraction": test_fraction,
            "split_seed": split_seed,
            "layout": layout,
        }
        return prepare_dataset(DatasetSpec("arrays", "arrays", options)).load()


@dataclass(frozen=True)
class _Given(ModelSpec):
    """A network you built: "building" it gives a copy (the same weights every time)."""

    module: nn.Module | None = None

    def build(self, in_shape, *, turnover: bool = True, seed: int | None = None) -> TurnOverNet:
        return copy.deepcopy(self.module)


def _model(model, n_classes: int, in_shape, options: dict) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model.with_classes(n_classes)
    if isinstance(model, str):
        return ModelSpec.from_config(model, options).with_classes(n_classes)
    if not isinstance(model, TurnOverNet):
        model = turnover(model, n_classes=n_classes, in_shape=tuple(in_shape), **options)
    return _Given("module", {}, n_classes, model)


def score(
    model: str | ModelSpec | nn.Module,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    data: xr.Dataset | None = None,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    momentum: float = 0.0,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    weight_decay: float = 0.0,
    seed: int = 0,
    corrupt: int = 0,
    corruption: str = "uniform",
    score_temperature: float = SHARPEN_TEMPERATURE,
    device: str = "auto",
    progress: bool = False,
    **model_options,
) -> xr.Dataset:
    """Train a turn-over model and score every training example (see the module docstring).

    ``model``: a config name (``"mlp"``, ``"vgg11"``, ``"torchvision:resnet18"``, ...) with
    its options as keywords, a :class:`ModelSpec`, a network wrapped with :func:`turnover`,
    or any classifier (wrapped with masks at its head's input). The data: ``images`` and
    ``labels`` (prepared with :func:`prepare`), or ``data``, a prepared dataset. ``corrupt``
    training labels are drawn at random first. Before training, the zero-gradient check runs
    on the first training examples (its report is the ``turnover_check`` attribute).
    """
    data = prepare(images, labels) if data is None else data
    train, test = to_tensors(data, "train"), to_tensors(data, "test")
    true = train.y.numpy()
    noisy, drawn = corrupt_labels(true, corrupt, data.sizes["class"], seed, corruption)
    train.y = torch.as_tensor(noisy, dtype=torch.int64)
    spec = _model(model, data.sizes["class"], train.x.shape[1:], model_options)
    opt = OptimSpec(epochs, lr, momentum, batch_size, tuple(milestones), gamma, weight_decay)
    with lease_device(device) as dev:
        net = spec.build(tuple(train.x.shape[1:]), seed=seed).to(dev)
        rows = torch.arange(min(CHECK_EXAMPLES, len(train)))
        check = check_turnover(net, train.x[rows].to(dev), train.y[rows].to(dev), seed)
        out = score_split(
            spec,
            train.to(dev),
            opt,
            seed,
            true_labels=true,
            corrupted=drawn,
            heldout=test.to(dev),
            progress=progress,
            sharpen_temperature=score_temperature,
        )
    out.attrs.update(turnover_check=check.text, shared_fraction=check.shared_fraction)
    classes = [str(c) for c in data["class_name"].values]
    return annotate(out, "scores", SCORES, {"model": spec.name, "seed": seed}, classes)
