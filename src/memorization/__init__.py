"""Per-example memorization scores with turn-over dropout (Liu, Lin, Jaggi).

The layers (ARCHITECTURE.md): :mod:`memorization.data` (datasets), :mod:`memorization.method`
(turn-over masks, models, training, memorization scores), :mod:`memorization.studies` (how
easy and difficult examples are learnt), :mod:`memorization.trust` (ground truth, peer
estimators, validation), :mod:`memorization.workflow` (the Snakemake workflow's stages, config
and artifacts), :mod:`memorization.report` (figures, claims), :mod:`memorization.infra`.
From Python, :func:`score` and :func:`turnover` (:mod:`memorization.api`).
"""

__version__ = "0.8.0"


def __getattr__(name: str):
    # the notebook API on demand: importing the package stays light (no torch)
    if name in ("score", "prepare", "turnover"):
        from . import api  # noqa: PLC0415 - lazy, see above

        return getattr(api, name)
    raise AttributeError(f"module 'memorization' has no attribute {name!r}")
