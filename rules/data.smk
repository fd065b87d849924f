rule prepare_dataset:
    output:
        output=f"{RESULTS}/data/{{dataset}}.nc",
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    conda:
        "../envs/memorization.yaml"
    params:
        dataset="{dataset}",
        data_root=config.get("data_root", "data"),
        download=config.get("download", False),
    script:
        "../scripts/prepare_dataset.py"


rule corrupt_labels:
    input:
        data=lambda wc: dataset_of(wc.exp),
    output:
        output=f"{RESULTS}/{{exp}}/labels.nc",
    log:
        f"{RESULTS}/logs/{{exp}}/labels.log",
    conda:
        "../envs/memorization.yaml"
    params:
        exp=lambda wc: label_params(wc.exp),
    script:
        "../scripts/corrupt_labels.py"
