"""The zero-gradient check of any turn-over model on a batch of its real training data.

A wrapped model (:class:`~.model.TurnOverModel`) goes through :func:`~.proof.prove_turnover`,
which finds what is split and shared. A built-in model declares its shared parameters
(``shared_parameter_names``); :func:`check_turnover` verifies that no other parameter gets
gradient from both sub-networks of an example, in train and eval mode. Either way the
scores stage runs it before training and records the report in ``scores.nc``. Given the
optimizer, :func:`~.update.prove_update` then checks its update too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models.base import TurnOverNet
from ..optim import OptimSpec
from .errors import TurnoverSiteError
from .proof import _MODES, _preserved, _usage, prove_turnover
from .update import prove_update

__all__ = ["TurnoverCheck", "check_turnover"]


@dataclass(frozen=True)
class TurnoverCheck:
    """What the check found: the shared parameters, their share of all entries, in words."""

    shared: tuple[str, ...]
    shared_fraction: float
    text: str


def check_turnover(
    model: TurnOverNet, x: torch.Tensor, y: torch.Tensor, seed: int, opt: OptimSpec | None = None
) -> TurnoverCheck:
    """Prove on the batch ``(x, y)`` (with the examples' masks of ``seed``, numbered
    0..len(x)-1) that an example's unmuted loss trains none of its muted sub-network's
    parameters but the shared ones; raise :class:`TurnoverSiteError` naming the parameter.
    With ``opt``, also that its optimizer's update, its clipping included, moves none of
    them because of the example (:func:`~.update.prove_update`; clipping by the global
    norm is refused, element-wise clipping, ``clip_value``, is proved with the update)."""
    if opt is not None and opt.clip_norm is not None:
        raise TurnoverSiteError(
            f"clip_norm: clipping by the global norm of the batch gradient ({opt.clip_norm:g}) "
            "makes every parameter's step depend on every example, so an example's muted "
            "sub-network would move because of it; turn-over training cannot clip by the "
            "norm: use clip_value (element-wise clipping, which keeps turn-over exact)"
        )
    if hasattr(model, "sites"):
        proof = prove_turnover(model, tuple(x.shape[1:]), int(y.max()) + 1, seed=seed, x=x, y=y)
        found = TurnoverCheck(tuple(proof.shared), proof.shared_fraction, proof.text())
        return _with_update(found, model, x, y, seed, opt)
    masks = model.turnover_masks(seed, np.arange(len(x)), x.device, check_unique=False)
    rows = torch.arange(len(x), device=x.device)
    declared = set(model.shared_parameter_names())
    with _preserved(model), torch.enable_grad():
        for mode in _MODES:
            both, _ = _usage(model, mode, x, y, masks.unmuted(rows), masks.muted(rows), [])
            leaked = [n for n, b in both.items() if b.any() and n not in declared]
            if leaked:
                raise TurnoverSiteError(
                    f"{type(model).__name__}: parameter {leaked[0]!r} gets gradient from both "
                    f"sub-networks of an example ({mode} mode) but is not declared shared: the "
                    "muted sub-network would learn from the example"
                )
    entries = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    fraction = sum(entries[n] for n in declared if n in entries) / max(1, sum(entries.values()))
    text = (
        f"Turn-over check on {len(x)} training examples in train and eval mode: no parameter "
        f"but the declared shared ones ({', '.join(sorted(declared)) or 'none'}; "
        f"{fraction:.2%} of the entries) gets gradient from both sub-networks of an example."
    )
    return _with_update(
        TurnoverCheck(tuple(sorted(declared)), fraction, text), model, x, y, seed, opt
    )


def _with_update(found: TurnoverCheck, model, x, y, seed: int, opt) -> TurnoverCheck:
    """The check with its update half (see :func:`check_turnover`); the report names the
    update only for a recipe other than the paper's SGD, whose report stays as it was."""
    if opt is None:
        return found
    said = prove_update(model, x, y, seed, opt, found.shared)
    if not opt._recipe_params():
        return found
    return TurnoverCheck(found.shared, found.shared_fraction, f"{found.text}\n{said}")
