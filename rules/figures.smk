rule figure:
    """A figure of the paper, drawn from artifacts only (never trains)."""
    input:
        unpack(figure_inputs),
    output:
        output=report(
            f"{RESULTS}/{{fig}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}"},
        ),
    log:
        f"{RESULTS}/logs/figures/{{fig}}.log",
    conda:
        "../envs/memorization.yaml"
    params:
        figure="{fig}",
        options=lambda wc: FIGURES[wc.fig],
    script:
        "../scripts/figure.py"
