"""Snakemake adapter: the work is memorization.stages.crosstrain."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "crosstrain")  # noqa: F821 (injected by Snakemake)
