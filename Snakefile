"""Memorization scores with turn-over dropout, and what they do to optimization.

Liu, Lin, Jaggi: "Understanding Memorization from the Perspective of Optimization
via Efficient Influence Estimation". `snakemake --cores 2` builds every figure of
the embedded default; `--configfile config/paper.yaml` runs the paper's settings.
"""

# The embedded default, unless --configfile names another config, which then stands
# alone (config/paper.yaml is not merged into the default's experiments).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/score.smk"
include: "rules/dynamics.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        all_figures(),
