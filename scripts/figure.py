"""Snakemake adapter: the work is memorization.stages.figure."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "figure")  # noqa: F821 (injected by Snakemake)
