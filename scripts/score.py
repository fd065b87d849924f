"""Snakemake adapter: the work is memorization.stages.score."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "score")  # noqa: F821 (injected by Snakemake)
