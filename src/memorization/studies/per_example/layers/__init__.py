"""The layer kinds the hooks path knows, one module each, and the registry that finds them.

A module's kind is the first class of its type's method resolution order that
:data:`LAYER_KINDS` lists (a subclass of ``nn.Linear`` is a linear layer). A kind it
does not list is refused with its name, never treated as another kind. Adding a kind is
one module here, with a :class:`~.base.Layer` subclass, and one line in
:data:`LAYER_KINDS`.
"""

from __future__ import annotations

from torch import nn

from .base import Call, Layer
from .conv2d import Conv2dLayer
from .linear import LinearLayer

__all__ = ["LAYER_KINDS", "Call", "Layer", "layer_kind", "make_layer"]

#: module class -> the Layer that knows its per-example gradient algebra
LAYER_KINDS: dict[type[nn.Module], type[Layer]] = {nn.Linear: LinearLayer, nn.Conv2d: Conv2dLayer}


def layer_kind(module: nn.Module) -> type[Layer] | None:
    """The registered kind of ``module``, or None when the hooks path does not know it."""
    for cls in type(module).__mro__:
        if cls in LAYER_KINDS:
            return LAYER_KINDS[cls]
    return None


def make_layer(name: str, module: nn.Module) -> Layer:
    """The hooked layer of ``module``; ValueError naming it when its kind is unknown."""
    kind = layer_kind(module)
    if kind is None:
        known = ", ".join(f"nn.{c.__name__}" for c in LAYER_KINDS)
        raise ValueError(
            f"layer {name or '<root>'!r} ({type(module).__name__}): the hooks path knows only "
            f"{known} (use method='func')"
        )
    return kind(name, module)
