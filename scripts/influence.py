"""Snakemake adapter: the work is memorization.stages.influence."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "influence")  # noqa: F821 (injected by Snakemake)
