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
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from jsonschema import Draft202012Validator
from torch import nn

from .data.corruption import corrupt_labels
from .data.prepare import prepare_dataset
from .data.spec import DatasetError, DatasetSpec
from .data.tensors import to_tensors
from .infra.device import lease_device
from .infra.options import Option
from .method.models import MODELS, external
from .method.models.base import TurnOverNet
from .method.models.spec import ModelSpec, model_option_table
from .method.optim import OPTIONS as OPTIM_OPTIONS
from .method.optim import OptimSpec, recipe_problems, turnover_clip_problems
from .method.precision import supports
from .method.scoring import SHARPEN_TEMPERATURE, score_split
from .method.turnover import check_turnover, turnover
from .workflow.artifacts import annotate
from .workflow.check.schema_errors import _describe, _suggest  # the check's words, did-you-mean
from .workflow.specs import EXPERIMENT_OPTIONS
from .workflow.stages.scores import CHECK_EXAMPLES, SCORES

__all__ = ["ArgumentError", "prepare", "score", "turnover"]


class ArgumentError(ValueError):
    """Arguments of :func:`score` or :func:`prepare` that the config check would refuse;
    the message lists every problem, each naming the argument."""


#: the keywords of turnover() for a network you built, as the config names them
_MODULE_OPTIONS = {"turnover": "sites", "mask_groups": "mask_groups"}
_MODULE_OPTIONS |= {"keep_fraction": "keep_fraction", "head_hidden": "head_hidden"}


def _array(value, name: str) -> np.ndarray:
    """A numpy array of ``value`` (a tensor is detached and copied to the CPU)."""
    if torch.is_tensor(value):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as err:
        raise ArgumentError(f"{name}: cannot be read as an array: {err}") from None


def _problems(
    values: Mapping, options: Mapping[str, Option], also: Mapping[str, Option] | None = None
) -> list[str]:
    """The config check's messages for ``values`` against the schema of ``options`` (an
    unknown key's did-you-mean looks in ``also`` too: the recipe's keys beside the model's)."""
    out = []
    for key, value in values.items():
        if key not in options:
            known = {**options, **(also or {})}
            hint = _suggest(key, known) or f"; known: {', '.join(sorted(known))}"
            out.append(f"{key}: unknown key{hint}")
            continue
        value = list(value) if isinstance(value, tuple) else value
        for err in Draft202012Validator(dict(options[key].schema)).iter_errors(value):
            out += _describe(err, [key, *err.absolute_path])
    return out


