"""Turn-over dropout on anyone's model: find the sites, mask them with hooks, prove it.

- :mod:`.sites`: where masks go (the classifier's input, or named modules' outputs).
- :mod:`.head`: bias-free classifier heads, optionally with a masked hidden layer.
- :mod:`.model`: :class:`TurnOverModel`, the wrapper that applies the masks with hooks.
- :mod:`.proof`: :func:`prove_turnover`, the zero-gradient check and its report.
- :mod:`.wrap`: :func:`turnover`, wrap a network built elsewhere (e.g. in a notebook).

Config-driven models (``torchvision:NAME``, ``timm:NAME``, ``package.module:function``)
are built by :mod:`memorization.method.models.external`.
"""

from __future__ import annotations

from .errors import TurnoverSiteError
from .head import HiddenHead
from .model import TurnOverModel
from .proof import TurnoverProof, prove_turnover
from .sites import HEAD, Site, find_head
from .wrap import turnover

__all__ = [
    "HEAD",
    "HiddenHead",
    "Site",
    "TurnOverModel",
    "TurnoverProof",
    "TurnoverSiteError",
    "find_head",
    "prove_turnover",
    "turnover",
]
