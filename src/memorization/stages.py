"""One function per workflow stage: check inputs, call the library, write the artifact.

The Snakemake scripts in ``scripts/`` are one call to :func:`run_from_snakemake`,
which maps the rule's ``input``/``output``/``params``/``log`` onto the stage function
of the same name. Each stage can also be called directly from Python with file paths.

Every stage takes

- ``config``: the slice of the experiment's resolved config that decides its artifact
  (:meth:`memorization.experiment.Experiment.slice`), stored in the artifact's
  provenance with its hash;
- ``expect``: for each input artifact, the slice it must have been made from; an input
  made from anything else (a stale file, another experiment's) is refused before any
  compute (:func:`memorization.artifacts.check_origin`);
- ``experiment``: the experiment's name, recorded for the figures' labels;
- the execution settings ``device`` and ``threads``, which decide where and how fast
  it runs but not what it computes: they are recorded in the provenance and never
  make Snakemake rerun a job; training stages also take ``checkpoint_every``, how
  often they save a resumable checkpoint beside their output
  (:mod:`memorization.checkpoint`), removed once the output is written.

Before training, a stage checks that its output can be written
(:func:`memorization.artifacts.preflight`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from .artifacts import check_origin, open_artifact, preflight, provenance, write_artifact

__all__ = ["STAGES", "run_from_snakemake"]

log = logging.getLogger("memorization.stages")


def model_options(cfg: Mapping) -> dict:
    """The model options in a config slice (every option of its model)."""
    from .models import MODEL_OPTIONS

    return {k: cfg[k] for k in MODEL_OPTIONS.get(cfg["model"], {}) if k in cfg}


def _open(path, kind: str, expect: Mapping | None, name: str):
    """Open an input artifact and check that it was made from the expected slice."""
    ds = open_artifact(path, kind)
    if expect is not None and name in expect:
        check_origin(ds, path, expect[name])
    return ds


def _load_split(data_path, expect, labels_path=None, split="train"):
    """(dataset, labels or None, tensors of the split with the training labels)."""
    from .data import to_tensors

    data = _open(data_path, "dataset", expect, "data")
    labels = None
    if labels_path is not None and split == "train":
        labels = _open(labels_path, "labels", expect, "labels")
    tensors = to_tensors(data, split, None if labels is None else labels["label"].values)
    if labels is not None and not np.array_equal(labels["example"].values, tensors.examples):
        raise ValueError(f"{labels_path} does not match the training examples of {data_path}")
    return data, labels, tensors


def _bytes_estimate(n_examples: int, per_example: int = 64, extra: int = 0) -> int:
    """A generous size of an artifact over ``n_examples`` (before compression)."""
    return n_examples * per_example + extra + (1 << 20)


# --- stages ---------------------------------------------------------------------------


def prepare_dataset(
    output, config: Mapping, experiment: str = "", data_root: str = "data", download=False
):
    from .data import prepare_dataset as prepare

    preflight(output)
    ds = prepare(config["dataset"], data_root, download)
    attrs = provenance(config, experiment=experiment, data_root=str(data_root))
    write_artifact(ds, output, "dataset", attrs)


def corrupt_labels(data, output, config: Mapping, expect=None, experiment: str = ""):
    from .corruption import corrupt_labels as corrupt

    ds = _open(data, "dataset", expect, "data")
    preflight(output)
    train = ds.sel(example=ds["split"].values == "train")
    true = train["label"].values
    labels, corrupted = corrupt(
        true,
        int(config.get("corrupt", 0)),
        ds.sizes["class"],
        config["seed"],
        config.get("corruption", "uniform"),
    )
    out = xr.Dataset(
        {
            "label": ("example", labels),
            "true_label": ("example", true),
            "corrupted": ("example", corrupted),
            "mislabeled": ("example", labels != true),
        },
        coords={"example": train["example"].values},
    )
    log.info(
        "drew %d of %d training labels at random (%s); %d are now wrong",
        corrupted.sum(),
        len(labels),
        config.get("corruption", "uniform"),
        (labels != true).sum(),
    )
    write_artifact(out, output, "labels", provenance(config, experiment=experiment))


def score(
    data,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    labels=None,
    replicates=(),
    split="train",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    """Turn-over training and memorization scores of a split (``train`` or ``test``).

    With ``replicates`` (the artifacts of R > 1 replicate trainings), merges them
    instead of training (:func:`memorization.replicates.merge_replicates`). A config
    slice with a ``replicate`` trains that replicate, with its derived seed.
    """
    if isinstance(replicates, str):
        replicates = [replicates]
    if replicates:
        return _merge_replicates(list(replicates), output, config, expect, experiment)
    from .checkpoint import Checkpoint
    from .data import to_tensors
    from .device import lease_device, resolve_threads
    from .experiment import replicate_seed
    from .scoring import score_split
    from .training import OptimConfig

    threads = resolve_threads(threads)
    ds, lab, tensors = _load_split(data, expect, labels, split)
    heldout = to_tensors(ds, "test") if split == "train" else None
    preflight(output, _bytes_estimate(len(tensors), 100))
    checkpoint = Checkpoint.for_output(output, "score", config, checkpoint_every, split=split)
    seed = replicate_seed(int(config["seed"]), int(config.get("replicate", 0)))
    start = time.perf_counter()
    with lease_device(device) as dev:
        ds_scores = score_split(
            config["model"],
            model_options(config),
            tensors.to(dev),
            ds.sizes["class"],
            OptimConfig.from_config(config),
            seed,
            true_labels=None if lab is None else lab["true_label"].values,
            corrupted=None if lab is None else lab["corrupted"].values,
            heldout=None if heldout is None else heldout.to(dev),
            checkpoint=checkpoint,
            sharpen_temperature=float(config.get("score_temperature", 0.5)),
        )
        attrs = provenance(
            config,
            experiment=experiment,
            device=dev,
            threads=threads,
            split=split,
            turnover_seed=seed,
            seconds=round(time.perf_counter() - start, 3),
        )
    acc = ds_scores["subnet_accuracy"].isel(epoch=-1).values
    log.info("final training accuracy: unmuted %.4f, muted %.4f", *acc)
    _log_auc(ds_scores)
    write_artifact(ds_scores, output, "scores", attrs)
    checkpoint.remove()


def _log_auc(ds_scores) -> None:
    wrong = ds_scores["mislabeled"].values
    if wrong.any() and not wrong.all():
        from .validation import roc_auc

        auc = roc_auc(ds_scores["memorization"].values, wrong)
        ds_scores.attrs["mislabeled_auc"] = float(auc)
        log.info("ROC AUC of the memorization score for the wrong labels: %.4f", auc)


def _merge_replicates(paths, output, config, expect, experiment):
    from .experiment import replicate_seed
    from .replicates import merge_replicates

    runs = []
    for r, path in enumerate(paths):
        run = open_artifact(path, "scores")
        if expect is not None and "replicates" in expect:
            check_origin(run, path, expect["replicates"][r])
        runs.append(run)
    preflight(output, _bytes_estimate(runs[0].sizes["example"], 100 * len(runs)))
    seeds = [replicate_seed(int(config["seed"]), r) for r in range(len(runs))]
    merged = merge_replicates(runs, seeds)
    merged["replicate_seconds"] = (
        "replicate",
        [float(r.attrs.get("seconds", float("nan"))) for r in runs],
    )
    _log_auc(merged)
    seconds = sum(float(r.attrs.get("seconds", 0.0)) for r in runs)
    attrs = provenance(
        config,
        experiment=experiment,
        device=runs[0].attrs.get("device", "cpu"),
        threads=int(runs[0].attrs.get("threads", 1)),
        split="train",
        seconds=round(seconds, 3),
    )
    log.info(
        "merged %d replicates; mean standard error of the memorization score %.4f",
        len(runs),
        float(merged["memorization_se"].mean()),
    )
    write_artifact(merged, output, "scores", attrs)


def subsets(scores, output, config: Mapping, expect=None, experiment: str = ""):
    from .experiment import SCORE_FORMS
    from .subsets import easy_difficult

    sc = _open(scores, "scores", expect, "scores")
    preflight(output)
    score = SCORE_FORMS[config.get("score_form", "loss")]
    out = easy_difficult(sc[score], int(config["subset_size"]))
    write_artifact(out, output, "subsets", provenance(config, experiment=experiment))


def _subset_rows(path, examples, expect, name) -> dict[str, np.ndarray]:
    sub = _open(path, "subsets", expect, name)
    if not np.array_equal(sub["example"].values, examples):
        raise ValueError(f"{path} does not list the examples it is used with")
    return {k: sub[k].values.astype(bool) for k in ("easy", "difficult")}


def _plain_study(
    kind, output, config, experiment, n_classes, device, threads, study, n_examples, every=5
):
    """Shared frame of the plain-training studies: threads, device lease, checkpoint,
    provenance.

    ``study(dev, model)`` gets the device and the arguments every study takes
    (``model_name``, ``model_options``, ``n_classes``, ``opt``, ``seed``,
    ``checkpoint``) as a dict, with ``opt`` the study's resolved optimizer settings
    (``config["study"]``) and ``checkpoint`` saved every ``every`` epochs.
    """
    from .checkpoint import Checkpoint
    from .device import lease_device, resolve_threads
    from .training import OptimConfig

    threads = resolve_threads(threads)
    preflight(output, _bytes_estimate(n_examples, 8))
    model = {
        "model_name": config["model"],
        "model_options": model_options(config),
        "n_classes": n_classes,
        "opt": OptimConfig.from_config(config["study"]),
        "seed": int(config["seed"]),
        "checkpoint": Checkpoint.for_output(output, kind, config, every),
    }
    start = time.perf_counter()
    with lease_device(device) as dev:
        ds = study(dev, model)
        seconds = round(time.perf_counter() - start, 3)
        attrs = provenance(
            config, experiment=experiment, device=dev, threads=threads, seconds=seconds
        )
    write_artifact(ds, output, kind, attrs)
    model["checkpoint"].remove()
    return ds


def dynamics(
    data,
    labels,
    subsets,
    subsets_test,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    from .data import to_tensors
    from .dynamics import training_dynamics

    ds, _, train = _load_split(data, expect, labels)
    test = to_tensors(ds, "test")
    train_rows = _subset_rows(subsets, train.examples, expect, "subsets")
    test_rows = _subset_rows(subsets_test, test.examples, expect, "subsets_test")

    def study(dev, model):
        return training_dynamics(
            train=train.to(dev),
            test=test.to(dev),
            train_subsets=train_rows,
            test_subsets=test_rows,
            control=bool(config.get("control", False)),
            **model,
        )

    out = _plain_study(
        "dynamics",
        output,
        config,
        experiment,
        ds.sizes["class"],
        device,
        threads,
        study,
        0,
        checkpoint_every,
    )
    final = out["accuracy"].sel(run="all").isel(epoch=-1)
    log.info("final accuracy (all data): %s", final.to_pandas().to_dict())


def gradstats(
    data,
    labels,
    subsets,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    from .dynamics import gradient_statistics

    ds, _, train = _load_split(data, expect, labels)
    rows = _subset_rows(subsets, train.examples, expect, "subsets")

    def study(dev, model):
        return gradient_statistics(
            train=train.to(dev),
            train_subsets=rows,
            probe_size=config.get("probe_size"),
            cosine_pairs=config.get("cosine_pairs", "probe"),
            method=config.get("gradstats_method", "auto"),
            **model,
        )

    _plain_study(
        "gradstats",
        output,
        config,
        experiment,
        ds.sizes["class"],
        device,
        threads,
        study,
        0,
        checkpoint_every,
    )


def crosstrain(
    data,
    labels,
    subsets,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    from .dynamics import cross_training

    ds, _, train = _load_split(data, expect, labels)
    rows = _subset_rows(subsets, train.examples, expect, "subsets")

    def study(dev, model):
        return cross_training(train=train.to(dev), train_subsets=rows, **model)

    out = _plain_study(
        "crosstrain",
        output,
        config,
        experiment,
        ds.sizes["class"],
        device,
        threads,
        study,
        0,
        checkpoint_every,
    )
    log.info("final accuracy: %s", out["accuracy"].isel(epoch=-1).to_pandas().to_dict())


def sweep_level(
    data,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    import torch

    from .corruption import corrupt_labels as corrupt
    from .data import TensorSplit, to_tensors
    from .dynamics import corruption_level

    ds = _open(data, "dataset", expect, "data")
    level = int(config["corrupt"])
    train, test = to_tensors(ds, "train"), to_tensors(ds, "test")
    labels, _ = corrupt(
        train.y.numpy(),
        level,
        ds.sizes["class"],
        config["seed"],
        config.get("corruption", "uniform"),
    )
    train = TensorSplit(train.x, torch.as_tensor(labels, dtype=torch.int64), train.examples)

    def study(dev, model):
        out = corruption_level(train=train.to(dev), test=test.to(dev), **model)
        return out.expand_dims(corrupt=[level])

    _plain_study(
        "dynamics",
        output,
        config,
        experiment,
        ds.sizes["class"],
        device,
        threads,
        study,
        0,
        checkpoint_every,
    )


def estimators(
    data,
    labels,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    """The peer estimators (TracIn self-influence, final loss, slow learning, forgetting
    events) from one plain run with the experiment's own settings."""
    from .estimators import peer_estimators

    ds, _, train = _load_split(data, expect, labels)

    def study(dev, model):
        kwargs = {k: v for k, v in model.items() if k != "checkpoint"}  # not resumable yet
        return peer_estimators(train=train.to(dev), **kwargs)

    out = _plain_study(
        "estimators",
        output,
        config,
        experiment,
        ds.sizes["class"],
        device,
        threads,
        study,
        len(train),
        checkpoint_every,
    )
    log.info("final training accuracy %.4f", float(out["accuracy"].values[-1]))


