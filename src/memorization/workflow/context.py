"""What a stage function gets: one :class:`StageContext` instead of a dozen arguments.

A stage is called as ``run(ctx)``. The context holds the stage's name (the artifact
kind it writes), its output path, its config slice's params, its input paths (named
by the stage that made each: ``labels``, ``subsets``, ...), the slices those inputs
must have been made from (``expect``) and the execution settings (device, threads,
checkpoints; they decide where and how fast a job runs, never what it computes).
Its methods do what every stage does: open an input and check its origin, lease a
device, checkpoint, write the artifact with its provenance.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..infra.files import preflight
from .execution import Execution

if TYPE_CHECKING:  # the heavy libraries a job needs, not the Snakefile that names it
    import torch
    import xarray as xr

    from ..method.checkpoint import Checkpoint
    from .artifacts import Schema

__all__ = ["Execution", "StageContext"]

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """Everything one run of a stage needs (see the module docstring)."""

    stage: str
    output: str
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    expect: Mapping[str, Any] = field(default_factory=dict)
    experiment: str = ""
    execution: Execution = field(default_factory=Execution)
    outputs: Mapping[str, str] = field(default_factory=dict)
    #: the device of the lease in progress (set by :meth:`lease`)
    device: torch.device | None = None
    started: float = field(default_factory=time.perf_counter)

    def slice(self, cls):
        """The stage's config slice, typed (``cls.from_params(params)``)."""
        return cls.from_params(self.params)

    def paths(self, name: str) -> list[str]:
        value = self.inputs.get(name, ())
        return [value] if isinstance(value, str) else list(value)

    def open(self, name: str, kind: str | None = None) -> xr.Dataset:
        """Open input ``name`` (an artifact of the stage of that name, unless ``kind``)
        and refuse it when it was not made from the slice this config expects."""
        from .artifacts import check_origin, open_artifact  # heavy dependency: xarray

        (path,) = self.paths(name)
        ds = open_artifact(path, kind or name)
        if name in self.expect:
            check_origin(ds, path, self.expect[name])
        return ds

    def open_all(self, name: str, kind: str | None = None) -> list[xr.Dataset]:
        """Open every path of a list input (replicates, shards), each checked."""
        from .artifacts import check_origin, open_artifact  # heavy dependency: xarray

        expected = self.expect.get(name)
        out = []
        for k, path in enumerate(self.paths(name)):
            ds = open_artifact(path, kind or name)
            if expected is not None:
                check_origin(ds, path, expected[k])
            out.append(ds)
        return out

    def preflight(self, needed_bytes: int = 0) -> None:
        """Fail before any compute when the output cannot be written (or has no room)."""
        preflight(self.output, needed_bytes)

    def checkpoint(self, part: int | None = None, **identity) -> Checkpoint:
        """The resumable checkpoint of this stage's training, beside its output (``part``:
        one of several seeds it trains)."""
        from ..method.checkpoint import Checkpoint  # heavy dependency: torch

        return Checkpoint.for_output(
            self.output,
            self.stage,
            self.params,
            self.execution.checkpoint_every,
            part,
            **identity,
        )

    @contextlib.contextmanager
    def lease(self) -> Iterator[torch.device]:
        """Set the torch threads and hold the job's device (a GPU lease, or the CPU)."""
        from ..infra.device import lease_device, resolve_threads  # heavy dependency: torch

        resolve_threads(self.execution.threads)
        with lease_device(self.execution.device) as dev:
            self.device = dev
            yield dev

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def write(
        self,
        ds: xr.Dataset,
        schema: Schema,
        *,
        classes: Sequence[str] | None = None,
        **extra,
    ) -> None:
        """Write the artifact with its provenance (slice, execution settings, seconds)."""
        from .artifacts import write_artifact  # heavy dependency: xarray
        from .provenance import provenance  # heavy dependency: torch

        attrs = provenance(
            self.params,
            experiment=self.experiment,
            device=self.device or "cpu",
            threads=self.execution.threads,
            **extra,
        )
        write_artifact(ds, self.output, self.stage, schema, attrs, classes)
