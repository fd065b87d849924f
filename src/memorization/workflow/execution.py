"""Where and how fast a job runs: the execution settings of a workflow config.

They are top-level config keys (each an :class:`~memorization.infra.options.Option`,
declared here once), recorded in provenance and never a reason to rerun a job: the
device, the torch threads, how often a training checkpoints, where torchvision
datasets lie and whether they may be downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..infra.options import Option, resolve

__all__ = ["EXECUTION_OPTIONS", "Execution"]

#: the execution settings among the config's top-level keys
EXECUTION_OPTIONS: dict[str, Option] = {
    "data_root": Option(
        "data",
        "folder holding torchvision datasets (mnist, fashion_mnist, cifar10, source: torchvision)",
        {"type": "string", "minLength": 1},
    ),
    "download": Option(
        False, "allow torchvision to download missing datasets", {"type": "boolean"}
    ),
    "device": Option(
        "auto",
        "where training jobs run (an execution setting, never a reason to rerun)",
        {"type": "string", "enum": ["auto", "cpu", "cuda"]},
    ),
    "threads": Option(
        1,
        "torch threads of every training job, whatever --cores says (an execution setting)",
        {"type": "integer", "minimum": 1, "maximum": 256},
    ),
    "checkpoint_every": Option(
        5,
        "training jobs save a resumable checkpoint every this many epochs",
        {"type": "integer", "minimum": 1},
    ),
}


def _default(key: str):
    return EXECUTION_OPTIONS[key].default


@dataclass(frozen=True)
class Execution:
    """Where and how fast a job runs: recorded in provenance, never a reason to rerun."""

    device: str = _default("device")
    threads: int = _default("threads")
    checkpoint_every: int = _default("checkpoint_every")
    data_root: str = _default("data_root")
    download: bool = _default("download")

    @classmethod
    def from_config(cls, config: Mapping) -> Execution:
        """The execution settings of a workflow config (its defaults for keys not given)."""
        given = resolve(EXECUTION_OPTIONS, config)
        return cls(
            device=given["device"],
            threads=int(given["threads"]),
            checkpoint_every=int(given["checkpoint_every"]),
            data_root=str(given["data_root"]),
            download=bool(given["download"]),
        )
