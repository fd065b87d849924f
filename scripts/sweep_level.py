"""Snakemake adapter: the work is memorization.stages.sweep_level."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "sweep_level")  # noqa: F821 (injected by Snakemake)
