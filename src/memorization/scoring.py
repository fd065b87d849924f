"""Memorization scores from a model trained with turn-over dropout (eq. 6).

The memorization score of training example ``i`` is the loss of its muted
sub-network (never trained on ``i``, the stand-in for a model trained without
it) minus the loss of its unmuted sub-network (trained on everything), both in
eval mode. :func:`score_split` trains the turn-over model and scores every
example of the split it was trained on.
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
from .masks import TurnOverMasks
from .models import TurnOverNet, build_model
from .score_variants import sharpened_memorization
from .training import OptimConfig, fit, seed_everything

__all__ = ["SUBNETS", "influence", "score_examples", "score_split"]

log = logging.getLogger("memorization.scoring")

SUBNETS = ("unmuted", "muted")


@torch.inference_mode()
def score_examples(
    model: TurnOverNet,
    split: TensorSplit,
    masks: TurnOverMasks,
    batch_size: int = 1024,
    sharpen_temperature: float | None = None,
) -> dict[str, np.ndarray]:
    """Losses, label probabilities and predictions of both sub-networks for every example.

    ``masks`` addresses the examples of ``split`` by position. Work the two
    sub-networks share (e.g. the MLP's unmasked first layer) is done once. With
    ``sharpen_temperature``, also ``sharpened_memorization`` from the same logits
    (:func:`memorization.score_variants.sharpened_memorization`).
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
        pair = model.forward_pair(x, masks.unmuted(rows))
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


@torch.inference_mode()
def influence(
    model: TurnOverNet,
    masks: TurnOverMasks,
    train_rows: torch.Tensor,
    x_target: torch.Tensor,
    y_target: torch.Tensor,
) -> np.ndarray:
    """Influence of training examples on targets (eq. 5): [len(train_rows), n_targets].

    Entry (i, t) is the loss on target t of training example i's muted sub-network
    minus that of its unmuted one; on its own example it is the memorization score.
    """
    model.eval()
    out = np.empty((len(train_rows), len(x_target)), dtype=np.float32)
    for k, row in enumerate(train_rows.tolist()):
        unmuted = [m.expand(len(x_target), -1) for m in masks.unmuted(torch.tensor([row]))]
        logits_u, logits_m = model.forward_pair(x_target, unmuted)
        loss_u = F.cross_entropy(logits_u.float(), y_target, reduction="none")
        loss_m = F.cross_entropy(logits_m.float(), y_target, reduction="none")
        out[k] = (loss_m - loss_u).cpu().numpy()
    return out


def _masks(model, seed, examples, device, check_unique=True) -> TurnOverMasks:
    """The model's turn-over masks of these examples (its units and keep fraction)."""
    if hasattr(model, "turnover_masks"):
        return model.turnover_masks(seed, examples, device, check_unique=check_unique)
    return TurnOverMasks(seed, model.mask_units, examples, device, check_unique=check_unique)


def score_split(
    model_name: str,
    model_options: Mapping,
    split: TensorSplit,
    n_classes: int,
    opt: OptimConfig,
    seed: int,
    *,
    true_labels: np.ndarray | None = None,
    corrupted: np.ndarray | None = None,
    heldout: TensorSplit | None = None,
    score_batch_size: int = 1024,
    checkpoint: Checkpoint | None = None,
    progress: bool = True,
    return_model: bool = False,
    sharpen_temperature: float | None = None,
) -> xr.Dataset:
    """Train a turn-over model on ``split`` and return its scores as an xarray Dataset.

    ``return_model``: return ``(scores, model, masks)`` (e.g. for the influence of the
    training examples on other targets, eq. 5).

    ``sharpen_temperature``: also return ``sharpened_memorization``, the probability
    difference of the trained model's sub-networks at this softmax temperature
    (:func:`memorization.score_variants.sharpened_memorization`; 0.5 measured best
    against the Feldman-Zhang estimate on mnist5k).

    ``split`` must already be on the device to train on. ``subnet_accuracy`` and
    ``subnet_loss`` record both sub-networks on the training labels after every
    epoch (appendix D, figure 9). With ``heldout`` (examples never trained on, e.g.
    the test split), ``heldout_accuracy`` records both sub-networks on them under
    their own masks after every epoch: what a muted sub-network should approach on
    its training example if it behaves like a model that never saw it.

    With ``checkpoint``, the training resumes from it and saves there
    (:mod:`memorization.checkpoint`), the per-epoch records and the last epoch's
    scores included.
    """
    device = split.x.device
    seed_everything(seed)
    model = build_model(model_name, tuple(split.x.shape[1:]), n_classes, **model_options)
    model.to(device)
    masks = _masks(model, seed, split.examples, device)
    held_masks = None if heldout is None else _masks(model, seed, heldout.examples, device, False)
    history: dict[str, list[float]] = {
        f"{k}_{s}": [] for k in ("acc", "loss", "heldout") for s in SUBNETS
    }
    y = split.y.cpu().numpy()
    final: dict[str, np.ndarray] = {}
    if checkpoint is not None:
        checkpoint.track(Records(history=history, final=final))

    def after_epoch(epoch: int) -> dict[str, float]:
        final.clear()
        final.update(score_examples(model, split, masks, score_batch_size, sharpen_temperature))
        for s in SUBNETS:
            history[f"acc_{s}"].append(float((final[f"pred_{s}"] == y).mean()))
            history[f"loss_{s}"].append(float(final[f"loss_{s}"].mean()))
        info = {f"acc_{s}": history[f"acc_{s}"][-1] for s in SUBNETS}
        if heldout is not None:
            held = score_examples(model, heldout, held_masks, score_batch_size)
            y_held = heldout.y.cpu().numpy()
            for s in SUBNETS:
                history[f"heldout_{s}"].append(float((held[f"pred_{s}"] == y_held).mean()))
            info["heldout_muted"] = history["heldout_muted"][-1]
        return info

    fit(
        model,
        split,
        opt,
        seed=seed,
        masks=masks,
        after_epoch=after_epoch,
        checkpoint=checkpoint,
        desc="turn-over training",
        progress=progress,
    )
    if not final:  # zero epochs: score the untrained model
        after_epoch(0)
    n = len(split)
    true_labels = y if true_labels is None else np.asarray(true_labels)
    corrupted = np.zeros(n, bool) if corrupted is None else np.asarray(corrupted, bool)
    ex = ("example",)
    per_epoch = {}
    if heldout is not None:
        per_epoch["heldout_accuracy"] = (
            ("epoch", "subnet"),
            np.array([history[f"heldout_{s}"] for s in SUBNETS]).T.reshape(-1, 2),
        )
    ds = xr.Dataset(
        {
            **{k: (ex, v) for k, v in final.items()},
            **per_epoch,
            "label": (ex, y),
            "true_label": (ex, true_labels),
            "corrupted": (ex, corrupted),
            "mislabeled": (ex, y != true_labels),
            "subnet_accuracy": (
                ("epoch", "subnet"),
                np.array([history[f"acc_{s}"] for s in SUBNETS]).T.reshape(-1, 2),
            ),
            "subnet_loss": (
                ("epoch", "subnet"),
                np.array([history[f"loss_{s}"] for s in SUBNETS]).T.reshape(-1, 2),
            ),
        },
        coords={
            "example": split.examples,
            "epoch": np.arange(1, len(history["acc_unmuted"]) + 1) if opt.epochs else np.array([0]),
            "subnet": list(SUBNETS),
        },
    )
    ds.attrs["n_classes"] = int(n_classes)
    ds.attrs["masked_layers"] = len(model.mask_units)
    ds.attrs["mask_units"] = list(model.mask_units)
    ds.attrs["shared_parameters"] = ", ".join(model.shared_parameter_names()) or "none"
    if sharpen_temperature is not None:
        ds["sharpened_memorization"].attrs.update(
            long_name="p_unmuted(y) - p_muted(y) at softmax temperature "
            f"{float(sharpen_temperature):g}",
            units="1",
            temperature=float(sharpen_temperature),
        )
    if return_model:
        return ds, model, masks
    return ds
