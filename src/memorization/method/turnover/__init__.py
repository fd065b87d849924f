"""Turn-over dropout on anyone's model: find the sites, mask them with hooks, prove it.

- :mod:`.sites`: where masks go (the classifier's input, or named modules' outputs).
- :mod:`.head`: bias-free classifier heads, optionally with a masked hidden layer.
- :mod:`.model`: :class:`TurnOverModel`, the wrapper that applies the masks with hooks.
- :mod:`.proof`: :func:`prove_turnover`, the zero-gradient check and its report.
- :mod:`.check`: :func:`check_turnover`, the same check for every model, built-in or
  wrapped, on a batch of real training data.
- :mod:`.update`: :func:`prove_update`, the same for the optimizer's update: an example
  moves none of its muted sub-network's parameters through the step.
- :mod:`.wrap`: :func:`turnover`, wrap a network built elsewhere (e.g. in a notebook).

Config-driven models (``torchvision:NAME``, ``timm:NAME``, ``package.module:function``)
are built by :mod:`memorization.method.models.external`.
"""

from __future__ import annotations

from .check import TurnoverCheck, check_turnover
from .errors import TurnoverSiteError
from .head import HiddenHead
from .model import TurnOverModel
from .proof import TurnoverProof, prove_turnover
from .sites import HEAD, Site, find_head
from .update import prove_update
from .wrap import turnover

__all__ = [
    "HEAD",
    "HiddenHead",
    "Site",
    "TurnOverModel",
    "TurnoverCheck",
    "TurnoverProof",
    "TurnoverSiteError",
    "check_turnover",
    "find_head",
    "prove_turnover",
    "prove_update",
    "turnover",
]
