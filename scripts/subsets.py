"""Snakemake adapter: the work is memorization.stages.subsets."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "subsets")  # noqa: F821 (injected by Snakemake)
