"""Snakemake adapter: the work is memorization.stages.gradstats."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "gradstats")  # noqa: F821 (injected by Snakemake)
