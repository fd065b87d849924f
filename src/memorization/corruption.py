"""Label corruption: replace K training labels with a uniformly random *different* class."""

from __future__ import annotations

import numpy as np

__all__ = ["corrupt_labels"]


def corrupt_labels(
    true_labels: np.ndarray, k: int, n_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, corrupted): ``k`` labels, chosen by ``seed``, moved to another class.

    Each corrupted label is drawn uniformly from the ``n_classes - 1`` classes
    other than the true one, so every corrupted example really is mislabelled.
    """
    true_labels = np.asarray(true_labels, dtype=np.int64)
    n = len(true_labels)
    if not 0 <= k <= n:
        raise ValueError(f"corrupt must be between 0 and the {n} training examples, got {k}")
    if n_classes < 2:
        raise ValueError("label corruption needs at least 2 classes")
    rng = np.random.default_rng([int(seed), 0xC0])
    chosen = rng.choice(n, size=k, replace=False)
    corrupted = np.zeros(n, dtype=bool)
    corrupted[chosen] = True
    labels = true_labels.copy()
    shift = rng.integers(1, n_classes, size=k)
    labels[chosen] = (true_labels[chosen] + shift) % n_classes
    return labels, corrupted
