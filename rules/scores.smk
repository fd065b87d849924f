rule scores:
    """Turn-over training on the training labels and every example's memorization score.
    With `replicates: R` > 1, merges the R replicate trainings instead."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
        scores_replicate=replicates_of,
    output:
        output=path("scores"),
    log:
        R.log("scores"),
    benchmark:
        R.benchmark("scores")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("scores"),
    params:
        **R.params("scores", "dataset", "labels", "scores_replicate"),
    script:
        STAGE


rule scores_replicate:
    """One of R > 1 independent turn-over trainings (its own seed and masks)."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
    output:
        output=path("scores_replicate"),
    log:
        R.log("scores_replicate"),
    benchmark:
        R.benchmark("scores_replicate")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("scores_replicate"),
    params:
        **R.params("scores_replicate", "dataset", "labels"),
    script:
        STAGE


rule scores_test:
    """Turn-over training on the test split, to rank the test examples."""
    input:
        dataset=dataset_of,
    output:
        output=path("scores_test"),
    log:
        R.log("scores_test"),
    benchmark:
        R.benchmark("scores_test")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("scores_test"),
    params:
        **R.params("scores_test", "dataset"),
    script:
        STAGE


rule subsets:
    """The easy and difficult subsets: the lowest and highest memorization scores (or
    estimates, with subsets_from)."""
    input:
        scores=path("scores"),
        estimates=subsets_estimates,
    output:
        output=path("subsets"),
    log:
        R.log("subsets"),
    conda:
        ENV
    params:
        # the estimates' origin only where the experiment draws its subsets from them: a
        # change of the peers' or out-of-bag options must not redo the others' subsets
        slice=lambda wc: R.slice_params("subsets", wc),
        expect=lambda wc: R.expected(
            "subsets",
            wc,
            (
                ["scores", "estimates"]
                if W.experiments[wc.exp].subsets_from
                else ["scores"]
            ),
        ),
        experiment=lambda wc: wc.exp,
    script:
        STAGE


rule subsets_test:
    """The easy and difficult subsets of the test split."""
    input:
        scores_test=path("scores_test"),
    output:
        output=path("subsets_test"),
    log:
        R.log("subsets_test"),
    conda:
        ENV
    params:
        **R.params("subsets_test", "scores_test"),
    script:
        STAGE
