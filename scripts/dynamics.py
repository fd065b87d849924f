"""Snakemake adapter: the work is memorization.stages.dynamics."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "dynamics")  # noqa: F821 (injected by Snakemake)
