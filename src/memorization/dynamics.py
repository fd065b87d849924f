"""How easy and difficult examples are learnt (section 3.2-3.3, appendix E).

Every study here trains the experiment's model *plainly* (no turn-over masks) on
its (possibly corrupted) training labels and records, after every epoch, what
the paper plots:

- :func:`training_dynamics`: accuracy and loss over (``run``, ``epoch``,
  ``split``, ``subset``); ``run`` is ``all`` (the whole training set) and
  ``without_difficult`` (the control run of figure 5, trained with the difficult
  subset removed);
- :func:`gradient_statistics`: the same training as the ``all`` run (same seed,
  same batches), with the contribution of every example to its mini-batch's
  update (eq. 4) averaged per epoch over the easy / difficult / full examples of
  the batches, and the mean pairwise cosine similarity (eq. 3) of fixed probe
  samples of each subset;
- :func:`cross_training`: train on the easy subset only and on the difficult
  subset only, accuracy on both (figure 6);
- :func:`corruption_level`: train and test accuracy at one corruption level
  (figure 10).

Accuracies on the training split use the labels the model is trained on (the
corrupted ones); on the test split the true labels.

Each takes an optional :class:`~memorization.checkpoint.Checkpoint`: the training
resumes from it and saves there, with the records so far and, for the studies
with two runs, which run is finished.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr
from torch.nn import functional as F

from .checkpoint import Checkpoint, Records
from .data import TensorSplit
from .models import build_model
from .training import OptimConfig, fit, seed_everything

__all__ = [
    "SUBSETS",
    "corruption_level",
    "cross_training",
    "gradient_statistics",
    "training_dynamics",
]

log = logging.getLogger("memorization.dynamics")

SUBSETS = ("full", "easy", "difficult")
RUNS = ("all", "without_difficult")


@torch.inference_mode()
def _per_example(model, split: TensorSplit, batch_size: int = 1024):
    """(correct, loss) of the plain model for every example of ``split``."""
    model.eval()
    correct, losses = [], []
    for start in range(0, len(split), batch_size):
        x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
        logits = model(x)
        correct.append((logits.argmax(1) == y).cpu())
        losses.append(F.cross_entropy(logits.float(), y, reduction="none").cpu())
    return torch.cat(correct).numpy(), torch.cat(losses).numpy()


def _subset_means(values: np.ndarray, members: Mapping[str, np.ndarray]) -> list[float]:
    return [float(values[members[s]].mean()) if members[s].any() else np.nan for s in members]


def _new_model(model_name, model_options, split, n_classes, seed):
    seed_everything(seed)
    model = build_model(
        model_name, tuple(split.x.shape[1:]), n_classes, turnover=False, **model_options
    )
    return model.to(split.x.device)


def _members(subsets: Mapping[str, np.ndarray] | None, n: int) -> dict[str, np.ndarray]:
    """Boolean rows of the full split and of its easy/difficult subsets (if given)."""
    out = {"full": np.ones(n, dtype=bool)}
    if subsets is not None:
        out.update({k: np.asarray(subsets[k], dtype=bool) for k in ("easy", "difficult")})
    return out


def training_dynamics(
    model_name: str,
    model_options: Mapping,
    train: TensorSplit,
    test: TensorSplit,
    n_classes: int,
    opt: OptimConfig,
    seed: int,
    train_subsets: Mapping[str, np.ndarray] | None,
    test_subsets: Mapping[str, np.ndarray] | None,
    *,
    control: bool = True,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Accuracy/loss per epoch on the full, easy and difficult train and test examples.

    ``*_subsets`` map ``easy``/``difficult`` to boolean arrays over the split's rows;
    ``None`` records the full splits only. Epoch 0 is the untrained model.
    """
    members = {
        "train": _members(train_subsets, len(train)),
        "test": _members(test_subsets, len(test)),
    }
    runs = RUNS if control else RUNS[:1]
    subsets = list(members["train"])
    acc = np.full((len(runs), opt.epochs + 1, 2, len(subsets)), np.nan)
    loss = np.full_like(acc, np.nan)
    if checkpoint is not None:
        checkpoint.track(Records(accuracy=acc, loss=loss))
    for r, run in enumerate(runs):
        if checkpoint is not None and checkpoint.finished(run):
            continue
        model = _new_model(model_name, model_options, train, n_classes, seed)
        positions = None
        if run == "without_difficult":
            positions = torch.from_numpy(np.flatnonzero(~members["train"]["difficult"]))

        def record(epoch: int, r=r, model=model) -> dict[str, float]:
            for s, split in enumerate((train, test)):
                correct, losses = _per_example(model, split)
                name = ("train", "test")[s]
                acc[r, epoch, s] = _subset_means(correct.astype(float), members[name])
                loss[r, epoch, s] = _subset_means(losses, members[name])
            return {"train_acc": acc[r, epoch, 0, 0], "test_acc": acc[r, epoch, 1, 0]}

        record(0)
        fit(
            model,
            train,
            opt,
            seed=seed,
            positions=positions,
            after_epoch=record,
            checkpoint=None if checkpoint is None else checkpoint.run(run),
            desc=f"plain training ({run})",
            progress=progress,
        )
        if checkpoint is not None:
            checkpoint.finish(run)
    sizes = np.array([[m.sum() for m in members[s].values()] for s in ("train", "test")])
    return xr.Dataset(
        {
            "accuracy": (("run", "epoch", "split", "subset"), acc),
            "loss": (("run", "epoch", "split", "subset"), loss),
            "subset_size": (("split", "subset"), sizes),
        },
        coords={
            "run": list(runs),
            "epoch": np.arange(opt.epochs + 1),
            "split": ["train", "test"],
            "subset": subsets,
        },
    )


