rule dynamics:
    """Plain training; accuracy on easy/difficult/full train and test examples per epoch."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
        subsets=path("subsets"),
        subsets_test=path("subsets_test"),
    output:
        output=path("dynamics"),
    log:
        R.log("dynamics"),
    benchmark:
        R.benchmark("dynamics")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("dynamics"),
    params:
        **R.params("dynamics", "dataset", "labels", "subsets", "subsets_test"),
    script:
        STAGE


rule gradstats:
    """Contribution and cosine similarity of per-example gradients in plain training."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
        subsets=path("subsets"),
    output:
        output=path("gradstats"),
    log:
        R.log("gradstats"),
    benchmark:
        R.benchmark("gradstats")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("gradstats"),
    params:
        **R.params("gradstats", "dataset", "labels", "subsets"),
    script:
        STAGE


rule crosstrain:
    """Train on the easy subset only and on the difficult subset only."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
        subsets=path("subsets"),
    output:
        output=path("crosstrain"),
    log:
        R.log("crosstrain"),
    benchmark:
        R.benchmark("crosstrain")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("crosstrain"),
    params:
        **R.params("crosstrain", "dataset", "labels", "subsets"),
    script:
        STAGE


rule sweep:
    """Plain training at one corruption level of the sweep (appendix E)."""
    input:
        dataset=dataset_of,
    output:
        output=path("sweep"),
    log:
        R.log("sweep"),
    benchmark:
        R.benchmark("sweep")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("sweep"),
    params:
        **R.params("sweep", "dataset"),
    script:
        STAGE
