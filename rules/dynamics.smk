use rule score as score_test with:
    input:
        data=lambda wc: dataset_of(wc.exp),
    output:
        output=f"{RESULTS}/{{exp}}/scores_test.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/score_test.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/score_test.tsv"
    params:
        exp=lambda wc: score_params(wc.exp),
        device=config.get("device", "auto"),
        split="test",


use rule subsets as subsets_test with:
    input:
        scores=f"{RESULTS}/{{exp}}/scores_test.nc",
    output:
        output=f"{RESULTS}/{{exp}}/subsets_test.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/subsets_test.log",
    params:
        exp=lambda wc: {"subset_size": test_subset_size(wc.exp)},


rule dynamics:
    """Plain training; accuracy on easy/difficult/full train and test examples per epoch."""
    input:
        data=lambda wc: dataset_of(wc.exp),
        labels=f"{RESULTS}/{{exp}}/labels.nc",
        subsets=f"{RESULTS}/{{exp}}/subsets.nc",
        subsets_test=f"{RESULTS}/{{exp}}/subsets_test.nc",
    output:
        output=f"{RESULTS}/{{exp}}/dynamics.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/dynamics.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/dynamics.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: config.get("threads", 1)
    resources:
        gpu=gpu_count(),
    params:
        exp=lambda wc: study_params(wc.exp),
        device=config.get("device", "auto"),
    script:
        "../scripts/dynamics.py"


rule gradstats:
    """Contribution and cosine similarity of per-example gradients during plain training."""
    input:
        data=lambda wc: dataset_of(wc.exp),
        labels=f"{RESULTS}/{{exp}}/labels.nc",
        subsets=f"{RESULTS}/{{exp}}/subsets.nc",
    output:
        output=f"{RESULTS}/{{exp}}/gradstats.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/gradstats.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/gradstats.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: config.get("threads", 1)
    resources:
        gpu=gpu_count(),
    params:
        exp=lambda wc: study_params(wc.exp, "probe_size", "gradstats_method"),
        device=config.get("device", "auto"),
    script:
        "../scripts/gradstats.py"


rule crosstrain:
    """Train on the easy subset only and on the difficult subset only."""
    input:
        data=lambda wc: dataset_of(wc.exp),
        labels=f"{RESULTS}/{{exp}}/labels.nc",
        subsets=f"{RESULTS}/{{exp}}/subsets.nc",
    output:
        output=f"{RESULTS}/{{exp}}/crosstrain.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/crosstrain.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/crosstrain.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: config.get("threads", 1)
    resources:
        gpu=gpu_count(),
    params:
        exp=lambda wc: study_params(wc.exp, "crosstrain_epochs"),
        device=config.get("device", "auto"),
    script:
        "../scripts/crosstrain.py"


rule sweep_level:
    """Plain training at one corruption level of the sweep (appendix E)."""
    input:
        data=lambda wc: dataset_of(wc.exp),
    output:
        output=f"{RESULTS}/{{exp}}/sweep/corrupt{{level}}.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/sweep_corrupt{{level}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/sweep_corrupt{{level}}.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: config.get("threads", 1)
    resources:
        gpu=gpu_count(),
    params:
        exp=lambda wc: study_params(wc.exp),
        level=lambda wc: int(wc.level),
        device=config.get("device", "auto"),
    script:
        "../scripts/sweep_level.py"
