rule prepare_dataset:
    """A dataset by name, as one NetCDF file (images, labels, split)."""
    output:
        output=out("dataset"),
    log:
        log_of("data/{dataset}"),
    conda:
        "../envs/memorization.yaml"
    params:
        config=lambda wc: {"dataset": wc.dataset},
    script:
        "../scripts/prepare_dataset.py"


rule corrupt_labels:
    """The training labels, `corrupt` of them replaced by random labels."""
    input:
        data=dataset_of,
    output:
        output=out("labels"),
    log:
        log_of("{exp}/labels"),
    conda:
        "../envs/memorization.yaml"
    params:
        config=config_slice("labels"),
        expect=lambda wc: {"data": {"dataset": EXPERIMENTS[wc.exp].dataset}},
        experiment="{exp}",
    script:
        "../scripts/corrupt_labels.py"
