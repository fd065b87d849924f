"""The compute clock that measured costs are timed with."""

import time

import torch

from memorization.infra.clock import CPU_CLOCK, WALL_CLOCK, clock_kind, compute_clock


def test_a_cpu_job_times_its_compute_not_its_wait():
    """The compute clock of a CPU job stands still while the job waits (a core held by
    another job looks the same to it) and runs while it computes; a GPU job's is the wall's."""
    assert clock_kind("cpu") == clock_kind(torch.device("cpu")) == CPU_CLOCK
    assert clock_kind("cuda:1") == WALL_CLOCK and compute_clock("cuda") is time.perf_counter
    clock = compute_clock("cpu")
    start, wall = clock(), time.perf_counter()
    time.sleep(0.3)
    assert clock() - start < 0.1 and time.perf_counter() - wall >= 0.3
    start, wall = clock(), time.perf_counter()
    while clock() - start < 0.1 and time.perf_counter() - wall < 30:  # busy: it computes
        pass
    assert clock() - start >= 0.1