def truth_shard(
    data,
    labels,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    """Models [k0, k1) of the Feldman-Zhang ground truth, trained as one ensemble."""
    from .data import to_tensors
    from .device import lease_device, resolve_threads
    from .experiment import TruthConfig
    from .training import OptimConfig
    from .truth import train_shard

    threads = resolve_threads(threads)
    ds, _, train = _load_split(data, expect, labels)
    test = to_tensors(ds, "test")
    truth = TruthConfig(**config["truth"])
    k0, k1 = truth.shard_range(int(config["shard"]))
    preflight(output, _bytes_estimate((k1 - k0) * (len(train) + len(test)), 8))
    start = time.perf_counter()
    with lease_device(device) as dev:
        out = train_shard(
            config["model"],
            model_options(config),
            train.to(dev),
            test.to(dev),
            ds.sizes["class"],
            OptimConfig.from_config(config["study"]),
            n_models=truth.models,
            fraction=truth.fraction,
            seed=int(config["seed"]),
            k0=k0,
            k1=k1,
        )
        attrs = provenance(
            config,
            experiment=experiment,
            device=dev,
            threads=threads,
            seconds=round(time.perf_counter() - start, 3),
            models=f"{k0}-{k1 - 1}",
        )
    write_artifact(out, output, "truth_shard", attrs)


def truth(shards, output, config: Mapping, expect=None, experiment: str = ""):
    """Merge the shards into the Feldman-Zhang memorization and influence estimates."""
    from .truth import merge_shards, truth_dataset

    paths = [shards] if isinstance(shards, str) else list(shards)
    loaded = []
    for k, path in enumerate(paths):
        ds = open_artifact(path, "truth_shard")
        if expect is not None and "shards" in expect:
            check_origin(ds, path, expect["shards"][k])
        loaded.append(ds)
    preflight(output)
    merged = merge_shards(loaded)
    out = truth_dataset(merged, top_k=int(config["top_k"]))
    seconds = sum(float(ds.attrs.get("seconds", 0.0)) for ds in loaded)
    memorized = int((out["memorization"].values > 0.25).sum())
    log.info("%d models; %d examples with memorization > 0.25", len(merged["model"]), memorized)
    attrs = provenance(config, experiment=experiment, seconds=round(seconds, 3))
    write_artifact(out, output, "truth", attrs)


def influence(
    data,
    labels,
    output,
    config: Mapping,
    expect=None,
    experiment: str = "",
    device="auto",
    threads=1,
    checkpoint_every=5,
):
    """Turn-over influence (eq. 5) of the training examples on every test example: the
    top-k pairs. Trains the turn-over model again (the same as the scores' replicate 0)."""
    from .data import to_tensors
    from .device import lease_device, resolve_threads
    from .influence import top_influence
    from .scoring import score_split
    from .training import OptimConfig

    threads = resolve_threads(threads)
    ds, lab, train = _load_split(data, expect, labels)
    test = to_tensors(ds, "test")
    top_k = int(config["top_k"])
    preflight(output, _bytes_estimate(len(test) * top_k, 16))
    start = time.perf_counter()
    with lease_device(device) as dev:
        _, model, masks = score_split(
            config["model"],
            model_options(config),
            train.to(dev),
            ds.sizes["class"],
            OptimConfig.from_config(config),
            int(config["seed"]),
            return_model=True,
        )
        rows, values = top_influence(model, masks, test.to(dev), top_k)
        attrs = provenance(
            config,
            experiment=experiment,
            device=dev,
            threads=threads,
            seconds=round(time.perf_counter() - start, 3),
        )
    out = xr.Dataset(
        {
            "influence": (("test_example", "rank"), values),
            "influence_example": (("test_example", "rank"), train.examples[rows]),
        },
        coords={"test_example": test.examples, "rank": np.arange(rows.shape[1])},
    )
    write_artifact(out, output, "influence", attrs)


def validation(
    output,
    config: Mapping,
    clean_scores=None,
    clean_estimators=None,
    clean_truth=None,
    clean_influence=None,
    noisy_scores=None,
    noisy_estimators=None,
    variants=(),
    noisy_variants=(),
    experiment: str = "",
):
    """The quality and cost of every memorization estimator (validation.nc)."""
    from .validation_table import estimator_table, influence_agreement

    def load(path, kind):
        return None if not path else open_artifact(path, kind)

    def named(paths):
        paths = [paths] if isinstance(paths, str) else list(paths)
        return {Path(p).parent.name: open_artifact(p, "scores") for p in paths}

    truth_ds = load(clean_truth, "truth")
    table = estimator_table(
        truth=truth_ds,
        clean_scores=load(clean_scores, "scores"),
        clean_estimators=load(clean_estimators, "estimators"),
        noisy_scores=load(noisy_scores, "scores"),
        noisy_estimators=load(noisy_estimators, "estimators"),
        variants=named(variants),
        noisy_variants=named(noisy_variants),
        replicates=tuple(config.get("replicates", (1, 2, 4, 8))),
        threshold=float(config.get("threshold", 0.25)),
    )
    if clean_influence and truth_ds is not None and "influence" in truth_ds:
        table.attrs.update(influence_agreement(load(clean_influence, "influence"), truth_ds))
    for name in table["estimator"].values:
        row = table.sel(estimator=name)
        log.info(
            "%-28s AUC %.3f  top-10%% %.3f  Spearman %.3f  random-label AUC %.3f  cost %.1f runs",
            name,
            *(float(row[m]) for m in ("auc_memorized", "top_overlap", "spearman")),
            float(row["random_label_auc"]),
            float(row["cost_runs"]),
        )
    preflight(output)
    write_artifact(table, output, "validation", provenance(config, experiment=experiment))


def figure(output, claims, figure: str, inputs: Mapping[str, str | list], options: Mapping, **_):
    """Draw one figure from its artifacts and write the claims it supports."""
    from .figures import run_figure

    run_figure(figure, inputs, dict(options), output, claims)


def claims(output, json, figures, scores=(), dynamics=()):
    """Gather every figure's claims and the sub-network check of every scored experiment."""
    from .claims import read_claims, subnetwork_check, write_claims

    gathered = []
    for path in [figures] if isinstance(figures, str) else figures:
        gathered.extend(read_claims(path))
    plain = {}
    for path in [dynamics] if isinstance(dynamics, str) else dynamics:
        ds = open_artifact(path, "dynamics")
        plain[ds.attrs.get("experiment")] = float(
            ds["accuracy"].sel(run="all", split="test", subset="full").isel(epoch=-1)
        )
    for path in [scores] if isinstance(scores, str) else scores:
        sc = open_artifact(path, "scores")
        gathered.append(subnetwork_check(sc, plain.get(sc.attrs.get("experiment"))))
    write_claims(gathered, output, json)
    supported = sum(c.verdict == "supported" for c in gathered)
    log.info("%d of %d claims supported", supported, len(gathered))


STAGES = {
    "prepare_dataset": prepare_dataset,
    "corrupt_labels": corrupt_labels,
    "score": score,
    "subsets": subsets,
    "dynamics": dynamics,
    "gradstats": gradstats,
    "crosstrain": crosstrain,
    "sweep_level": sweep_level,
    "estimators": estimators,
    "truth_shard": truth_shard,
    "truth": truth,
    "influence": influence,
    "validation": validation,
    "figure": figure,
    "claims": claims,
}

#: stages that train: they take the execution settings
TRAINING = (
    "score",
    "dynamics",
    "gradstats",
    "crosstrain",
    "sweep_level",
    "estimators",
    "truth_shard",
    "influence",
)


@contextlib.contextmanager
def _logging_to(path: str | None):
    """Send logging, stdout and stderr (progress bars) to the rule's log file."""
    if not path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # append: a resumed run keeps the log of the run that was killed
    with open(path, "a", buffering=1) as fh:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        root = logging.getLogger()
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except (KeyboardInterrupt, SystemExit) as stop:
            log.error("stage stopped (%s); rerun to resume", type(stop).__name__)
            raise
        except BaseException:
            log.exception("stage failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = old_out, old_err


def execution_settings(smk, stage: str) -> dict:
    """``device``/``threads``/``checkpoint_every`` (training stages) and
    ``data_root``/``download`` (data) from the workflow config: execution settings,
    kept out of ``params`` so they never rerun a job.

    The torch thread count is the config's ``threads``, not the job's Snakemake
    ``threads`` (which ``--cores`` caps): the result must not depend on ``--cores``.
    """
    cfg = smk.config
    if stage == "prepare_dataset":
        return {"data_root": cfg.get("data_root", "data"), "download": cfg.get("download", False)}
    if stage not in TRAINING:
        return {}
    threads = int(cfg.get("threads", 1))
    if smk.threads < threads:
        log.warning(
            "Snakemake gave this job %d thread(s) (--cores caps it) but the config asks for "
            "threads: %d; using %d so that the results do not depend on --cores",
            smk.threads,
            threads,
            threads,
        )
    return {
        "device": cfg.get("device", "auto"),
        "threads": threads,
        "checkpoint_every": int(cfg.get("checkpoint_every", 5)),
    }


def run_from_snakemake(smk, stage: str) -> None:
    """Run ``stage`` with a Snakemake ``script:`` object's input/output/params."""
    os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
    func = STAGES[stage]
    named_inputs = {k: v if isinstance(v, str) else list(v) for k, v in smk.input.items()}
    params = dict(smk.params.items())
    for key in ("title", "caption"):  # for the report's caption only
        params.pop(key, None)
    if stage == "figure":  # figures take their inputs as one mapping
        kwargs = {"inputs": named_inputs, **params}
    else:
        kwargs = {**named_inputs, **params}
    kwargs.update(dict(smk.output.items()))  # rules name their outputs
    with _logging_to(smk.log[0] if len(smk.log) else None):
        log.info("stage %s started (pid %d)", stage, os.getpid())
        kwargs.update(execution_settings(smk, stage))
        func(**kwargs)
