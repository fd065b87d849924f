"""Memorization scores from a model trained with turn-over dropout (eq. 6).

The memorization score of training example ``i`` is the loss of its muted
sub-network (never trained on ``i``, the stand-in for a model trained without
it) minus the loss of its unmuted sub-network (trained on everything), both in
eval mode. :func:`score_split` trains the turn-over model and scores every
example of the split it was trained on; :func:`score_examples` scores the
examples of a split with a trained model.

Besides the paper's loss difference, three forms of the score come from the same
outputs (``score_form`` in the config picks the one the subsets rank by): the
probability difference ``p_unmuted(y) - p_muted(y)``, the 0/1 difference
``1[unmuted right] - 1[muted right]`` and the sharpened probability difference
(:func:`sharpened_memorization`, softmax temperature :data:`SHARPEN_TEMPERATURE`).

The cumulative form comes at no extra cost from the scoring pass the training already
makes after every epoch (:func:`train_turnover`): ``cumulative_memorization`` is the sum
over the epochs ``e = 1..E`` of the example's muted-minus-unmuted loss
``Σ_e [ℓ_muted(θ_e) - ℓ_unmuted(θ_e)]`` (the turn-over analogue of the cumulative sample
loss, :func:`memorization.trust.peers.cumulative_loss`; :data:`CUMULATIVE`), summed in
float64 from the per-epoch float32 scores and saved with the checkpoint's records, so a
resumed run sums exactly the same numbers. (A cumulative 0/1 form, ``E`` times the unmuted
minus the muted sub-network's learning speed, was tried on the digits against 100
retrained models and ranked worse than the 0/1 form itself on most metrics: not kept.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr
from torch.nn import functional as F

from ..data.tensors import TensorSplit
from .checkpoint import Checkpoint, Records
from .forms import CUMULATIVE, SCORE_FORMS, SHARPEN_TEMPERATURE
from .masks import TurnOverMasks
from .models.base import TurnOverNet
from .models.spec import ModelSpec
from .optim import OptimSpec
from .precision import autocast, to_channels_last_batch
from .training import fit

__all__ = [
    "CUMULATIVE",
    "SCORE_FORMS",
    "SHARPEN_TEMPERATURE",
    "SUBNETS",
    "TurnoverRun",
    "accumulate",
    "score_examples",
    "score_forms",
    "score_split",
    "scores_dataset",
    "sharpened_memorization",
    "train_turnover",
]

log = logging.getLogger(__name__)

SUBNETS = ("unmuted", "muted")


def sharpened_memorization(
    logits_unmuted: torch.Tensor,
    logits_muted: torch.Tensor,
    y: torch.Tensor,
    temperature: float = SHARPEN_TEMPERATURE,
) -> torch.Tensor:
    """``softmax(z_unmuted / T)[y] - softmax(z_muted / T)[y]`` per example.

    ``T = 1`` gives the probability form of the memorization score; smaller ``T``
    moves it towards the 0/1 form (``T -> 0``).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    t = float(temperature)
    p_u = F.log_softmax(logits_unmuted.float() / t, 1).gather(1, y[:, None])[:, 0].exp()
    p_m = F.log_softmax(logits_muted.float() / t, 1).gather(1, y[:, None])[:, 0].exp()
    return p_u - p_m


@torch.inference_mode()
def score_examples(
    model: TurnOverNet,
    split: TensorSplit,
    masks: TurnOverMasks,
    batch_size: int = 1024,
    sharpen_temperature: float | None = None,
    *,
    precision: str = "fp32",
    channels_last: bool = False,
) -> dict[str, np.ndarray]:
    """Losses, label probabilities and predictions of both sub-networks for every example.

    ``masks`` addresses the examples of ``split`` by position. Work the two
    sub-networks share (e.g. the MLP's unmasked first layer) is done once. With
    ``sharpen_temperature``, also ``sharpened_memorization`` from the same logits.
    The forward passes run in the training's ``precision`` (autocast,
    :mod:`.precision`) and, with ``channels_last``, on channels-last batches; losses and
    probabilities are computed in float32 from the logits.
    """
    model.eval()
    keys = [f"{k}_{s}" for k in ("loss", "prob", "pred") for s in SUBNETS]
    if sharpen_temperature is not None:
        keys.append("sharpened_memorization")
    out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    device = split.x.device
    for start in range(0, len(split), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(split)), device=device)
        x, y = split.x[rows], split.y[rows]
        with autocast(precision, device):  # fp32: no autocast at all
            pair = model.forward_pair(
                to_channels_last_batch(x) if channels_last else x, masks.unmuted(rows)
            )
        for subnet, logits in zip(SUBNETS, pair, strict=True):
            logp = F.log_softmax(logits.float(), dim=1)
            nll = -logp.gather(1, y[:, None])[:, 0]
            out[f"loss_{subnet}"].append(nll.cpu())
            out[f"prob_{subnet}"].append(nll.neg().exp().cpu())
            out[f"pred_{subnet}"].append(logits.argmax(1).cpu())
        if sharpen_temperature is not None:
            sharp = sharpened_memorization(*pair, y, sharpen_temperature)
            out["sharpened_memorization"].append(sharp.cpu())
    res = {k: torch.cat(v).numpy() for k, v in out.items()}
    res["memorization"] = res["loss_muted"] - res["loss_unmuted"]
    res.update(score_forms(res, split.y.cpu().numpy()))
    return res


