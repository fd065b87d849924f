"""Each dataset the experiments use can be read, and each experiment's sizes fit its dataset."""

from __future__ import annotations

from collections.abc import Mapping

from ...data.sources import dataset_info, dataset_spec
from ...data.sources.arrays import check_file_pixels
from ...data.sources.builtin import DATASETS
from ...data.spec import DatasetError, DatasetInfo
from .recipe import _check_truth


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def dataset_infos(config: Mapping, bad: set[tuple] = frozenset()) -> tuple[dict, list[str]]:
    """Each dataset the experiments use: its info, or the problem reading it."""
    user = config.get("datasets") or {}
    root = config.get("data_root", "data")
    infos, errors = {}, []
    for name in user:
        if name in DATASETS:
            errors.append(f"datasets.{name}: is the name of a built-in dataset; choose another")
    used = {
        e.get("dataset")
        for e in (config.get("experiments") or {}).values()
        if isinstance(e, Mapping) and isinstance(e.get("dataset"), str)
    }
    for name in sorted(used):
        if name not in user and name not in DATASETS:
            continue  # the experiment check names it
        if ("datasets", name) in bad:
            continue
        where = f"datasets.{name}" if name in user else f"dataset {name!r}"
        try:
            spec = dataset_spec(name, user)
            infos[name] = dataset_info(spec, root)
            if spec.source == "arrays":  # NaN, inf or constant pixels, from a small file
                check_file_pixels(spec)
        except DatasetError as err:
            errors.append(f"{where}: {err}")
            continue
        if infos[name].n_test == 0:
            errors.append(
                f"{where}: the test split is empty (no example has split 'test'); the held-out "
                "accuracy needs test examples"
            )
    return infos, errors


def _check_sizes(where: str, exp: Mapping, info: DatasetInfo) -> list[str]:
    n_train, n_test, dataset = info.n_train, info.n_test, exp["dataset"]
    errors = []

    def over(key, value, limit, what):
        if _int(value) and value > limit:
            errors.append(f"{where}.{key}: {value} {what}")

    over(
        "corrupt",
        exp.get("corrupt", 0),
        n_train,
        f"exceeds the {n_train} training examples of {dataset}",
    )
    size = exp.get("subset_size")
    over(
        "subset_size",
        size,
        n_train // 2,
        f"is more than half of the {n_train} training examples of {dataset} (at most "
        f"{n_train // 2}), so the easy and difficult subsets would overlap",
    )
    over(
        "test_subset_size",
        exp.get("test_subset_size"),
        n_test // 2,
        f"is more than half of the {n_test} test examples of {dataset} (at most {n_test // 2})",
    )
    over(
        "batch_size",
        exp.get("batch_size"),
        n_train,
        f"is larger than the {n_train} training examples of {dataset}",
    )
    probe = exp.get("probe_size")
    if _int(probe) and size is None:
        errors.append(f"{where}.probe_size: needs subset_size to be set")
    elif _int(probe) and _int(size) and probe > size:
        errors.append(
            f"{where}.probe_size: {probe} is larger than the subsets (subset_size "
            f"{size}) it samples from"
        )
    levels = exp.get("corruption_levels") or []
    for level in levels:
        over(
            "corruption_levels",
            level,
            n_train,
            f"exceeds the {n_train} training examples of {dataset}",
        )
    if len(set(levels)) != len(levels):
        errors.append(f"{where}.corruption_levels: levels must be distinct, got {levels}")
    milestones = exp.get("milestones") or []
    if list(milestones) != sorted(set(milestones)):
        errors.append(f"{where}.milestones: must be increasing epochs, got {milestones!r}")
    errors += _check_truth(where, exp.get("truth"), n_train)
    return errors
