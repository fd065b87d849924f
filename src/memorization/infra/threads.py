"""How many CPU threads a job's torch uses (the rule's ``threads``)."""

from __future__ import annotations

__all__ = ["resolve_threads"]


def resolve_threads(n: int) -> int:
    """Give torch ``n`` intra-op threads (the rule's ``threads``); return ``n``."""
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be at least 1, not {n}")
    import torch  # heavy: the jobs set it; the workflow's start needs no torch

    torch.set_num_threads(n)
    return n
