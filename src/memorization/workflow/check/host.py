"""Where the jobs run: the results folder, and for local jobs the device, precision and memory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ...infra.device import cuda_device_count
from ...method.precision import PRECISIONS, supports
from ..config import results_folder
from ..registry import STAGES
from ..resources import host_bytes, model_cost
from ..specs import Experiment


def _check_results(config: Mapping) -> list[str]:
    raw = config.get("results", "results")
    if not isinstance(raw, str) or not raw:
        return []
    folder = Path(results_folder(raw))
    if folder == Path("/"):
        return ["results: '/' is the filesystem root; give the results a folder of their own"]
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                return [
                    f"results: {raw!r} lies inside {str(parent)!r}, which is a file, not a folder"
                ]
            if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_in(parent):
                return [
                    f"results: {raw!r} cannot be created or written ({str(parent)!r} is not "
                    "writable); set results: to a folder you can write"
                ]
            break
    return []


def _can_create_in(folder: Path) -> bool:
    """Whether a folder can be made in ``folder`` (tried: permissions alone say yes for
    root, and for /proc or a read-only mount)."""
    import tempfile  # only for this probe

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".memorization-check-", dir=folder))
    except OSError:
        return False
    return True


def _check_memory(config: Mapping, infos: Mapping, valid: list[str]) -> list[str]:
    """Refuse an experiment whose turn-over training cannot fit in this machine's memory."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    device = "cpu" if config.get("device") == "cpu" or cuda_device_count() == 0 else "cuda"
    errors = []
    for name in valid:
        exp = config["experiments"][name]
        parsed = Experiment.from_config(
            name, exp, config.get("datasets"), info=infos[exp["dataset"]]
        )
        need = host_bytes(STAGES["scores_replicate"].passes(parsed), parsed, device=device)
        if need > total:
            errors.append(
                f"experiments.{name}: its training needs about {need / 2**30:.0f} GiB of memory "
                f"(the model: {model_cost(parsed).params:,} parameters), more than the "
                f"{total / 2**30:.0f} GiB of this machine, where the jobs run; make the model "
                "smaller or run on a cluster profile"
            )
    return errors


def _check_device(config: Mapping) -> list[str]:
    if config.get("device") != "cuda" or cuda_device_count() > 0:
        return []
    return [
        "device: 'cuda' asks for a GPU, but none is visible on this machine, where the jobs "
        "run (use device: auto or cpu, or run on a cluster profile whose nodes have GPUs)"
    ]


def _check_precision(config: Mapping, experiments: Mapping) -> list[str]:
    """Refuse a ``precision`` the device the jobs run on here cannot compute natively."""
    device = "cpu" if config.get("device") == "cpu" or cuda_device_count() == 0 else "cuda"
    errors = []
    for name, exp in experiments.items():
        wanted = exp.get("precision", "fp32") if isinstance(exp, Mapping) else "fp32"
        if wanted not in PRECISIONS or supports(wanted, device):
            continue
        if device == "cpu":
            what = f"this CPU, where the jobs run, has no {wanted} kernels (it would emulate them)"
        else:
            what = f"the GPU the jobs run on ({torch.cuda.get_device_name(0)}) has no {wanted}"
        alt = " or bf16" if wanted == "fp16" and supports("bf16", device) else ""
        errors.append(
            f"experiments.{name}.precision: {wanted}: {what}; use fp32{alt}, or run where "
            f"{wanted} is native"
        )
    return errors
