rule score:
    """Turn-over training on the (possibly corrupted) training labels; memorization scores."""
    input:
        data=lambda wc: dataset_of(wc.exp),
        labels=f"{RESULTS}/{{exp}}/labels.nc",
    output:
        output=f"{RESULTS}/{{exp}}/scores.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/score.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{exp}}/score.tsv"
    conda:
        "../envs/memorization.yaml"
    threads: config.get("threads", 2)
    resources:
        gpu=gpu_count(),
    params:
        exp=lambda wc: score_params(wc.exp),
        device=config.get("device", "auto"),
    script:
        "../scripts/score.py"


rule subsets:
    """The easy and difficult subsets: lowest and highest memorization scores."""
    input:
        scores=f"{RESULTS}/{{exp}}/scores.nc",
    output:
        output=f"{RESULTS}/{{exp}}/subsets.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/subsets.log",
    conda:
        "../envs/memorization.yaml"
    params:
        exp=lambda wc: {"subset_size": experiment(wc.exp)["subset_size"]},
    script:
        "../scripts/subsets.py"
