rule score:
    """Turn-over training on the (possibly corrupted) training labels; memorization scores.
    With `replicates: R` > 1, merges the R replicate trainings instead."""
    input:
        data=dataset_of,
        labels=out("labels"),
        replicates=replicate_inputs,
    output:
        output=out("scores"),
    log:
        log_of("{exp}/score"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/score.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=lambda wc: 0 if EXPERIMENTS[wc.exp].replicates > 1 else gpu_count(),
        runtime=train_runtime("score"),
        mem_mb=train_mem_mb("score"),
    params:
        config=config_slice("score"),
        expect=lambda wc: {
            "labels": EXPERIMENTS[wc.exp].slice("labels"),
            "replicates": replicate_slices(wc),
        },
        experiment="{exp}",
        split="train",
    script:
        "../scripts/score.py"


use rule score as score_replicate with:
    input:
        data=dataset_of,
        labels=out("labels"),
    output:
        output=out("score_replicate"),
    log:
        log_of("{exp}/score_r{rep}"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/score_r{{rep}}.tsv"
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("score_replicate"),
        mem_mb=train_mem_mb("score_replicate"),
    params:
        config=config_slice("score_replicate"),
        expect=expected(labels="labels"),
        experiment="{exp}",
        split="train",


use rule score as score_test with:
    input:
        data=dataset_of,
    output:
        output=out("scores_test"),
    log:
        log_of("{exp}/score_test"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/score_test.tsv"
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("score_test"),
        mem_mb=train_mem_mb("score_test"),
    params:
        config=config_slice("score_test"),
        expect={},
        experiment="{exp}",
        split="test",


rule subsets:
    """The easy and difficult subsets: lowest and highest memorization scores."""
    input:
        scores=out("scores"),
    output:
        output=out("subsets"),
    log:
        log_of("{exp}/subsets"),
    conda:
        "../envs/memorization.yaml"
    params:
        config=config_slice("subsets"),
        expect=expected(scores="score"),
        experiment="{exp}",
    script:
        "../scripts/subsets.py"


use rule subsets as subsets_test with:
    input:
        scores=out("scores_test"),
    output:
        output=out("subsets_test"),
    log:
        log_of("{exp}/subsets_test"),
    params:
        config=config_slice("subsets_test"),
        expect=expected(scores="score_test"),
        experiment="{exp}",
