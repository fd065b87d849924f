"""Memorization scores with turn-over dropout, and what they do to optimization.

Liu, Lin, Jaggi: "Understanding Memorization from the Perspective of Optimization
via Efficient Influence Estimation". `snakemake --cores 2` builds every figure of
the embedded default; `--configfile config/paper.yaml` runs the paper's settings.
"""

import os
import sys

# The library in src/ is imported by this process (rules/common.smk) and by every job
# (scripts/stage.py puts the same src/ first on its path and checks it).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

# The embedded default, unless --configfile names another config, which then stands
# alone (config/paper.yaml is not merged into the default's experiments).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/scores.smk"
include: "rules/studies.smk"
include: "rules/trust.smk"
include: "rules/report.smk"


rule all:
    """Every figure of the config and the table of the paper's claims they support."""
    default_target: True
    input:
        all_figures(),
        all_claims(),
