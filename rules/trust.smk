# Scores you can trust: peer estimators, ground truth by retraining, influence pairs and
# the validation table. None of these is part of the default target (`all`): build them
# by name, e.g. `snakemake --configfile config/validation.yaml`.


rule estimators:
    """Peer estimators (TracIn self-influence, final loss, learning speed, forgetting)."""
    input:
        data=dataset_of,
        labels=out("labels"),
    output:
        output=out("estimators"),
    log:
        log_of("{exp}/estimators"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/estimators.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("estimators"),
        mem_mb=train_mem_mb("estimators"),
    params:
        config=config_slice("estimators"),
        expect=expected(labels="labels"),
        experiment="{exp}",
    script:
        "../scripts/estimators.py"


rule truth_shard:
    """Models [k0, k1) of the Feldman-Zhang ground truth, trained together."""
    input:
        data=dataset_of,
        labels=out("labels"),
    output:
        output=out("truth_shard"),
    log:
        log_of("{exp}/truth_shard{shard}"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/truth_shard{{shard}}.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("truth_shard"),
        mem_mb=train_mem_mb("truth_shard"),
    params:
        config=config_slice("truth_shard"),
        expect=expected(labels="labels"),
        experiment="{exp}",
    script:
        "../scripts/truth_shard.py"


rule truth:
    """Feldman-Zhang memorization and influence from every shard's models."""
    input:
        shards=truth_shards,
    output:
        output=out("truth"),
    log:
        log_of("{exp}/truth"),
    conda:
        "../envs/memorization.yaml"
    params:
        config=config_slice("truth"),
        expect=lambda wc: {"shards": truth_shard_slices(wc)},
        experiment="{exp}",
    script:
        "../scripts/truth.py"


rule influence:
    """Turn-over influence (eq. 5): the top training examples of every test example."""
    input:
        data=dataset_of,
        labels=out("labels"),
    output:
        output=out("influence"),
    log:
        log_of("{exp}/influence"),
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/influence.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: W.threads
    resources:
        gpu=gpu_count(),
        runtime=train_runtime("influence"),
        mem_mb=train_mem_mb("influence"),
    params:
        config=config_slice("influence"),
        expect=expected(labels="labels"),
        experiment="{exp}",
    script:
        "../scripts/influence.py"


rule validation:
    """Quality and cost of every memorization estimator (the validation figure's table)."""
    input:
        unpack(validation_inputs),
    output:
        output=out("validation"),
    log:
        log_of("validation"),
    conda:
        "../envs/memorization.yaml"
    params:
        config=lambda wc: FIGURE_OPTIONS["validation"],
    script:
        "../scripts/validation.py"
