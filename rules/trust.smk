# Scores you can trust: peer estimators, ground truth by retraining, influence pairs and
# the validation table. None of these is part of the default target (`all`): build them
# by name, e.g. `snakemake --cores 2 --configfile config/validation.yaml`.


rule peers:
    """Peer estimators (TracIn self-influence, final loss, learning speed, forgetting)."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
    output:
        output=path("peers"),
    log:
        R.log("peers"),
    benchmark:
        R.benchmark("peers")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("peers"),
    params:
        **R.params("peers", "dataset", "labels"),
    script:
        STAGE


rule truth_shard:
    """Models [k0, k1) of the Feldman-Zhang ground truth, trained together."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
    output:
        output=path("truth_shard"),
    log:
        R.log("truth_shard"),
    benchmark:
        R.benchmark("truth_shard")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("truth_shard"),
    params:
        **R.params("truth_shard", "dataset", "labels"),
    script:
        STAGE


rule truth:
    """Feldman-Zhang memorization and influence from every shard's models."""
    input:
        truth_shard=all_of("truth_shard"),
    output:
        output=path("truth"),
    log:
        R.log("truth"),
    conda:
        ENV
    params:
        **R.params("truth", "truth_shard"),
    script:
        STAGE


rule influence:
    """Turn-over influence (eq. 5): the top training examples of every test example."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
    output:
        output=path("influence"),
    log:
        R.log("influence"),
    benchmark:
        R.benchmark("influence")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("influence"),
    params:
        **R.params("influence", "dataset", "labels"),
    script:
        STAGE


rule validation:
    """Quality and cost of every memorization estimator (the validation figure's table)."""
    input:
        unpack(validation_inputs),
    output:
        output=path("validation"),
    log:
        R.log("validation"),
    conda:
        ENV
    params:
        slice=lambda wc: {"options": W.figures["validation"]},
    script:
        STAGE


rule oob:
    """Out-of-bag sub-networks: each example scored by the networks that never saw it."""
    input:
        dataset=dataset_of,
        labels=path("labels"),
    output:
        output=path("oob"),
    log:
        R.log("oob"),
    benchmark:
        R.benchmark("oob")
    conda:
        ENV
    threads: W.threads
    resources:
        **R.resources("oob"),
    params:
        **R.params("oob", "dataset", "labels"),
    script:
        STAGE


rule estimates:
    """Every memorization estimate of the experiment, with its family and cost in plain runs."""
    input:
        scores=path("scores"),
        peers=path("peers"),
        oob=estimates_oob,
    output:
        output=path("estimates"),
    log:
        R.log("estimates"),
    conda:
        ENV
    params:
        **R.params("estimates", "scores", "peers", "oob"),
    script:
        STAGE
