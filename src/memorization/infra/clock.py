"""The clock a training's compute is timed with, so that a cost measured on shared cores is
still its cost.

On a CPU: the process's CPU seconds (``time.process_time``, every thread's), which count
the compute and not the time the job waited for a core that other jobs held; the wall
clock of a job that shared 2 cores with 3 others ran 2 to 10 times its compute. On a GPU:
the wall clock (``time.perf_counter``), the card's time, while the CPU mostly waits.
Artifacts record which one timed their seconds (``clock``), and a ratio of two measured
seconds is only taken between the same clocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CPU_CLOCK", "WALL_CLOCK", "clock_kind", "compute_clock"]

#: the process's CPU seconds, every thread's (a job on a CPU)
CPU_CLOCK = "process_cpu"
#: wall seconds (a job on a GPU, and every artifact that does not say)
WALL_CLOCK = "wall"


def clock_kind(device) -> str:
    """:data:`CPU_CLOCK` for a CPU device (``"cpu"`` or a ``torch.device``), else
    :data:`WALL_CLOCK`."""
    return CPU_CLOCK if str(device).split(":")[0] == "cpu" else WALL_CLOCK


def compute_clock(device) -> Callable[[], float]:
    """The clock (seconds, a difference of two readings) to time compute on ``device``."""
    return time.process_time if clock_kind(device) == CPU_CLOCK else time.perf_counter
