"""The workflow config's JSON schema, generated from the declared options.

Every key's type, bounds, enum, default and description come from the
:class:`~memorization.infra.options.Option` tables of the modules that use them: the
top-level keys (:data:`memorization.workflow.config.WORKFLOW_OPTIONS`), the
experiment keys (:data:`memorization.workflow.specs.EXPERIMENT_OPTIONS`), every
model's options (:data:`memorization.method.models.MODELS`, :mod:`.external`), every
dataset source's (:data:`memorization.data.sources.SOURCES`) and every figure's
(:data:`memorization.workflow.figures.FIGURES`). ``config/schema/config.schema.yaml``
is this schema written out for readers (``memorization schema`` writes it; a test
keeps the two the same).
"""

from __future__ import annotations

from ..data.sources import SOURCES
from ..infra.options import option_schema
from ..method.models import MODELS, external
from .config import WORKFLOW_OPTIONS
from .figures import FIGURES
from .specs import EXPERIMENT_OPTIONS, TRUTH_OPTIONS

__all__ = ["model_keys", "schema"]

NAME = "^[A-Za-z][A-Za-z0-9_-]*$"


def model_keys() -> dict[str, dict]:
    """Every model option key with its schema (an option shared by models appears once)."""
    out: dict[str, dict] = {}
    for entry in MODELS.values():
        for key, schema in option_schema(entry.options).items():
            out.setdefault(key, schema)
    for key, schema in option_schema(external.OPTIONS).items():
        out.setdefault(key, schema)
    for schema in out.values():
        schema.pop("default", None)  # each model has its own defaults
    return out


def _experiment() -> dict:
    props = option_schema(EXPERIMENT_OPTIONS)
    props["truth"] = {
        **props["truth"],
        "additionalProperties": False,
        "properties": option_schema(TRUTH_OPTIONS),
    }
    props.update({k: v for k, v in model_keys().items() if k not in props})
    required = [k for k, opt in EXPERIMENT_OPTIONS.items() if opt.required]
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": required,
    }


def _dataset() -> dict:
    """A user dataset: ``source`` and that source's options (each source its own branch)."""
    branches = []
    for name, module in SOURCES.items():
        if name == "builtin":
            continue
        props = {"source": {"const": name}, **option_schema(module.OPTIONS)}
        required = ["source", *(k for k, o in module.OPTIONS.items() if o.required)]
        branches.append(
            {
                "if": {"properties": {"source": {"const": name}}},
                "then": {"properties": props, "required": required, "additionalProperties": False},
            }
        )
    sources = sorted(n for n in SOURCES if n != "builtin")
    return {
        "type": "object",
        "properties": {"source": {"type": "string", "enum": sources}},
        "required": ["source"],
        "allOf": branches,
    }


def schema() -> dict:
    """The full JSON schema of a workflow config."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "memorization workflow config",
        "description": "Generated from the options the library declares (memorization.workflow"
        ".schema); checked with the semantic checks of memorization.workflow.check before any "
        "job runs. Unknown keys are refused at every level.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **option_schema(WORKFLOW_OPTIONS),
            "datasets": {
                "type": "object",
                "description": "your own datasets by name: source and its options",
                "propertyNames": {"pattern": NAME},
                "additionalProperties": _dataset(),
            },
            "experiments": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": NAME},
                "additionalProperties": _experiment(),
            },
            "figures": {
                "type": "object",
                "description": "figure -> its options; the options of each figure come from "
                "its module",
                "properties": {name: fig.schema() for name, fig in FIGURES.items()},
                "additionalProperties": False,
            },
        },
        "required": ["experiments"],
    }
