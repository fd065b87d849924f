"""The report's stages: a ``figure`` with its claims, the ``claims`` table, an experiment's
``overview`` page.

The stage registry (:mod:`memorization.workflow.registry`) names these functions by their
dotted path and imports them when a job runs one: the report imports the workflow, never
the reverse."""

from __future__ import annotations

import datetime
import logging

from ..workflow.artifacts import open_artifact
from ..workflow.context import StageContext
from ..workflow.provenance import code_commit, machine
from ..workflow.stages.estimates import SourceSlice
from .claims import read_claims, subnetwork_check, subsets_sources, write_claims
from .figures import run_figure
from .overview import draw_overview

__all__ = ["claims", "figure", "overview"]

log = logging.getLogger(__name__)


def figure(ctx: StageContext) -> None:
    """Draw one figure from its artifacts (never trains) and write the claims it supports."""
    run_figure(
        ctx.params["figure"],
        ctx.inputs,
        dict(ctx.params["options"]),
        ctx.output,
        ctx.outputs.get("claims"),
    )


def claims(ctx: StageContext) -> None:
    """Gather every figure's claims and the sub-network check of every scored experiment."""
    gathered = []
    for path in ctx.paths("figures"):
        gathered.extend(read_claims(path))
    plain = {}
    for path in ctx.paths("dynamics"):
        ds = open_artifact(path, "dynamics")
        acc = ds["accuracy"].sel(run="all", split="test", subset="full").isel(epoch=-1)
        plain[ds.attrs.get("experiment")] = float(acc.mean())  # (the mean over the seeds)
    for path in ctx.paths("scores"):
        sc = open_artifact(path, "scores")
        gathered.append(subnetwork_check(sc, plain.get(sc.attrs.get("experiment"))))
    today = datetime.date.today().isoformat()
    run = f"Run of commit {code_commit()[:12]} on {machine()}, {today}."
    write_claims(gathered, ctx.output, ctx.outputs["json"], run, _subsets_from(ctx))
    supported = sum(c.verdict == "supported" for c in gathered)
    log.info("%d of %d claims supported", supported, len(gathered))


def overview(ctx: StageContext) -> None:
    """One page per experiment: score histogram, sub-networks, most and least memorized."""
    source = ctx.slice(SourceSlice).subsets_from
    draw_overview(ctx.open("scores"), ctx.open("dataset"), ctx.output, subsets_from=source)


def _subsets_from(ctx: StageContext) -> dict[str, str]:
    """experiment -> the estimate that drew its subsets (where not the turn-over score),
    from the subsets artifacts the rule gives (those drawn from an estimate)."""
    return subsets_sources(open_artifact(path, "subsets") for path in ctx.paths("subsets"))
