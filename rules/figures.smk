rule figure:
    """A figure of the paper, drawn from artifacts only (never trains), and its claims."""
    input:
        unpack(figure_inputs),
    output:
        output=report(
            out("figure"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}"},
        ),
        claims=out("figure_claims"),
    log:
        log_of("figures/{fig}"),
    conda:
        "../envs/memorization.yaml"
    params:
        figure="{fig}",
        options=lambda wc: FIGURE_OPTIONS[wc.fig],
        title=lambda wc: f"Figure {wc.fig[3:]}: {FIGURES[wc.fig].title}",
        caption=lambda wc: FIGURES[wc.fig].caption,
    script:
        "../scripts/figure.py"


rule claims:
    """Which of the paper's claims this run's artifacts support, with the numbers."""
    input:
        unpack(claims_inputs),
    output:
        output=report(
            out("claims"),
            caption="../report/claims.rst",
            category="Claims",
        ),
        json=out("claims_json"),
    log:
        log_of("claims"),
    conda:
        "../envs/memorization.yaml"
    script:
        "../scripts/claims.py"