def score_forms(res: dict[str, np.ndarray], y: np.ndarray) -> dict[str, np.ndarray]:
    """The two other forms of the memorization score, from both sub-networks' outputs:
    probability difference p_unmuted(y) - p_muted(y) and 0/1 difference
    1[unmuted right] - 1[muted right] (the loss difference is ``memorization``)."""
    right_u = (res["pred_unmuted"] == y).astype(np.float32)
    right_m = (res["pred_muted"] == y).astype(np.float32)
    return {
        "probability_memorization": res["prob_unmuted"] - res["prob_muted"],
        "zero_one_memorization": right_u - right_m,
    }


@dataclass
class TurnoverRun:
    """A trained turn-over model, its masks, and what was recorded after every epoch.

    ``final``: :func:`score_examples` of the last epoch; ``history``: per epoch, both
    sub-networks' accuracy (``acc_*``) and mean loss (``loss_*``) on the training
    labels and, with held-out examples, their accuracy there (``heldout_*``);
    ``cumulative``: the running sums over the epochs of :data:`CUMULATIVE`.
    """

    model: TurnOverNet
    masks: TurnOverMasks
    n_heldout: int = 0
    final: dict[str, np.ndarray] = field(default_factory=dict)
    history: dict[str, list[float]] = field(
        default_factory=lambda: {
            f"{k}_{s}": [] for k in ("acc", "loss", "heldout") for s in SUBNETS
        }
    )
    cumulative: dict[str, np.ndarray] = field(default_factory=dict)


