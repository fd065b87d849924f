"""``turnover(module)``: turn-over dropout on a network somebody else built."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .errors import TurnoverSiteError
from .head import bias_free_head, replace_module
from .model import TurnOverModel
from .sites import HEAD, Site, find_head, group_sizes, resolve_sites, sample_input, trace

__all__ = ["turnover"]


def _site_names(sites: str | Sequence[str]) -> list[str] | None:
    """None for ``"head"``, else the list of module names (one name may be a string)."""
    if isinstance(sites, str):
        return None if sites == HEAD else [sites]
    names = [str(s) for s in sites]
    if not names:
        raise TurnoverSiteError('turnover sites: give "head" or a non-empty list of modules')
    if HEAD in names:
        raise TurnoverSiteError('"head" is a site of its own: give "head" or module names')
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TurnoverSiteError(
            f"turnover sites: {', '.join(map(repr, twice))} named more than once: a module's "
            "output would be masked twice; name each module once"
        )
    return names


def turnover(
    module: nn.Module,
    sites: str | Sequence[str] = HEAD,
    mask_groups: int | None = 64,
    keep_fraction: float = 0.5,
    head_hidden: int | None = None,
    n_classes: int | None = None,
    *,
    in_shape: Sequence[int] | None = None,
) -> TurnOverModel:
    """The :class:`TurnOverModel` of an already built network (the network is kept, not copied).

    ``sites="head"`` masks the classifier's input (:func:`~.sites.find_head`; its ``n_classes``
    outputs, any last Linear when None); a list of module names masks their outputs.
    ``mask_groups`` mask bits per site, each covering consecutive units (None: one per unit).
    ``head_hidden=N`` replaces the classifier by ``Linear(features, N)`` + ReLU + mask +
    ``Linear(N, classes, bias=False)`` (:class:`~.head.HiddenHead`), masked on its N hidden
    units. An existing classifier is kept as it is: its bias, if any, is shared.

    ``in_shape`` (C, H, W of one example) lets the sites be checked now by a dry forward
    pass on two examples (each site runs exactly once); named sites need it (their units are
    the traced output's). Without it, ``"head"`` is checked on the first forward pass.
    """
    names = _site_names(sites)
    pair = heads = None
    if names is None:
        head_name = find_head(module, n_classes)
        head = module.get_submodule(head_name)
        n_classes = head.out_features if n_classes is None else n_classes
        pair = head_name
        if head_hidden is not None:
            replace_module(module, head_name, bias_free_head(head, n_classes, head_hidden))
            names, heads = [f"{head_name}.hidden"], []
        else:
            names, heads = [head_name], [head_name]
    elif head_hidden is not None:
        raise TurnoverSiteError("head_hidden goes with the head site only (turnover: head)")
    if in_shape is None:
        if pair is None:
            raise ValueError("named turn-over sites need in_shape (C, H, W) to find their units")
        found = _untraced_head(module, names[0], bool(heads), mask_groups)
    else:
        try:
            seen = trace(module, sample_input(module, in_shape))
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise TurnoverSiteError(
                f"{type(module).__name__} cannot run on examples of in_shape "
                f"{tuple(in_shape)} (channels, height, width): {type(err).__name__}: {err}"
            ) from err
        found = resolve_sites(module, names, seen, mask_groups, heads=heads or [])
        out = seen.output
        if n_classes is None and hasattr(out, "dim") and out.dim() == 2:
            n_classes = int(out.shape[1])
    return TurnOverModel(
        module, found, keep_fraction, pair_module=pair, in_shape=in_shape, n_classes=n_classes
    )


def _untraced_head(module: nn.Module, name: str, is_input: bool, mask_groups) -> list[Site]:
    """The head's site from the Linear's width alone (no dry forward pass)."""
    linear = module.get_submodule(name)
    units = linear.in_features if is_input else linear.out_features
    return [Site(name, "input" if is_input else "output", units, group_sizes(units, mask_groups))]