def _raise(problems: list[str], call: str = "score()") -> None:
    if problems:
        raise ArgumentError(f"{call}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))


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
    if images is None or labels is None:
        raise ArgumentError("prepare(): give both images and labels")
    arrays = {"images": _array(images, "images"), "labels": _array(labels, "labels")}
    if split is not None:
        arrays["split"] = np.asarray(_array(split, "split"), dtype=str)
    if class_names is not None:
        arrays["class_names"] = np.asarray(_array(class_names, "class_names"), dtype=str)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "arrays.npz"
        np.savez(path, **arrays)
        options = {
            "path": str(path),
            "test_fraction": test_fraction,
            "split_seed": split_seed,
            "layout": layout,
        }
        try:
            return prepare_dataset(DatasetSpec("arrays", "arrays", options)).load()
        except DatasetError as err:  # named by the argument, not by the temporary file
            raise ArgumentError(f"prepare(): {_by_argument(str(err), path)}") from None


def _by_argument(message: str, path: Path) -> str:
    """``message`` with the temporary file's keys named as the arguments they came from."""
    for key in ("images", "labels", "split", "class_names"):
        message = message.replace(f"{str(path)!r} key {key!r}", f"argument {key}")
    message = message.replace(f"arrays file {str(path)!r}", "the arrays given")
    return message.replace(str(path), "the arrays given")


@dataclass(frozen=True)
class _Given(ModelSpec):
    """A network you built: "building" it gives a copy (the same weights every time)."""

    module: nn.Module | None = None

    def build(self, in_shape, *, turnover: bool = True, seed: int | None = None) -> TurnOverNet:
        return copy.deepcopy(self.module)


def _model_problems(model, options: Mapping) -> list[str]:
    """What the config check would say of ``model`` and its options."""
    if isinstance(model, (ModelSpec, TurnOverNet)):
        return [
            f"{k}: unknown key (the model is already built with its options)"
            f"{_suggest(k, OPTIM_OPTIONS)}"
            for k in options
        ]
    if isinstance(model, nn.Module):
        table = model_option_table("external:module")
        return _problems(options, {k: table[k] for k in _MODULE_OPTIONS}, OPTIM_OPTIONS)
    if not isinstance(model, str):
        return [
            f"model: {model!r} is neither a model name (mlp, vgg11, cct, torchvision:NAME, "
            "timm:NAME, package.module:function), a ModelSpec nor a torch nn.Module"
        ]
    try:
        table = model_option_table(model)
    except ValueError as err:
        return [f"model: {err}{_suggest(model, MODELS)}"]
    return _problems(options, table, OPTIM_OPTIONS)


def _model(model, n_classes: int, in_shape, options: dict) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model.with_classes(n_classes)
    if isinstance(model, str):
        return ModelSpec.from_config(model, options).with_classes(n_classes)
    if not isinstance(model, TurnOverNet):
        kwargs = {_MODULE_OPTIONS[k]: v for k, v in options.items()}
        model = turnover(model, n_classes=n_classes, in_shape=tuple(in_shape), **kwargs)
    return _Given("module", {}, n_classes, model)


def _data(images, labels, data) -> xr.Dataset:
    """The prepared dataset: ``data``, or ``images`` and ``labels`` prepared (not both)."""
    if data is not None:
        if images is not None or labels is not None:
            _raise(["data: give either data (a prepared dataset) or images and labels, not both"])
        if not isinstance(data, xr.Dataset) or "label" not in data or "split" not in data:
            _raise([f"data: expected a dataset made by prepare(), got {type(data).__name__}"])
        return data
    if images is None or labels is None:
        _raise(["images, labels: give both (or data, a dataset made by prepare())"])
    try:
        return prepare(images, labels)
    except ArgumentError as err:
        raise ArgumentError(str(err).replace("prepare():", "score():", 1)) from None


def _size_problems(data: xr.Dataset, batch_size: int, corrupt: int) -> list[str]:
    """Sizes against the data, as the config check has them."""
    split = np.asarray(data["split"].values).astype(str)
    n_train, n_test = int((split == "train").sum()), int((split == "test").sum())
    out = []
    if batch_size > n_train:
        out.append(f"batch_size: {batch_size} is larger than the {n_train} training examples")
    if corrupt > n_train:
        out.append(f"corrupt: {corrupt} exceeds the {n_train} training examples")
    if n_test == 0:
        out.append("data: the test split is empty; the held-out accuracy needs test examples")
    return out


def _split_recipe(epochs, lr, batch_size, options: Mapping) -> tuple[dict, dict]:
    """(the recipe, the model's options): the keywords that are the optimizer's config keys
    (:data:`~memorization.method.optim.OPTIONS`), with ``epochs``, ``lr`` and
    ``batch_size``, and the rest. A key left out takes its default from
    :meth:`OptimSpec.from_config`, the config's."""
    optim = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
    optim |= {k: v for k, v in options.items() if k in OPTIM_OPTIONS}
    return optim, {k: v for k, v in options.items() if k not in OPTIM_OPTIONS}


def _recipe(model, model_options: Mapping, optim: dict, given: dict) -> OptimSpec:
    """The optimizer's spec of ``optim``, every argument checked as the config check would
    (``clip_norm`` refused: it would break turn-over)."""
    problems = _problems(optim, OPTIM_OPTIONS) + _problems(given, EXPERIMENT_OPTIONS)
    _raise(problems + _model_problems(model, model_options))
    opt = OptimSpec.from_config(optim)  # every recipe key by name
    problems = [f"{key}: {msg}" for key, msg in recipe_problems(opt, set(optim))]
    _raise(problems + turnover_clip_problems(optim))
    return opt


def _preprocessing(model, data: xr.Dataset, model_options: Mapping):
    """The model's own preprocessing with ``preprocess="model"`` (refused for a model that
    has none, naming the key), else None: the dataset's channel statistics."""
    if isinstance(model, ModelSpec):
        name, options = model.name, dict(model.options)
    else:
        name, options = model, dict(model_options)
    if not isinstance(name, str):
        return None
    channels = len(np.atleast_1d(data.attrs["channel_mean"]))
    try:
        return external.preprocessing_of(name, options, channels)
    except (ValueError, ImportError) as err:
        raise ArgumentError(f"score(): 1 problem(s)\n  {err}") from None


def _tensors(model, data: xr.Dataset, model_options: Mapping, corruption: tuple):
    """(train, test, true labels, which were corrupted): the tensors the model reads, with
    ``corruption`` = (how many, seed, kind) training labels drawn at random."""
    pre = _preprocessing(model, data, model_options)
    train, test = to_tensors(data, "train", preprocess=pre), to_tensors(data, "test", None, pre)
    true = train.y.numpy()
    noisy, drawn = corrupt_labels(true, corruption[0], data.sizes["class"], *corruption[1:])
    train.y = torch.as_tensor(noisy, dtype=torch.int64)
    return train, test, true, drawn


def _precision_problems(opt: OptimSpec, dev) -> list[str]:
    """``precision`` where ``dev`` would only emulate it."""
    if supports(opt.precision, dev):
        return []
    return [
        f"precision: {opt.precision}: {dev} has no {opt.precision} kernels; use fp32"
        + (" or bf16" if supports("bf16", dev) else "")
    ]


def score(
    model: str | ModelSpec | nn.Module,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    data: xr.Dataset | None = None,
    epochs: int,
    lr: float,
    batch_size: int = OptimSpec.batch_size,  # declared once, by the optimizer's spec
    seed: int = 0,
    corrupt: int = 0,
    corruption: str = "uniform",
    score_temperature: float = SHARPEN_TEMPERATURE,
    device: str = "auto",
    progress: bool | None = None,
    **options,
) -> xr.Dataset:
    """Train a turn-over model and score every training example (see the module docstring).

    ``model``: a config name (``"mlp"``, ``"vgg11"``, ``"torchvision:resnet18"``, ...) with
    its options as keywords, a :class:`ModelSpec`, a network wrapped with :func:`turnover`,
    or any classifier (wrapped with masks at its head's input). The data: ``images`` and
    ``labels`` (prepared with :func:`prepare`), or ``data``, a prepared dataset. ``corrupt``
    training labels are drawn at random first.

    The training recipe: ``epochs``, ``lr``, ``batch_size`` and, as keywords, every other
    key of the config's optimizer (:data:`memorization.method.optim.OPTIONS`, with the
    config's defaults): ``momentum``, ``milestones``, ``gamma``, ``weight_decay``,
    ``optimizer`` (``"sgd"``, the paper's, or ``"adamw"`` with ``betas``, ``eps``),
    ``schedule`` (``"step"`` or ``"cosine"``), ``warmup_epochs``, ``clip_value`` (``clip_norm``
    is refused: turn-over would not be exact), ``precision`` (fp32, bf16, fp16:
    :mod:`~memorization.method.precision`), ``channels_last``, ``augment``. Every other
    keyword is an option of the model. Before training, the zero-gradient check runs on the
    first training examples, and of the update of the recipe (its report is the
    ``turnover_check`` attribute). A timm or torchvision model with ``preprocess="model"``
    reads the images as its weights expect.

    Every argument is checked first as the config check checks a config (an unknown
    keyword gets the same did-you-mean): :class:`ArgumentError` lists every problem.
    ``progress``: a progress bar per epoch on stderr (None: where stderr is a terminal).
    """
    optim, model_options = _split_recipe(epochs, lr, batch_size, options)
    given = {"seed": seed, "corrupt": corrupt, "corruption": corruption}
    given["score_temperature"] = score_temperature
    opt = _recipe(model, model_options, optim, given)
    data = _data(images, labels, data)
    _raise(_size_problems(data, batch_size, corrupt))
    train, test, true, drawn = _tensors(model, data, model_options, (corrupt, seed, corruption))
    try:
        spec = _model(model, data.sizes["class"], train.x.shape[1:], model_options)
    except ValueError as err:  # a site the network cannot have, options it cannot take
        raise ArgumentError(f"score(): model: {err}") from None
    progress = sys.stderr.isatty() if progress is None else bool(progress)
    with lease_device(device) as dev:
        _raise(_precision_problems(opt, dev))
        net = spec.build(tuple(train.x.shape[1:]), seed=seed).to(dev)
        rows = torch.arange(min(CHECK_EXAMPLES, len(train)))
        check = check_turnover(net, train.x[rows].to(dev), train.y[rows].to(dev), seed, opt)
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
