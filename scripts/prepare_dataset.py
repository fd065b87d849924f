"""Snakemake adapter: the work is memorization.stages.prepare_dataset."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "prepare_dataset")  # noqa: F821 (injected by Snakemake)
