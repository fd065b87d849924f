"""How an artifact was made: the config slice and its hash, versions, the code that ran."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml

from .. import __version__
from ..infra.files import stable_hash

__all__ = ["CODE_ROOT", "code_commit", "machine", "provenance", "slice_hash"]

#: the folder of the memorization package that is running (recorded in every artifact)
CODE_ROOT = Path(__file__).resolve().parents[1]

slice_hash = stable_hash


@functools.cache
def code_commit() -> str:
    """The git commit of the checkout the running package lies in ("unknown" outside one),
    with ``+dirty`` when its files differ from the commit."""

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, check=True, cwd=CODE_ROOT
        )
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", str(CODE_ROOT))
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


@functools.cache
def machine() -> str:
    """This machine in words: CPU model and cores, and its GPUs."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    text = f"{os.cpu_count()} CPU cores ({model or platform.machine()})"
    import torch  # heavy dependency: the workflow's parse imports this module

    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())}
        text += f", GPUs: {', '.join(sorted(names))}"
    return text


def provenance(
    config: Mapping | None = None,
    *,
    experiment: str = "",
    device: str = "cpu",
    threads: int | None = None,
    **extra,
) -> dict:
    """Global attributes describing how an artifact was made.

    ``config`` is the artifact's config slice (:mod:`memorization.workflow.slices`
    params); it is stored as YAML with its hash (``config_hash``), which the next
    stage checks. ``device`` and ``threads`` are execution settings: recorded, never
    hashed. ``code`` is the folder of the package that ran, ``git_commit`` its
    checkout's commit and ``source_hash`` a hash of its source files.
    """
    import torch  # heavy dependency: the workflow's parse imports this module
    import xarray as xr  # heavy dependency: as torch

    from ..method.checkpoint import source_hash  # heavy dependency: the method imports torch

    config = dict(config or {})
    attrs = {
        "experiment": str(experiment),
        "config": yaml.safe_dump(config, sort_keys=True),
        "config_hash": slice_hash(config),
        "memorization_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "device": str(device),
        "threads": int(threads if threads is not None else torch.get_num_threads()),
        "code": str(CODE_ROOT),
        "git_commit": code_commit(),
        "source_hash": source_hash(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    seed = _find_seed(config)
    if seed is not None:
        attrs["seed"] = seed
    for key, value in extra.items():
        attrs[key] = value if isinstance(value, (str, int, float)) else str(value)
    return attrs


def _find_seed(config: Mapping) -> int | None:
    """The experiment's seed, wherever the slice keeps it."""
    for path in (("seed",), ("labels", "seed"), ("scores", "seed")):
        value = config
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, int):
            return value
    return None
