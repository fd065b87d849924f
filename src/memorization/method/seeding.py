"""One seed for every random stream a training run draws from."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and NumPy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
