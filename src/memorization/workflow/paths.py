"""Where every artifact of the workflow lives, relative to the config's results folder.

The rules take their output patterns from :data:`PATTERNS` and the figures name their
inputs through :class:`Paths`, so a path is spelled in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARTIFACT_KINDS", "PATTERNS", "Paths"]

#: artifact -> path pattern under the results folder (Snakemake wildcards in braces)
PATTERNS: dict[str, str] = {
    "dataset": "data/{dataset}.nc",
    "labels": "{exp}/labels.nc",
    "score_replicate": "{exp}/replicates/scores_r{rep}.nc",
    "scores": "{exp}/scores.nc",
    "scores_test": "{exp}/scores_test.nc",
    "subsets": "{exp}/subsets.nc",
    "subsets_test": "{exp}/subsets_test.nc",
    "dynamics": "{exp}/dynamics.nc",
    "gradstats": "{exp}/gradstats.nc",
    "crosstrain": "{exp}/crosstrain.nc",
    "sweep": "{exp}/sweep/corrupt{level}.nc",
    "estimators": "{exp}/estimators.nc",
    "truth_shard": "{exp}/truth/shard{shard}.nc",
    "truth": "{exp}/truth.nc",
    "influence": "{exp}/influence.nc",
    "validation": "validation.nc",
    "figure": "{fig}.pdf",
    "figure_claims": "claims/{fig}.json",
    "claims": "claims.md",
    "claims_json": "claims.json",
}

#: artifact -> the kind recorded in the NetCDF file (memorization.artifacts.SCHEMAS)
ARTIFACT_KINDS: dict[str, str] = {
    "dataset": "dataset",
    "labels": "labels",
    "scores": "scores",
    "scores_test": "scores",
    "subsets": "subsets",
    "subsets_test": "subsets",
    "dynamics": "dynamics",
    "gradstats": "gradstats",
    "crosstrain": "crosstrain",
    "sweep": "dynamics",
    "score_replicate": "scores",
    "estimators": "estimators",
    "truth_shard": "truth_shard",
    "truth": "truth",
    "influence": "influence",
    "validation": "validation",
}


@dataclass(frozen=True)
class Paths:
    """Concrete paths of one workflow run: ``Paths("results").of("scores", exp="a")``."""

    results: str = "results"
    #: experiment name -> dataset name (for ``dataset``)
    datasets: tuple[tuple[str, str], ...] = ()
    #: experiment name -> corruption levels (for ``sweep``)
    levels: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def pattern(self, artifact: str) -> str:
        """The Snakemake pattern of an artifact, with the results folder."""
        return f"{self.results}/{PATTERNS[artifact]}"

    def of(self, artifact: str, exp: str | None = None, **wildcards) -> str | list[str]:
        """The path of ``artifact`` of experiment ``exp`` (a list for the sweep)."""
        if artifact == "dataset":
            return self.pattern("dataset").format(dataset=dict(self.datasets)[exp])
        if artifact == "validation":  # one per run, whatever the experiment
            return self.pattern("validation")
        if artifact == "sweep" and "level" not in wildcards:
            return [
                self.pattern("sweep").format(exp=exp, level=level)
                for level in dict(self.levels)[exp]
            ]
        return self.pattern(artifact).format(exp=exp, **wildcards)