def accumulate(sums: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> None:
    """Add one epoch's scores to the running sums of :data:`CUMULATIVE` (float64), in place."""
    for name, per_epoch in CUMULATIVE.items():
        add = np.asarray(scores[per_epoch], dtype=np.float64)
        sums[name] = sums[name] + add if name in sums else add.copy()


def train_turnover(
    model: ModelSpec,
    split: TensorSplit,
    opt: OptimSpec,
    seed: int,
    *,
    heldout: TensorSplit | None = None,
    score_batch_size: int = 1024,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    sharpen_temperature: float | None = None,
) -> TurnoverRun:
    """Train a turn-over model on ``split`` (already on its device), scoring after every epoch.

    With ``heldout`` (examples never trained on, e.g. the test split), both
    sub-networks' accuracy on them under their own masks is recorded after every
    epoch: what a muted sub-network should approach on its training example if it
    behaves like a model that never saw it. With ``checkpoint``, the training
    resumes from it and saves there, the records included.
    """
    device = split.x.device
    net = model.build(tuple(split.x.shape[1:]), seed=seed).to(device)
    run = TurnoverRun(net, net.turnover_masks(seed, split.examples, device))
    run.n_heldout = 0 if heldout is None else len(heldout)
    held_masks = None
    if heldout is not None:
        held_masks = net.turnover_masks(seed, heldout.examples, device, check_unique=False)
    y = split.y.cpu().numpy()
    if checkpoint is not None:
        checkpoint.track(Records(history=run.history, final=run.final, cumulative=run.cumulative))
    arith = {"precision": opt.precision, "channels_last": opt.channels_last}

    def after_epoch(epoch: int) -> dict[str, float]:
        run.final.clear()
        run.final.update(
            score_examples(net, split, run.masks, score_batch_size, sharpen_temperature, **arith)
        )
        accumulate(run.cumulative, run.final)
        for s in SUBNETS:
            run.history[f"acc_{s}"].append(float((run.final[f"pred_{s}"] == y).mean()))
            run.history[f"loss_{s}"].append(float(run.final[f"loss_{s}"].mean()))
        info = {f"acc_{s}": run.history[f"acc_{s}"][-1] for s in SUBNETS}
        if heldout is not None:
            held = score_examples(net, heldout, held_masks, score_batch_size, **arith)
            y_held = heldout.y.cpu().numpy()
            for s in SUBNETS:
                run.history[f"heldout_{s}"].append(float((held[f"pred_{s}"] == y_held).mean()))
            info["heldout_muted"] = run.history["heldout_muted"][-1]
        return info

    fit(
        net,
        split,
        opt,
        seed=seed,
        masks=run.masks,
        after_epoch=after_epoch,
        checkpoint=checkpoint,
        desc="turn-over training",
        progress=progress,
    )
    if not run.final:  # zero epochs: score the untrained model
        after_epoch(0)
    return run


def _per_epoch(history: dict[str, list[float]], key: str) -> tuple[tuple[str, str], np.ndarray]:
    return ("epoch", "subnet"), np.array([history[f"{key}_{s}"] for s in SUBNETS]).T.reshape(-1, 2)


def scores_dataset(
    run: TurnoverRun,
    split: TensorSplit,
    n_epochs: int,
    *,
    true_labels: np.ndarray | None = None,
    corrupted: np.ndarray | None = None,
    sharpen_temperature: float | None = None,
) -> xr.Dataset:
    """The ``scores`` artifact's Dataset of a finished :class:`TurnoverRun`."""
    y = split.y.cpu().numpy()
    n = len(split)
    true_labels = y if true_labels is None else np.asarray(true_labels)
    corrupted = np.zeros(n, bool) if corrupted is None else np.asarray(corrupted, bool)
    ex = ("example",)
    per_epoch = {}
    if run.history["heldout_muted"]:
        per_epoch["heldout_accuracy"] = _per_epoch(run.history, "heldout")
    ds = xr.Dataset(
        {
            **{k: (ex, v) for k, v in run.final.items()},
            **{k: (ex, v) for k, v in run.cumulative.items()},
            **per_epoch,
            "label": (ex, y),
            "true_label": (ex, true_labels),
            "corrupted": (ex, corrupted),
            "mislabeled": (ex, y != true_labels),
            "subnet_accuracy": _per_epoch(run.history, "acc"),
            "subnet_loss": _per_epoch(run.history, "loss"),
        },
        coords={
            "example": split.examples,
            "epoch": np.arange(1, len(run.history["acc_unmuted"]) + 1)
            if n_epochs
            else np.array([0]),
            "subnet": list(SUBNETS),
        },
    )
    if run.history["heldout_muted"]:
        ds.attrs["n_heldout"] = int(run.n_heldout)
    ds.attrs["masked_layers"] = len(run.model.mask_units)
    ds.attrs["mask_units"] = list(run.model.mask_units)
    ds.attrs["shared_parameters"] = ", ".join(run.model.shared_parameter_names()) or "none"
    if sharpen_temperature is not None:
        ds["sharpened_memorization"].attrs.update(
            long_name="p_unmuted(y) - p_muted(y) at softmax temperature "
            f"{float(sharpen_temperature):g}",
            units="1",
            temperature=float(sharpen_temperature),
        )
    return ds


def score_split(
    model: ModelSpec,
    split: TensorSplit,
    opt: OptimSpec,
    seed: int,
    *,
    true_labels: np.ndarray | None = None,
    corrupted: np.ndarray | None = None,
    heldout: TensorSplit | None = None,
    score_batch_size: int = 1024,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    sharpen_temperature: float | None = None,
) -> xr.Dataset:
    """Train a turn-over model on ``split`` and return its scores as an xarray Dataset.

    ``model`` must know its classes (:meth:`ModelSpec.with_classes`). The Dataset
    holds every example's scores in every form, both sub-networks' losses,
    probabilities and predictions, and per epoch both sub-networks' accuracy and loss
    on the training labels (appendix D, figure 9) and, with ``heldout``, on held-out
    examples (:func:`train_turnover`).
    """
    run = train_turnover(
        model,
        split,
        opt,
        seed,
        heldout=heldout,
        score_batch_size=score_batch_size,
        checkpoint=checkpoint,
        progress=progress,
        sharpen_temperature=sharpen_temperature,
    )
    ds = scores_dataset(
        run,
        split,
        opt.epochs,
        true_labels=true_labels,
        corrupted=corrupted,
        sharpen_temperature=sharpen_temperature,
    )
    ds.attrs["n_classes"] = int(model.n_classes)
    return ds
