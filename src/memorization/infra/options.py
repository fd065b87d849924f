"""Declared options: a default, a JSON-schema fragment and a sentence, in one place.

Every config key of an experiment, a model or a dataset source is an :class:`Option`
in the module that uses it. The workflow's JSON schema is generated from them
(:mod:`memorization.workflow.schema`) and the typed specs apply their defaults
(:func:`resolve`), so a default is written once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REQUIRED", "Option", "option_schema", "resolve"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: the default of an option that has none: the config must give it
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Option:
    """One config key: its default (or :data:`REQUIRED`), its JSON schema, what it means."""

    default: Any = REQUIRED
    doc: str = ""
    schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def json_schema(self) -> dict:
        out = dict(self.schema)
        if self.doc:
            out["description"] = self.doc
        if not self.required and self.default is not None:
            out["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        return out


def option_schema(options: Mapping[str, Option]) -> dict[str, dict]:
    """``{key: JSON schema}`` of a table of options."""
    return {key: opt.json_schema() for key, opt in options.items()}


def resolve(options: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """The value of every option that has one: ``given``'s, else the default.

    Required options missing from ``given`` are left out (the schema names them).
    """
    out = {}
    for key, opt in options.items():
        if key in given:
            out[key] = given[key]
        elif not opt.required:
            out[key] = opt.default
    return out
