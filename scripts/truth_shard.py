"""Snakemake adapter: the work is memorization.stages.truth_shard."""

from memorization.stages import run_from_snakemake

run_from_snakemake(snakemake, "truth_shard")  # noqa: F821 (injected by Snakemake)
