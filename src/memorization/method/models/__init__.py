"""Turn-over models by name: the built-in ones and, through :mod:`.external`, any
torchvision or timm classifier or a factory function of the user's.

:data:`MODELS` maps a built-in model's config name to its class and its options
(:class:`~memorization.infra.options.Option` tables, the config schema's source);
:func:`build_model` builds one; :class:`~.spec.ModelSpec` is the typed form the
workflow passes around.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...infra.options import Option
from . import cct, mlp, vgg
from .base import PrefixSharingNet, TurnOverNet, masked_relu, parameter_counts, shared_fraction

__all__ = [
    "MODELS",
    "BuiltinModel",
    "PrefixSharingNet",
    "TurnOverNet",
    "build_model",
    "masked_relu",
    "model_options",
    "parameter_counts",
    "shared_fraction",
]


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in model: its class and its config options."""

    cls: type[TurnOverNet]
    options: Mapping[str, Option]


#: config name -> built-in model
MODELS: dict[str, BuiltinModel] = {
    "mlp": BuiltinModel(mlp.MLP, mlp.OPTIONS),
    "vgg11": BuiltinModel(vgg.VGG11, vgg.OPTIONS),
    "cct": BuiltinModel(cct.CCT, cct.OPTIONS),
}


def model_options(name: str) -> Mapping[str, Option]:
    """The config options of a built-in model."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name].options


def build_model(
    name: str, in_shape: Sequence[int], n_classes: int, *, turnover: bool = True, **options
) -> TurnOverNet:
    """Build a built-in model by its config name; options it does not take are ignored.

    ``turnover=False`` initialises it for plain training (no masks).
    """
    entry = MODELS.get(name)
    if entry is None:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    kwargs = {k: options.get(k, opt.default) for k, opt in entry.options.items()}
    model = entry.cls(in_shape, n_classes, **kwargs)
    if not turnover and isinstance(model, vgg.VGG11):
        model.reset_parameters(turnover=False)
    return model
