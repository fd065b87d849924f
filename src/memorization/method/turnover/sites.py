"""Where turn-over masks go in somebody else's network: its *sites*.

A site is one of

- ``"head"``: the *input* of the final classifier, i.e. the features it reads. A timm
  model names its classifier (``get_classifier()``); otherwise it is the last
  ``nn.Linear`` in module order whose ``out_features`` is the number of classes. The
  mask splits the classifier's weight columns between the two sub-networks; every
  layer before it is shared (Kobayashi et al.'s turn-over dropout before the output
  layer, the choice that generalises in this library's VGG-11 study).
- a module name (as in ``net.named_modules()``): the *output* of that module is
  masked. Its units are dim 1 of ``[B, C, H, W]`` (feature maps, spatial turn-over
  dropout) and ``[B, F]`` outputs, and the last dim of ``[B, T, D]`` token outputs
  (the same mask for every token).

One mask bit covers a group of consecutive units (:func:`group_sizes`), so the number
of bits (``mask_units``) does not grow with the layer's width.

A site must run exactly once per forward pass: a module that is called twice (e.g. the
``relu`` a torchvision ResNet block applies twice) would be masked twice. :func:`trace`
counts the calls of every module on a tiny batch and :func:`resolve_sites` refuses such
sites, unknown names (with close matches) and outputs that are not one tensor.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.vgg import _group_sizes
from .errors import TurnoverSiteError

__all__ = ["HEAD", "Site", "Trace", "find_head", "group_sizes", "resolve_sites", "trace"]

#: the site name of the classifier's input
HEAD = "head"

_NAME_SITES = (
    'the "head" site needs a Linear classifier; name the modules whose outputs to mask '
    "instead (turnover: [names] in a config, sites=[names] in turnover())"
)


def group_sizes(units: int, groups: int | None) -> tuple[int, ...]:
    """Sizes of the groups of consecutive units that share one mask bit.

    ``groups`` bits per site (capped at ``units``; ``None``: one bit per unit), the
    groups as equal as possible, the larger ones first.
    """
    if units < 2:
        raise TurnoverSiteError(f"a turn-over site needs at least 2 units, got {units}")
    if groups is not None and int(groups) < 2:
        raise ValueError(f"mask_groups must be at least 2 (or null), got {groups}")
    return tuple(_group_sizes(units, groups))


@dataclass(frozen=True)
class Site:
    """One masked place: a module's input (``"input"``, the head) or output (``"output"``)."""

    name: str
    kind: str  # "input" or "output"
    units: int
    groups: tuple[int, ...]

    @property
    def bits(self) -> int:
        """Mask bits of this site (one per group of units)."""
        return len(self.groups)

    def axis(self, ndim: int) -> int:
        """The units' axis of a tensor of ``ndim`` dims at this site."""
        if self.kind == "input" or ndim == 3:
            return ndim - 1  # a classifier's features, or the width of [B, T, D] tokens
        return 1


@dataclass
class Trace:
    """What a dry forward pass saw of every module (names from ``named_modules()``)."""

    calls: dict[str, int] = field(default_factory=dict)
    start: dict[str, int] = field(default_factory=dict)  # event index of the first call
    end: dict[str, int] = field(default_factory=dict)  # event index of its return
    out_shapes: dict[str, tuple | None] = field(default_factory=dict)  # None: not a tensor
    in_shapes: dict[str, tuple | None] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # only the kept ones
    output: torch.Tensor | None = None  # the network's


