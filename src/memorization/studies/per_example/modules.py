"""Which modules each method supports, and how ``method="auto"`` chooses.

Per-example gradients only exist when the examples of a batch do not interact: a
batch-norm layer in training mode couples them, so every method refuses it. The
fast ``"hooks"`` path knows the per-example gradient algebra of ``nn.Linear`` and
``nn.Conv2d`` (groups=1, any bias, stride, padding, dilation and padding mode); any
other module that owns a trainable parameter, or a parameter shared between two
modules, makes it raise a :class:`ValueError` that names the module.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..gradient_choices import METHODS
from .layers import LAYER_KINDS

__all__ = [
    "METHODS",
    "HOOK_LAYERS",
    "trainable_parameters",
    "check_per_example",
    "hooks_unsupported_reason",
    "hook_layers",
    "resolve_method",
]


#: modules whose parameters the hooks path understands (the kinds of :mod:`.layers`)
HOOK_LAYERS = tuple(LAYER_KINDS)
_KNOWN = " and ".join(f"nn.{c.__name__}" for c in HOOK_LAYERS)


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every parameter with ``requires_grad`` (shared ones once)."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def check_per_example(model: nn.Module) -> None:
    """Raise if the examples of a batch interact (batch-norm in training mode)."""
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and module.training:
            raise ValueError(
                f"module {name!r} ({type(module).__name__}) is a batch-norm layer in "
                "training mode: it couples the examples of a batch, so per-example "
                "gradients are undefined (call model.eval() first)"
            )


def _scan_hook_layers(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], str | None]:
    layers: list[tuple[str, nn.Module]] = []
    owner: dict[int, str] = {}
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not params:
            continue
        label = f"{name or '<root>'!r} ({type(module).__name__})"
        if not isinstance(module, HOOK_LAYERS):
            return layers, (
                f"method='hooks' supports trainable parameters only in {_KNOWN}; "
                f"module {label} has trainable parameters (use method='func')"
            )
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            return layers, (
                f"method='hooks' supports nn.Conv2d with groups=1 only; module {label} "
                f"has groups={module.groups} (use method='func')"
            )
        for p in params:
            if id(p) in owner:
                return layers, (
                    f"method='hooks' does not support parameters shared between modules; "
                    f"module {label} shares a parameter with {owner[id(p)]!r} "
                    "(use method='func')"
                )
            owner[id(p)] = name
        layers.append((name, module))
    return layers, None


def hooks_unsupported_reason(model: nn.Module) -> str | None:
    """Why the hooks path cannot handle ``model``, or ``None`` if it can."""
    return _scan_hook_layers(model)[1]


def hook_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs the hooks path tracks; ValueError if unsupported."""
    layers, reason = _scan_hook_layers(model)
    if reason is not None:
        raise ValueError(reason)
    return layers


def resolve_method(model: nn.Module, method: str) -> str:
    """Validate ``method``; ``"auto"`` is ``"hooks"`` when possible, else ``"func"``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    check_per_example(model)
    if method == "auto":
        return "hooks" if hooks_unsupported_reason(model) is None else "func"
    if method == "hooks":
        hook_layers(model)  # raises with the offending module's name
    return method
