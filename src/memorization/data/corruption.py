"""Label corruption: replace K training labels with random labels.

Two modes:

- ``uniform`` (the default, as Zhang et al. 2017 and Arpit et al. 2017 do, and as the
  paper's "random labels"): each of the K chosen examples gets a label drawn uniformly
  from *all* classes, so about 1/classes of them keep their class by chance;
- ``different``: the label is drawn from the ``classes - 1`` *other* classes, so every
  chosen example is mislabelled. At 100 % corruption this makes "not the true class"
  learnable, and the test accuracy falls below chance.

``corrupted`` marks the K examples whose label was drawn; ``label != true_label`` marks
the ones that now carry a wrong label (``mislabeled``). Every random-label ROC AUC of
the workflow uses ``mislabeled``: an example whose drawn label is its true class is a
correctly labelled example.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CORRUPTION_MODES", "corrupt_labels"]

CORRUPTION_MODES = ("uniform", "different")


def corrupt_labels(
    true_labels: np.ndarray, k: int, n_classes: int, seed: int, mode: str = "uniform"
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, corrupted)``: ``k`` examples, chosen by ``seed``, get random labels.

    The chosen examples do not depend on ``mode``; with ``uniform`` the new label is
    uniform over all ``n_classes``, with ``different`` uniform over the other classes.
    """
    if mode not in CORRUPTION_MODES:
        raise ValueError(f"corruption must be one of {CORRUPTION_MODES}, got {mode!r}")
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
    if mode == "uniform":
        labels[chosen] = rng.integers(0, n_classes, size=k)
    else:
        shift = rng.integers(1, n_classes, size=k)
        labels[chosen] = (true_labels[chosen] + shift) % n_classes
    return labels, corrupted