def sample_input(net: nn.Module, in_shape: Sequence[int], batch: int = 2) -> torch.Tensor:
    """A small batch on the network's device and float type (empty on the meta device)."""
    ref = next(
        (t for t in list(net.parameters()) + list(net.buffers()) if t.is_floating_point()), None
    )
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None else torch.float32
    shape = (batch, *(int(s) for s in in_shape))
    if device.type == "meta":
        return torch.empty(shape, device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(0)  # private: the global RNG stays untouched
    return torch.randn(shape, generator=gen).to(device=device, dtype=dtype)


def trace(net: nn.Module, x: torch.Tensor, keep: Sequence[str] = ()) -> Trace:
    """Run ``net`` once on ``x`` in eval mode without gradients, recording every module.

    Counts each module's calls, the order in which modules start and return, their input
    and output shapes, and keeps the outputs of the modules named in ``keep``. The
    training flags of all modules are restored afterwards.
    """
    modules = dict(net.named_modules())
    flags = {name: m.training for name, m in modules.items()}
    seen = Trace()
    counter = iter(range(1 << 62))

    def pre(name):
        def hook(module, args):
            seen.calls[name] = seen.calls.get(name, 0) + 1
            if name not in seen.start:
                seen.start[name] = next(counter)
                first = args[0] if args else None
                seen.in_shapes[name] = tuple(first.shape) if torch.is_tensor(first) else None

        return hook

    def post(name):
        def hook(module, args, output):
            if name not in seen.end:
                seen.end[name] = next(counter)
                tensor = torch.is_tensor(output)
                seen.out_shapes[name] = tuple(output.shape) if tensor else None
                if name in keep and tensor:
                    seen.outputs[name] = output

        return hook

    handles = []
    for name, module in modules.items():
        handles.append(module.register_forward_pre_hook(pre(name)))
        handles.append(module.register_forward_hook(post(name)))
    try:
        net.eval()
        with torch.no_grad():
            seen.output = net(x)
    finally:
        for h in handles:
            h.remove()
        for name, module in modules.items():
            module.training = flags[name]
    return seen


def find_head(net: nn.Module, n_classes: int | None = None) -> str:
    """The module name of the classifier whose input is the ``"head"`` site.

    timm models name it (``get_classifier()``); otherwise the last ``nn.Linear`` in module
    order with ``out_features == n_classes`` (any last ``nn.Linear`` when ``n_classes`` is
    None). A classifier that is not a Linear is refused: name the sites instead.
    """
    modules = dict(net.named_modules())
    if hasattr(net, "get_classifier"):  # timm's interface (duck-typed: timm is optional)
        head = net.get_classifier()
        name = next((n for n, m in modules.items() if m is head), None)
        if isinstance(head, nn.Linear) and name is not None:
            return name
        raise TurnoverSiteError(
            f"the classifier of {type(net).__name__} is {type(head).__name__}, not a Linear: "
            f"{_NAME_SITES}"
        )
    linears = [
        n
        for n, m in modules.items()
        if isinstance(m, nn.Linear) and (n_classes is None or m.out_features == n_classes)
    ]
    if not linears:
        want = "" if n_classes is None else f" with {n_classes} outputs"
        raise TurnoverSiteError(
            f"{type(net).__name__} has no nn.Linear classifier{want} (its classifier may be a "
            f"convolution): {_NAME_SITES}"
        )
    return linears[-1]


def _canonical(net: nn.Module, modules: dict[str, nn.Module], name: str) -> str:
    """The ``named_modules()`` name of ``name``; unknown names refused with close matches."""
    if name in modules:
        return name
    try:
        target = net.get_submodule(name)
    except AttributeError:
        close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise TurnoverSiteError(
            f"{type(net).__name__} has no module named {name!r}{hint} "
            "(names as in model.named_modules())"
        ) from None
    return next(n for n, m in modules.items() if m is target)  # an alias of a shared module


def resolve_sites(
    net: nn.Module,
    names: Sequence[str],
    seen: Trace,
    mask_groups: int | None,
    heads: Sequence[str] = (),
) -> list[Site]:
    """The :class:`Site` of every named module (``heads``: those masked at their input).

    Refuses a module that did not run or ran more than once in the traced forward pass,
    and one whose output (input, for a head) is not a single tensor with a batch dim.
    """
    modules = dict(net.named_modules())
    sites = []
    for given in names:
        name = _canonical(net, modules, given)
        if any(site.name == name for site in sites):
            raise TurnoverSiteError(
                f"module {name!r} is named twice as a turn-over site ({given!r}): its output "
                "would be masked twice; name each module once"
            )
        calls = seen.calls.get(name, 0)
        if calls != 1:
            what = "did not run" if calls == 0 else f"runs {calls} times"
            raise TurnoverSiteError(
                f"module {name!r} {what} in one forward pass: a turn-over site must run "
                "exactly once (a module applied several times, like a ResNet block's shared "
                "relu, would be masked each time); choose another module"
            )
        kind = "input" if name in heads else "output"
        shape = seen.in_shapes[name] if kind == "input" else seen.out_shapes[name]
        if shape is None or len(shape) < 2:
            raise TurnoverSiteError(
                f"the {kind} of module {name!r} is not a [batch, units, ...] tensor "
                f"({shape}); choose a module whose {kind} is one tensor"
            )
        site = Site(name, kind, 0, ())
        units = int(shape[site.axis(len(shape))])
        sites.append(Site(name, kind, units, group_sizes(units, mask_groups)))
    return sites
