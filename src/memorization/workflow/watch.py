"""The user's data as an input of the workflow: each dataset's fingerprint in its spec.

:func:`watch_data` gives every dataset of a parsed config (and every experiment's
dataset) the fingerprint of its files now (:mod:`memorization.data.fingerprint`). The
fingerprint is part of the dataset's params, so it is in the slice of every artifact
made from the dataset: a changed arrays file, image folder, torchvision root or Hugging
Face dataset reruns the dataset and everything downstream, and every stage refuses an
artifact of the old data by its origin check.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from ..data.fingerprint import with_fingerprint
from ..data.spec import DatasetError
from .config import WorkflowConfig

__all__ = ["watch_data"]


def watch_data(config: WorkflowConfig) -> WorkflowConfig:
    """``config`` with the fingerprint of each dataset's files (exit 1 when unreadable)."""
    root = config.execution.data_root
    datasets, problems = {}, []
    for name, spec in config.datasets.items():
        try:
            datasets[name] = with_fingerprint(spec, root)
        except DatasetError as err:
            problems.append(f"dataset {name!r}: {err}")
    if problems:
        print(f"the datasets' files cannot be read: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(1)
    experiments = {
        n: replace(e, dataset=datasets[e.dataset.name]) for n, e in config.experiments.items()
    }
    return replace(config, datasets=datasets, experiments=experiments)
