"""The stratified, seeded train/test split of a dataset that comes without one."""

from __future__ import annotations

import numpy as np

from ..spec import DatasetError
from .checks import some

__all__ = ["stratified_split"]


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int, where: str) -> np.ndarray:
    """``is_test`` of a stratified seeded split of the row indices (scikit-learn)."""
    from sklearn.model_selection import train_test_split  # sklearn is slow to import

    if not 0 < float(test_fraction) < 1:
        raise DatasetError(f"{where}: test_fraction must lie in (0, 1), got {test_fraction}")
    counts = np.bincount(labels)
    few = np.flatnonzero((counts > 0) & (counts < 2))
    if len(few):
        raise DatasetError(
            f"{where}: a stratified split needs at least 2 examples of every class; "
            f"class(es) {some(few.tolist())} have 1"
        )
    idx = np.arange(len(labels))
    try:
        _, test = train_test_split(
            idx, test_size=float(test_fraction), stratify=labels, random_state=int(seed)
        )
    except ValueError as err:
        raise DatasetError(
            f"{where}: cannot split with test_fraction={test_fraction}: {err}"
        ) from err
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return is_test
