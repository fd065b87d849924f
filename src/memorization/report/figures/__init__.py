"""The paper's figures, one module each.

A figure module (``figN.py``) defines ``FIGURE``, a :class:`Figure`: the options it
takes (a JSON schema per option, checked with the config, so a typo such as
``windw`` is refused), which of its options name experiments and which artifacts it
needs from each, its drawing function and its claims (:mod:`memorization.report.claims`).
Adding a figure is adding one file here; :data:`FIGURES` finds it.

Figures only read artifacts (never train) and label everything from the artifacts'
own provenance: an experiment with random labels is never called uncorrupted.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from ...infra.files import atomic_write
from .base import FOOTNOTE, Figure, load_inputs

__all__ = ["FIGURES", "Figure", "figure", "load_inputs", "run_figure"]


def _discover() -> dict[str, Figure]:
    found: dict[str, Figure] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in ("base",):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        fig = getattr(module, "FIGURE", None)
        if isinstance(fig, Figure):
            found[fig.name] = fig
    return dict(sorted(found.items(), key=lambda kv: (len(kv[0]), kv[0])))


#: figure name (the config's key under ``figures:``) -> its module's Figure
FIGURES: dict[str, Figure] = _discover()


def figure(name: str) -> Figure:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    return FIGURES[name]


def run_figure(name: str, inputs: Mapping, options: Mapping, output, claims_output=None):
    """Draw figure ``name`` from its input paths; write its claims as JSON if asked."""
    fig = figure(name)
    defaults = {k: v.get("default") for k, v in fig.options.items() if "default" in v}
    options = defaults | dict(options)
    from ..claims import subsets_line, subsets_sources  # heavy (torch): only jobs draw

    arts = load_inputs(fig, options, inputs)
    note = subsets_line(subsets_sources(_datasets(arts)))
    token = FOOTNOTE.set(note)
    try:
        fig.draw(arts, options, output)
    finally:
        FOOTNOTE.reset(token)
    if claims_output is not None:
        claims = [asdict(c) for c in fig.claims(arts, options)]
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
