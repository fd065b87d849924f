"""The typed form of a model choice: name, options and number of classes; it builds the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ...infra.options import Option, resolve
from . import MODELS
from .options import EXTERNAL_OPTIONS, UNRECORDED_DEFAULTS

if TYPE_CHECKING:
    from .base import TurnOverNet

__all__ = ["ModelSpec", "is_external"]


def is_external(name: str) -> bool:
    """``torchvision:NAME``, ``timm:NAME`` or ``package.module:function``."""
    return ":" in str(name)


@dataclass(frozen=True)
class ModelSpec:
    """A model: its config name, every option (defaults applied) and its classes.

    ``n_classes`` comes from the data (:meth:`with_classes`); the options are the
    built-in model's (:data:`memorization.method.models.MODELS`) or, for a
    torchvision, timm or factory model, those of :mod:`.external`.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    n_classes: int | None = None

    @classmethod
    def from_config(cls, name: str, given: Mapping[str, Any]) -> ModelSpec:
        """The spec of model ``name`` from a mapping holding (at least) its options."""
        return cls(str(name), resolve(model_option_table(name), given))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ModelSpec:
        """The inverse of :meth:`params`."""
        params = dict(params)
        name = params.pop("model")
        if is_external(name):  # options left out of the params at their default
            params = {**UNRECORDED_DEFAULTS, **params}
        return cls(name, params)

    def with_classes(self, n_classes: int) -> ModelSpec:
        return replace(self, n_classes=int(n_classes))

    def params(self) -> dict:
        """The YAML-able form a config slice records: ``{"model": name, **options}``."""
        quiet = UNRECORDED_DEFAULTS if is_external(self.name) else {}
        options = {k: v for k, v in self.options.items() if k not in quiet or v != quiet[k]}
        return {"model": self.name, **{k: _yaml(v) for k, v in options.items()}}

    def parameter_count(self, in_shape: Sequence[int]) -> int:
        """Trainable parameter entries, counted on the meta device (no memory, no compute)."""
        import torch  # heavy dependency: the spec is read (the config, the parse) without it

        with torch.device("meta"):
            net = self.build(in_shape)
        return sum(p.numel() for p in net.parameters() if p.requires_grad)

    def build(
        self, in_shape: Sequence[int], *, turnover: bool = True, seed: int | None = None
    ) -> TurnOverNet:
        """The model for inputs of ``in_shape`` (C, H, W); with ``seed``, seeded first.

        ``turnover=False`` initialises it for plain training (no masks).
        """
        if self.n_classes is None:
            raise ValueError(f"model {self.name!r}: the number of classes is not set")
        from ..seeding import seed_everything  # heavy dependency: torch
        from . import build_model, external  # heavy dependency: the models import torch

        if seed is not None:
            seed_everything(seed)
        if is_external(self.name):
            return external.build_external(
                self.name, tuple(in_shape), self.n_classes, plain=not turnover, **self.options
            )
        return build_model(
            self.name, tuple(in_shape), self.n_classes, turnover=turnover, **self.options
        )


def model_option_table(name: str) -> Mapping[str, Option]:
    """The options a model takes: a built-in's own, or those of every external model."""
    if is_external(name):
        return EXTERNAL_OPTIONS
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name].options


def _yaml(value):
    return list(value) if isinstance(value, tuple) else value
