"""The error every refused turn-over site raises."""

from __future__ import annotations

__all__ = ["TurnoverSiteError"]


class TurnoverSiteError(ValueError):
    """A turn-over site that cannot be used: unknown, run twice, or breaking turn-over.

    Turn-over dropout needs every example's muted sub-network to receive exactly no
    gradient from that example's unmuted loss; a site that cannot guarantee it (or that
    splits no parameter between the two sub-networks) is refused with this error, whose
    message names the module or parameter at fault.
    """
