"""Which GPUs a process sees, each named the same way in every process of the machine.

A card's key is its device UUID (``GPU-8f0c...``, as ``nvidia-smi -L`` prints it), else
its PCI bus id (``pci-00000000:3B:00.0``), else its ``CUDA_VISIBLE_DEVICES`` entry (or
its local index). A local index or a ``CUDA_VISIBLE_DEVICES`` entry names a card only
within one process's view: under SLURM with ``ConstrainDevices=yes`` every job sees its
own card renumbered as ``0``.

The ``_cuda_*`` functions and :func:`cuda_device_count` are the only ones that touch
``torch.cuda``; tests replace them (on :mod:`memorization.infra.device`) to stand in
for cards.
"""

from __future__ import annotations

import os
import re
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Card", "cuda_device_count", "normalize_uuid", "physical_ids", "visible_cards"]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def cuda_device_count() -> int:
    """Number of CUDA devices this process can see (0 without CUDA)."""
    import torch  # heavy: only the GPU jobs ask; the config check needs no torch otherwise

    try:
        if not torch.cuda.is_available():
            return 0
        return int(torch.cuda.device_count())
    except Exception:  # a broken driver counts as no GPU
        return 0


def _cuda_set_device(index: int) -> None:
    import torch  # heavy: as above

    torch.cuda.set_device(index)


def _cuda_device_name(index: int) -> str | None:
    import torch  # heavy: as above

    try:
        return torch.cuda.get_device_name(index)
    except Exception:
        return None


def _cuda_device_uuid(index: int) -> str | None:
    """UUID of local device ``index`` as nvidia-smi writes it (``GPU-xxxxxxxx-...``), or None."""
    import torch  # heavy: as above

    try:
        raw = torch.cuda.get_device_properties(index).uuid
    except Exception:
        return None
    return normalize_uuid(raw)


def _cuda_device_pci_bus_id(index: int) -> str | None:
    """PCI address of local device ``index`` (``00000000:3B:00.0``), or None."""
    import torch  # heavy: as above

    try:
        props = torch.cuda.get_device_properties(index)
        domain, bus, device = props.pci_domain_id, props.pci_bus_id, props.pci_device_id
    except Exception:
        return None
    if not (domain or bus or device):
        return None
    return f"{int(domain):08X}:{int(bus):02X}:{int(device):02X}.0"


def normalize_uuid(raw: object) -> str | None:
    """``GPU-<8-4-4-4-12 hex>`` from torch's uuid (its ``bytes`` or its string), else None.

    A ``GPU-``/``MIG-`` prefix already present is kept; an all-zero or empty
    uuid (some drivers, emulators) is None.
    """
    if raw is None:
        return None
    data = getattr(raw, "bytes", None)
    if isinstance(data, (bytes, bytearray, list, tuple)) and len(data) == 16:
        text = str(uuidlib.UUID(bytes=bytes(bytearray(data))))
    else:
        text = str(raw).strip()
    prefix = ""
    if text[:4].upper() in ("GPU-", "MIG-"):
        prefix, text = text[:4].upper(), text[4:]
    text = text.lower()
    if not text or set(text) <= {"0", "-"}:
        return None
    if not prefix and _UUID.fullmatch(text):
        prefix = "GPU-"
    return prefix + text


def physical_ids(count: int, cuda_visible_devices: str | None = None) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` entries of the ``count`` visible devices, local index order.

    Entry ``k`` of ``CUDA_VISIBLE_DEVICES`` (read from the environment when
    ``cuda_visible_devices`` is None) is local device ``k``; without it the
    ids are ``"0"`` .. ``str(count - 1)``. Should the runtime report more
    devices than the variable lists, the extra ones get ``"local-<k>"``.
    These name a card only within one process's view (a cgroup renumbers
    them); the lock key prefers the UUID (:func:`visible_cards`).
    """
    if cuda_visible_devices is None:
        cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cuda_visible_devices is None:
        return [str(k) for k in range(count)]
    entries = [e.strip() for e in cuda_visible_devices.split(",") if e.strip()]
    return [entries[k] if k < len(entries) else f"local-{k}" for k in range(count)]


@dataclass(frozen=True)
class Card:
    """One visible GPU: its local index (``cuda:<index>``) and the key its lock is named by."""

    index: int
    key: str
    source: str
    """Where the key comes from: ``device uuid``, ``PCI bus id``,
    ``CUDA_VISIBLE_DEVICES entry``, ``local index`` or ``fake device``."""

    def __str__(self) -> str:
        return f"cuda:{self.index} = {self.key}"


def visible_cards(env: Mapping[str, str] | None = None) -> list[Card]:
    """The CUDA devices this process sees, each keyed by UUID, else PCI bus id, else its
    ``CUDA_VISIBLE_DEVICES`` entry or local index ([] without GPU)."""
    env = os.environ if env is None else env
    count = cuda_device_count()
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    entries = physical_ids(count, cvd) if cvd is not None else [str(k) for k in range(count)]
    cards = []
    for k in range(count):
        if uuid := _cuda_device_uuid(k):
            cards.append(Card(k, uuid, "device uuid"))
        elif pci := _cuda_device_pci_bus_id(k):
            cards.append(Card(k, f"pci-{pci}", "PCI bus id"))
        else:
            source = "CUDA_VISIBLE_DEVICES entry" if cvd is not None else "local index"
            cards.append(Card(k, entries[k], source))
    return cards
