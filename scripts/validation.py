"""Snakemake adapter: the work is memorization.stages.validation."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "validation")  # noqa: F821 (injected by Snakemake)
