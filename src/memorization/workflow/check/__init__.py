"""Every problem of a workflow config, by key, before any job runs.

:func:`check_config` checks a config against the generated JSON schema
(:mod:`memorization.workflow.schema`) and against what a schema cannot express:
datasets that exist and can be read, sizes against each dataset, models that can be
built with their options, turn-over masks that are distinct for every example (and,
for a model of your own, the zero-gradient property on a small batch), figures naming
experiments that define what they draw, the results folder, and where jobs run
locally the device, the memory and the disk they need. It lists *every* problem at once, each
with its key path, and suggests the key meant when one is misspelled. A key the
schema refuses is not checked further (its value has the wrong type).

One module per part: :mod:`.schema_errors`, :mod:`.datasets`, :mod:`.recipe`,
:mod:`.model` (the masks' arithmetic is :mod:`memorization.method.turnover.collisions`),
:mod:`.experiment`, :mod:`.figures`, :mod:`.host`, and :mod:`.whole`, which runs them.
"""

from __future__ import annotations

from ..config import ConfigError
from .datasets import dataset_infos
from .experiment import RESERVED
from .whole import check, check_config, validate_config

__all__ = ["RESERVED", "ConfigError", "check", "check_config", "dataset_infos", "validate_config"]
