rule dataset:
    """A dataset by name, as one NetCDF file (images or image files, labels, split)."""
    output:
        output=path("dataset"),
    log:
        R.log("dataset"),
    conda:
        ENV
    params:
        **R.params("dataset"),
    script:
        STAGE


rule labels:
    """The training labels, `corrupt` of them replaced by random labels."""
    input:
        dataset=dataset_of,
    output:
        output=path("labels"),
    log:
        R.log("labels"),
    conda:
        ENV
    params:
        **R.params("labels", "dataset"),
    script:
        STAGE
