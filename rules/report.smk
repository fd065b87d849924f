rule figure:
    """A figure of the paper, drawn from artifacts only (never trains), and its claims."""
    input:
        unpack(figure_inputs),
    output:
        output=report(
            path("figure"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{fig}"},
        ),
        claims=R.out("figure", "claims"),
    log:
        R.log("figure"),
    conda:
        ENV
    params:
        slice=lambda wc: {"figure": wc.fig, "options": W.figures[wc.fig]},
        title=lambda wc: FIGURES[wc.fig].heading,
        caption=lambda wc: FIGURES[wc.fig].caption,
    script:
        STAGE


rule claims:
    """Which of the paper's claims this run's artifacts support, with the numbers."""
    input:
        unpack(claims_inputs),
    output:
        output=report(path("claims"), caption="../report/claims.rst", category="Claims"),
        json=R.out("claims", "json"),
    log:
        R.log("claims"),
    conda:
        ENV
    script:
        STAGE


rule overview:
    """One page per experiment: score histogram, sub-networks, most and least memorized."""
    input:
        dataset=dataset_of,
        scores=path("scores"),
    output:
        output=report(
            path("overview"), caption="../report/overview.rst", category="Overview"
        ),
    log:
        R.log("overview"),
    conda:
        ENV
    params:
        **R.params("overview", "dataset", "scores"),
    script:
        STAGE
