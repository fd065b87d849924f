"""How far :mod:`.resources`' CPU estimates were from measured job times.

Each :class:`Measurement` is one training job of an example config, run alone with the
config's threads, and the seconds of its benchmark file (``benchmarks/EXP/STAGE.tsv``:
the whole job, start-up included). :data:`BAND` is the range of estimate / measured
over them (the estimate of :func:`memorization.workflow.plan.plan_seconds`: compute
plus start-up); ``memorization plan`` prints it, and a test recomputes the estimates
and keeps them in that band.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BAND", "HARDWARE", "MEASURED", "Measurement", "band_text"]


@dataclass(frozen=True)
class Measurement:
    configfile: str
    experiment: str
    stage: str
    seconds: float
    """Wall time of the job (its benchmark file's ``s``)."""


HARDWARE = "1 torch thread on 2 cores of an AMD EPYC, no GPU"
MEASURED = (
    Measurement("config/examples/torchvision.yaml", "digits_resnet", "scores", 151.9),
    Measurement("config/examples/arrays.yaml", "digits_mlp", "scores", 14.6),
    Measurement("config/examples/image_folder.yaml", "digits_vgg", "scores", 25.2),
)
BAND = (1.2, 1.5)
"""Estimate / measured time, lowest and highest over :data:`MEASURED` (rounded out to
a tenth)."""


def band_text() -> str:
    """The line ``memorization plan`` prints under its estimates."""
    low, high = BAND
    return (
        f"CPU estimates were {low:.1f}-{high:.1f}x the measured time of {len(MEASURED)} "
        f"training jobs of the example configs ({HARDWARE}); the GPU rate is assumed, "
        "not measured"
    )
