"""Snakemake adapter: the work is memorization.stages.corrupt_labels."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "corrupt_labels")  # noqa: F821 (injected by Snakemake)
