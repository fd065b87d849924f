rule dynamics:
    """Plain training; accuracy on easy/difficult/full train and test examples per epoch."""
    input:
        data=dataset_of,
        labels=out("labels"),
        subsets=out("subsets"),
        subsets_test=out("subsets_test"),
    output:
        output=out("dynamics"),
    log:
        log_of("{exp}/dynamics"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/dynamics.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("dynamics"),
        mem_mb=train_mem_mb("dynamics"),
    params:
        config=config_slice("dynamics"),
        expect=expected(labels="labels", subsets="subsets", subsets_test="subsets_test"),
        experiment="{exp}",
    script:
        "../scripts/dynamics.py"


rule gradstats:
    """Contribution and cosine similarity of per-example gradients during plain training."""
    input:
        data=dataset_of,
        labels=out("labels"),
        subsets=out("subsets"),
    output:
        output=out("gradstats"),
    log:
        log_of("{exp}/gradstats"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/gradstats.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("gradstats"),
        mem_mb=train_mem_mb("gradstats"),
    params:
        config=config_slice("gradstats"),
        expect=expected(labels="labels", subsets="subsets"),
        experiment="{exp}",
    script:
        "../scripts/gradstats.py"


rule crosstrain:
    """Train on the easy subset only and on the difficult subset only."""
    input:
        data=dataset_of,
        labels=out("labels"),
        subsets=out("subsets"),
    output:
        output=out("crosstrain"),
    log:
        log_of("{exp}/crosstrain"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/crosstrain.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("crosstrain"),
        mem_mb=train_mem_mb("crosstrain"),
    params:
        config=config_slice("crosstrain"),
        expect=expected(labels="labels", subsets="subsets"),
        experiment="{exp}",
    script:
        "../scripts/crosstrain.py"


rule sweep_level:
    """Plain training at one corruption level of the sweep (appendix E)."""
    input:
        data=dataset_of,
    output:
        output=out("sweep"),
    log:
        log_of("{exp}/sweep_corrupt{level}"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/sweep_corrupt{{level}}.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("sweep_level"),
        mem_mb=train_mem_mb("sweep_level"),
    params:
        config=config_slice("sweep"),
        expect=lambda wc: {"data": {"dataset": EXPERIMENTS[wc.exp].dataset}},
        experiment="{exp}",
    script:
        "../scripts/sweep_level.py"
