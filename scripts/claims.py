"""Snakemake adapter: the work is memorization.stages.claims."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "claims")  # noqa: F821 (injected by Snakemake)
