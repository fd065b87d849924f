"""The JSON schema's complaints about a config, in words, naming the key meant if misspelled."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from jsonschema import Draft202012Validator

from ..schema import schema


def _path(parts) -> str:
    return ".".join(str(p) for p in parts)


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _schema_errors(config: Mapping) -> tuple[list[str], set[tuple]]:
    """The schema's complaints, and the paths (up to the experiment, dataset or figure
    level) they concern: those are not checked further."""
    errors, bad = [], set()
    validator = Draft202012Validator(schema())
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        path = list(err.absolute_path)
        bad.add(tuple(path[:2]))
        errors.extend(_describe(err, path))
    return errors, bad


def _describe(err, path) -> list[str]:
    where = _path(path) or "<top level>"
    if err.validator == "additionalProperties":
        allowed = err.schema.get("properties", {})
        prefix = f"{where}." if path else ""
        out = []
        for key in sorted(set(err.instance) - set(allowed), key=str):
            hint = _suggest(key, allowed) or f"; known here: {', '.join(sorted(allowed))}"
            out.append(f"{prefix}{key}: unknown key{hint}")
        return out
    if err.validator == "type" and isinstance(err.instance, str):
        return [
            f"{where}: {err.instance!r} is a string, expected {err.validator_value} "
            "(quote nothing; write numbers as 0.001 or 1e-3)"
        ]
    if err.validator == "enum":
        hint = _suggest(err.instance, err.validator_value)
        return [f"{where}: {err.instance!r} is not one of {err.validator_value}{hint}"]
    if err.validator == "propertyNames":
        return [
            f"{where}: the name {err.instance!r} must start with a letter and hold only "
            "letters, digits, _ and -"
        ]
    return [f"{where}: {err.message}"]
