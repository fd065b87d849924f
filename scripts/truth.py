"""Snakemake adapter: the work is memorization.stages.truth."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "truth")  # noqa: F821 (injected by Snakemake)
