"""The figures' drawings and claims, one module each.

A figure is declared in :mod:`memorization.workflow.figures` (its options and the artifacts
it reads); the module here with the figure's name draws it: ``draw(artifacts, options,
output)`` and ``claims(artifacts, options)`` (:mod:`memorization.report.claims`), given the
loaded artifacts as ``artifacts[option][artifact]``. :data:`DRAWINGS` finds them.

Figures only read artifacts (never train) and label everything from the artifacts'
own provenance: an experiment with random labels is never called uncorrupted.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ...infra.files import atomic_write
from ...workflow.figures import FIGURES, Figure, figure
from .base import FOOTNOTE, load_inputs

__all__ = ["DRAWINGS", "Drawing", "drawing", "run_figure"]


@dataclass(frozen=True)
class Drawing:
    """A declared figure with its module's drawing and claims."""

    figure: Figure
    draw: Callable
    claims: Callable


def _discover() -> dict[str, Drawing]:
    found = {}
    for name, fig in FIGURES.items():
        module = importlib.import_module(f"{__name__}.{name}")
        found[name] = Drawing(fig, module.draw, module.claims)
    return found


#: figure name -> its declaration, drawing and claims
DRAWINGS: dict[str, Drawing] = _discover()


def drawing(name: str) -> Drawing:
    return DRAWINGS[figure(name).name]


def run_figure(name: str, inputs: Mapping, options: Mapping, output, claims_output=None):
    """Draw figure ``name`` from its input paths; write its claims as JSON if asked."""
    found = drawing(name)
    options = found.figure.defaults() | dict(options)
    from ..claims import subsets_line, subsets_sources  # heavy (torch): only jobs draw

    arts = load_inputs(found.figure, options, inputs)
    note = subsets_line(subsets_sources(_datasets(arts)))
    token = FOOTNOTE.set(note)
    try:
        found.draw(arts, options, output)
    finally:
        FOOTNOTE.reset(token)
    if claims_output is not None:
        claims = [asdict(c) for c in found.claims(arts, options)]
        for c in claims if note else ():
            c["evidence"] = f"{c['evidence']} ({note})"
        text = json.dumps(claims, indent=1, allow_nan=False)
        atomic_write(claims_output, lambda tmp: Path(tmp).write_text(text))


def _datasets(node):
    """Every dataset among a figure's loaded artifacts (nested mappings and lists)."""
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _datasets(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _datasets(value)
    elif hasattr(node, "attrs"):
        yield node
