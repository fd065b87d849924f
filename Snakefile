"""Memorization scores with turn-over dropout, and what they do to optimization.

Liu, Lin, Jaggi: "Understanding Memorization from the Perspective of Optimization
via Efficient Influence Estimation". `snakemake --cores 2` builds every figure of
the embedded default; `--configfile config/paper.yaml` runs the paper's settings.
"""

import os
import sys

# The library in src/ is imported by this process (rules/common.smk) and by every job.
# A `script:` job appends this process's sys.path to its own, so a job in the conda env
# of envs/memorization.yaml (the dependencies, not the library) imports it from here
# too. PYTHONPATH would not do: Snakemake removes it from the environment of conda jobs.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

# The embedded default, unless --configfile names another config, which then stands
# alone (config/paper.yaml is not merged into the default's experiments).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/score.smk"
include: "rules/dynamics.smk"
include: "rules/trust.smk"
include: "rules/figures.smk"


rule all:
    """Every figure of the config and the table of the paper's claims they support."""
    default_target: True
    input:
        all_figures(),
        all_claims(),
