"""Turn-over models by name: the built-in ones and, through :mod:`.external`, any
torchvision or timm classifier or a factory function of the user's.

:data:`MODELS` maps a built-in model's config name to its class and its options
(:class:`~memorization.infra.options.Option` tables, the config schema's source);
:func:`build_model` builds one; :class:`~.spec.ModelSpec` is the typed form the
workflow passes around. The options are read without torch (:mod:`.options`); a model's
class, and the names of :mod:`.base` exported here, import it when first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...infra.options import Option
from .options import CCT_OPTIONS, MLP_OPTIONS, VGG_OPTIONS

if TYPE_CHECKING:  # the names for type checkers; at run time __getattr__ imports them
    from .base import (
        PrefixSharingNet,
        TurnOverNet,
        masked_relu,
        parameter_counts,
        shared_fraction,
    )

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

#: the names of :mod:`.base` this package exports (imported on first use: torch)
_FROM_BASE = (
    "PrefixSharingNet",
    "TurnOverNet",
    "masked_relu",
    "parameter_counts",
    "shared_fraction",
)


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in model: its class (``module:Class`` of this package, imported when first
    asked for) and its config options."""

    where: str
    options: Mapping[str, Option]

    @property
    def cls(self) -> type[TurnOverNet]:
        module, name = self.where.split(":")
        return getattr(importlib.import_module(f".{module}", __name__), name)


#: config name -> built-in model
MODELS: dict[str, BuiltinModel] = {
    "mlp": BuiltinModel("mlp:MLP", MLP_OPTIONS),
    "vgg11": BuiltinModel("vgg:VGG11", VGG_OPTIONS),
    "cct": BuiltinModel("cct:CCT", CCT_OPTIONS),
}


def __getattr__(name: str):
    """The names of :mod:`.base` exported here, imported on first use (they need torch)."""
    if name not in _FROM_BASE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".base", __name__), name)
    globals()[name] = value
    return value


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
    if not turnover and name == "vgg11":
        model.reset_parameters(turnover=False)
    return model