def gradient_statistics(
    model_name: str,
    model_options: Mapping,
    train: TensorSplit,
    n_classes: int,
    opt: OptimConfig,
    seed: int,
    train_subsets: Mapping[str, np.ndarray],
    probe_size: int | None = None,
    *,
    cosine_pairs: str = "probe",
    method: str = "auto",
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Contribution (eq. 4) and cosine similarity (eq. 3) per epoch and subset.

    Trains exactly as the ``all`` run of :func:`training_dynamics` (same seed and
    batches); the contributions come from the training steps themselves. The
    cosine similarity is taken over one of two pair sets (``cosine_pairs``):

    - ``probe``: fixed probe samples (``probe_size`` examples of each subset, drawn
      once with the seed), measured after every epoch;
    - ``batch``: the pairs of the subset's examples within each training batch (the
      paper's footnote 2: per-example gradients of the batch, before its update),
      averaged over all such pairs of the epoch.
    """
    from .gradstats import contributions, cosine_similarity

    if cosine_pairs not in ("probe", "batch"):
        raise ValueError(f"cosine_pairs must be 'probe' or 'batch', got {cosine_pairs!r}")
    if cosine_pairs == "probe" and not probe_size:
        raise ValueError("the probe cosine similarity needs a probe_size")
    members = _members(train_subsets, len(train))
    probes = {}
    if cosine_pairs == "probe":
        rng = np.random.default_rng([seed, 0xC05])
        probes = {
            s: np.sort(
                rng.choice(np.flatnonzero(m), size=min(probe_size, int(m.sum())), replace=False)
            )
            for s, m in members.items()
        }
    model = _new_model(model_name, model_options, train, n_classes, seed)
    member_t = {s: torch.from_numpy(m).to(train.x.device) for s, m in members.items()}
    epoch_sum = {s: 0.0 for s in SUBSETS}
    epoch_count = {s: 0 for s in SUBSETS}
    pair_sum = {s: 0.0 for s in SUBSETS}  # sum of pairwise cosines within batches
    pair_count = {s: 0 for s in SUBSETS}
    contribution = np.full((opt.epochs, len(SUBSETS)), np.nan)
    cosine = np.full((opt.epochs, len(SUBSETS)), np.nan)
    if checkpoint is not None:  # the within-epoch sums too: a signal saves mid-epoch
        checkpoint.track(
            Records(
                contribution=contribution,
                cosine=cosine,
                epoch_sum=epoch_sum,
                epoch_count=epoch_count,
                pair_sum=pair_sum,
                pair_count=pair_count,
            )
        )

    def step(x, y, rows):
        model.train()
        if cosine_pairs == "batch":  # on the parameters this batch's gradient is taken at
            for s in SUBSETS:
                sel = member_t[s][rows]
                n = int(sel.sum())
                if n >= 2:
                    mean = cosine_similarity(model, x[sel], y[sel], method=method, chunk_size=256)
                    pair_sum[s] += mean * n * (n - 1)
                    pair_count[s] += n * (n - 1)
        loss, contrib = contributions(model, x, y, method=method)
        contrib = contrib.detach()
        for s in SUBSETS:
            sel = member_t[s][rows]
            epoch_sum[s] += float(contrib[sel].double().sum())
            epoch_count[s] += int(sel.sum())
        return loss

    def after_epoch(epoch: int) -> dict[str, float]:
        model.eval()
        for k, s in enumerate(SUBSETS):
            contribution[epoch - 1, k] = epoch_sum[s] / max(epoch_count[s], 1)
            epoch_sum[s], epoch_count[s] = 0.0, 0
            if cosine_pairs == "batch":
                cosine[epoch - 1, k] = pair_sum[s] / pair_count[s] if pair_count[s] else np.nan
                pair_sum[s], pair_count[s] = 0.0, 0
                continue
            rows = torch.from_numpy(probes[s]).to(train.x.device)
            cosine[epoch - 1, k] = cosine_similarity(
                model, train.x[rows], train.y[rows], method=method, chunk_size=256
            )
        return {f"cos_{s}": cosine[epoch - 1, k] for k, s in enumerate(SUBSETS)}

    fit(
        model,
        train,
        opt,
        seed=seed,
        step=step,
        after_epoch=after_epoch,
        checkpoint=checkpoint,
        desc="plain training with gradient statistics",
        progress=progress,
    )
    ds = xr.Dataset(
        {
            "contribution": (("epoch", "subset"), contribution),
            "cosine_similarity": (("epoch", "subset"), cosine),
            "probe_size": (("subset",), np.array([len(probes.get(s, ())) for s in SUBSETS])),
        },
        coords={"epoch": np.arange(1, opt.epochs + 1), "subset": list(SUBSETS)},
    )
    ds["probe_size"].attrs.update(
        long_name="examples in the cosine-similarity probe", units="examples"
    )
    return ds


def cross_training(
    model_name: str,
    model_options: Mapping,
    train: TensorSplit,
    n_classes: int,
    opt: OptimConfig,
    seed: int,
    train_subsets: Mapping[str, np.ndarray],
    *,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Train on the easy subset only, then on the difficult subset only (figure 6)."""
    members = _members(train_subsets, len(train))
    names = ("easy", "difficult")
    acc = np.full((opt.epochs + 1, 2, 2), np.nan)
    loss = np.full_like(acc, np.nan)
    if checkpoint is not None:
        checkpoint.track(Records(accuracy=acc, loss=loss))
    for t, train_on in enumerate(names):
        if checkpoint is not None and checkpoint.finished(train_on):
            continue
        model = _new_model(model_name, model_options, train, n_classes, seed)
        positions = torch.from_numpy(np.flatnonzero(members[train_on]))

        def record(epoch: int, t=t, model=model) -> dict[str, float]:
            correct, losses = _per_example(model, train)
            for e, evaluate_on in enumerate(names):
                acc[epoch, t, e] = correct[members[evaluate_on]].mean()
                loss[epoch, t, e] = losses[members[evaluate_on]].mean()
            return {f"acc_{n}": acc[epoch, t, e] for e, n in enumerate(names)}

        record(0)
        fit(
            model,
            train,
            opt,
            seed=seed,
            positions=positions,
            after_epoch=record,
            checkpoint=None if checkpoint is None else checkpoint.run(train_on),
            desc=f"training on the {train_on} subset",
            progress=progress,
        )
        if checkpoint is not None:
            checkpoint.finish(train_on)
    return xr.Dataset(
        {
            "accuracy": (("epoch", "train_on", "evaluate_on"), acc),
            "loss": (("epoch", "train_on", "evaluate_on"), loss),
        },
        coords={
            "epoch": np.arange(opt.epochs + 1),
            "train_on": list(names),
            "evaluate_on": list(names),
        },
    )


def corruption_level(
    model_name: str,
    model_options: Mapping,
    train: TensorSplit,
    test: TensorSplit,
    n_classes: int,
    opt: OptimConfig,
    seed: int,
    *,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Train and test accuracy per epoch at one corruption level (figure 10).

    ``train`` carries the corrupted labels; the layout is that of
    :func:`training_dynamics` with one run and the ``full`` subset only.
    """
    return training_dynamics(
        model_name,
        model_options,
        train,
        test,
        n_classes,
        opt,
        seed,
        None,
        None,
        control=False,
        checkpoint=checkpoint,
        progress=progress,
    )
