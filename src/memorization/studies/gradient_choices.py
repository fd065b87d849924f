"""The choices of the gradient statistics' config keys, without the statistics: the
config's typed specs read them without importing torch (:mod:`.gradient_statistics` and
:mod:`.gradstats` re-export them where they use them).
"""

from __future__ import annotations

__all__ = ["COSINE_PAIRS", "METHODS"]

#: what the cosine similarity is taken over (see
#: :func:`~memorization.studies.gradient_statistics.gradient_statistics`)
COSINE_PAIRS = ("probe", "batch")

#: the accepted values of ``method`` (:mod:`.gradstats`: per-example gradient statistics)
METHODS = ("auto", "hooks", "backpack", "func")
