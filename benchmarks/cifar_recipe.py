"""Which training recipe makes config/cifar_resnet.yaml's ResNet-18 worth measuring.

Trains the experiment's model plainly (no turn-over masks: they change only the
classifier's input) exactly as the workflow builds it: the config's dataset, its split,
its ``corrupt`` random labels, the model from its options and the training from
:func:`memorization.method.training.fit`. Every recipe is the config's experiment with
some keys replaced. Prints one markdown table: recipe, epochs, wall seconds, training
accuracy on the examples whose label is right, held-out test accuracy, and the fraction
of the wrong (random) labels fitted. Not a test: it needs the arrays file and minutes of
CPU per recipe.

    python benchmarks/cifar_recipe.py --data /path/to/cifar10.npz --recipes a b c
        [--config config/cifar_resnet.yaml] [--epochs 15] [--threads 1]
        [--set KEY=VALUE ...] [--time-rows 1024]

``--set`` adds an ad-hoc recipe (``custom``) from experiment keys (YAML values);
``--time-rows N`` trains one epoch on N training rows only and extrapolates a full
epoch's seconds (for recipes too slow to train here).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import yaml

from memorization.data import corrupt_labels, prepare_dataset
from memorization.method.training import fit
from memorization.studies.plain import evaluate, plain_model
from memorization.workflow.specs import Experiment
from memorization.workflow.stages.common import split_tensors

#: the earlier recipe of config/cifar_resnet.yaml: SGD, x0.1 after epoch 20 of 30
_SGD = {
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "schedule": None,  # None: removed (the default)
    "warmup_epochs": None,
    "milestones": [20],
    "epochs": 30,
    "precision": None,
    "channels_last": None,
}
_ADAMW = {
    "optimizer": "adamw",
    "lr": 0.002,
    "weight_decay": 0.05,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "momentum": None,
    "milestones": None,
    "precision": None,
    "channels_last": None,
}
#: the candidate recipes: experiment keys replaced in the config's experiment (each sets
#: every recipe key, so the recipe does not depend on the config's current one)
RECIPES: dict[str, dict] = {
    "a": _SGD,
    "b": _ADAMW,
    "c": dict(_ADAMW, precision="bf16", channels_last=True),
    "d": dict(_ADAMW, precision="bf16", channels_last=True, small_input=True),
}


def experiment(config: str, data: str, keys: dict, epochs: int | None) -> Experiment:
    """The config's (only) experiment with ``keys`` replaced (None: removed)."""
    with open(config) as fh:
        cfg = yaml.safe_load(fh)
    name, exp = next(iter(cfg["experiments"].items()))
    exp = dict(exp)
    for key, value in keys.items():
        exp.pop(key, None) if value is None else exp.__setitem__(key, value)
    if epochs is not None:
        if exp.get("milestones"):  # the step schedule's milestones at the same fraction
            old = exp["epochs"]
            exp["milestones"] = [max(1, round(m * epochs / old)) for m in exp["milestones"]]
        exp["epochs"] = epochs
    datasets = dict(cfg["datasets"])
    datasets[exp["dataset"]] = dict(datasets[exp["dataset"]], path=data)
    return Experiment.from_config(name, exp, datasets)


def run(exp: Experiment, time_rows: int | None) -> dict:
    """Train the plain model; the table's numbers."""
    data = prepare_dataset(exp.dataset)
    model = exp.model.with_classes(data.sizes["class"])
    train = split_tensors(data, "train", model)
    test = split_tensors(data, "test", model)
    true = train.y.numpy()
    noisy, _ = corrupt_labels(
        true, exp.labels.corrupt, data.sizes["class"], exp.labels.seed, exp.labels.corruption
    )
    train.y = torch.as_tensor(noisy, dtype=torch.int64)
    wrong = noisy != true
    net = plain_model(model, train, exp.seed)
    prec = exp.optim.precision
    seconds: list[float] = []
    t0 = time.perf_counter()

    def after_epoch(epoch: int):
        seconds.append(time.perf_counter() - t0)
        if time_rows:
            return None
        acc = float(evaluate(net, test, precision=prec)[0].mean())
        print(f"  epoch {epoch}: {seconds[-1]:.0f} s, test {acc:.3f}", flush=True)
        return {"test": acc}

    positions = None
    if time_rows:
        positions = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        positions = positions[:time_rows]
    fit(
        net,
        train,
        exp.optim,
        seed=exp.seed,
        positions=positions,
        after_epoch=after_epoch,
        progress=False,
    )
    wall = time.perf_counter() - t0
    if time_rows:
        per_epoch = seconds[0] * len(train) / time_rows
        return {"epoch_s": per_epoch, "wall": per_epoch * exp.optim.epochs, "estimated": True}
    train_ok = evaluate(net, train, precision=prec)[0]
    return {
        "epoch_s": wall / exp.optim.epochs,
        "wall": wall,
        "clean": float(train_ok[~wrong].mean()),
        "test": float(evaluate(net, test, precision=prec)[0].mean()),
        "fitted": float(train_ok[wrong].mean()),
        "estimated": False,
    }


def _describe(keys: dict) -> str:
    shown = {k: v for k, v in keys.items() if v is not None}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "the config's recipe"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/cifar_resnet.yaml")
    ap.add_argument("--data", required=True, help="the arrays file (keys x, y)")
    ap.add_argument("--recipes", nargs="*", default=["a", "b", "c"], choices=sorted(RECIPES))
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE: a custom recipe")
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--time-rows", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipes = {r: RECIPES[r] for r in args.recipes}
    if args.set:
        custom = dict(s.split("=", 1) for s in args.set)
        recipes["custom"] = {k: yaml.safe_load(v) for k, v in custom.items()}
    rows = []
    for name, keys in recipes.items():
        exp = experiment(args.config, args.data, keys, args.epochs)
        print(f"{name}: {_describe(keys)}, {exp.optim.epochs} epochs", flush=True)
        row = run(exp, args.time_rows) | {"name": name, "keys": keys, "epochs": exp.optim.epochs}
        rows.append(row)
        print(f"  {row}", flush=True)
    print(
        f"\n{args.threads} torch thread(s); train accuracy on the right labels, fraction of "
        "the wrong (random) labels fitted\n"
    )
    print(
        "| recipe | epochs | s / epoch | wall s | train acc (right labels) | test acc "
        "| random labels fitted |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        est = " (estimated)" if r["estimated"] else ""
        nums = (
            "n/a | n/a | n/a"
            if r["estimated"]
            else f"{r['clean']:.3f} | {r['test']:.3f} | {r['fitted']:.3f}"
        )
        print(
            f"| {r['name']}: {_describe(r['keys'])} | {r['epochs']} | {r['epoch_s']:.1f}{est} "
            f"| {r['wall']:.0f}{est} | {nums} |"
        )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
