"""Snakemake adapter: the work is memorization.stages.estimators."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "estimators")  # noqa: F821 (injected by Snakemake)
