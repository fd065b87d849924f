"""The optimizer of every training run: SGD with momentum and a multi-step schedule (the
paper's), or AdamW; a step or cosine schedule with linear warm-up; gradient clipping, by
the global norm (plain training only) or element-wise (turn-over training too)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..infra.options import Option

if TYPE_CHECKING:
    import torch

__all__ = [
    "CLIP_NORM_REFUSAL",
    "OPTIONS",
    "OptimSpec",
    "build_optimizer",
    "clip_gradients",
    "epoch_lr",
    "lr_factor",
    "optimizer_state_copies",
    "recipe_problems",
    "turnover_clip_problems",
]

#: the optimizer's config options (appendix A: SGD, momentum, lr divided at milestones)
OPTIONS = {
    "epochs": Option(doc="training epochs", schema={"type": "integer", "minimum": 1}),
    "lr": Option(doc="learning rate", schema={"type": "number", "exclusiveMinimum": 0}),
    "momentum": Option(0.0, "SGD momentum", {"type": "number", "minimum": 0, "maximum": 1}),
    "batch_size": Option(doc="mini-batch size", schema={"type": "integer", "minimum": 1}),
    "milestones": Option(
        (),
        "epochs after which the learning rate is multiplied by gamma",
        {"type": "array", "items": {"type": "integer", "minimum": 1}},
    ),
    "gamma": Option(
        0.1, "learning-rate factor at each milestone", {"type": "number", "exclusiveMinimum": 0}
    ),
    "weight_decay": Option(0.0, "L2 weight decay", {"type": "number", "minimum": 0}),
    "optimizer": Option(
        "sgd",
        "sgd (momentum, weight decay added to the gradient, the paper's) or adamw (Adam with "
        "decoupled weight decay)",
        {"enum": ["sgd", "adamw"]},
    ),
    "betas": Option(
        (0.9, 0.999),
        "AdamW's moment coefficients (beta1, beta2)",
        {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            "minItems": 2,
            "maxItems": 2,
        },
    ),
    "eps": Option(1.0e-8, "AdamW's epsilon", {"type": "number", "exclusiveMinimum": 0}),
    "schedule": Option(
        "step",
        "learning-rate schedule: step (multiplied by gamma after each milestone, the paper's) "
        "or cosine (from lr down to 0 over the epochs after warm-up)",
        {"enum": ["step", "cosine"]},
    ),
    "warmup_epochs": Option(
        0,
        "epochs over which the learning rate rises linearly to lr before the schedule starts",
        {"type": "integer", "minimum": 0},
    ),
    "clip_norm": Option(
        None,
        "clip the gradient of each step to this global norm (null: no clipping); the config "
        "check refuses it, since the norm makes every parameter's step depend on every "
        "example and turn-over training would no longer be exact: use clip_value (plain "
        "training from Python can clip by the norm)",
        {"type": ["number", "null"], "exclusiveMinimum": 0},
    ),
    "clip_value": Option(
        None,
        "clamp each entry of each step's gradient to [-clip_value, clip_value] (null: no "
        "clipping); an entry's clamp depends on that entry's gradient alone, so turn-over "
        "training stays exact; not together with clip_norm",
        {"type": ["number", "null"], "exclusiveMinimum": 0},
    ),
    "precision": Option(
        "fp32",
        "arithmetic of training and scoring: fp32; bf16 (autocast, where the CPU or GPU has "
        "it); fp16 (autocast with loss scaling, GPUs)",
        {"enum": ["fp32", "bf16", "fp16"]},
    ),
    "channels_last": Option(
        False,
        "keep images and convolution weights in channels-last memory layout (faster "
        "convolutions on GPUs and on CPUs with matrix units)",
        {"type": "boolean"},
    ),
    "augment": Option(
        "none",
        "training-batch augmentation: none; crop_flip (shifts of up to 4 pixels and left-right "
        "flips, the standard CIFAR-10 augmentation); flip. Scores and accuracies are always "
        "taken on the images as they are",
        {"enum": ["none", "crop_flip", "flip"]},
    ),
}


@dataclass(frozen=True)
class OptimSpec:
    """SGD with momentum and a multi-step learning-rate schedule (appendix A)."""

    epochs: int
    lr: float
    momentum: float = 0.0
    batch_size: int = 256
    milestones: tuple[int, ...] = field(default_factory=tuple)
    gamma: float = 0.1
    weight_decay: float = 0.0
    augment: str = "none"
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1.0e-8
    schedule: str = "step"
    warmup_epochs: int = 0
    clip_norm: float | None = None
    clip_value: float | None = None
    precision: str = "fp32"
    channels_last: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping) -> OptimSpec:
        """From a mapping with the keys of :data:`OPTIONS` (defaults applied)."""
        return cls(
            epochs=int(cfg["epochs"]),
            lr=float(cfg["lr"]),
            momentum=float(cfg.get("momentum", OPTIONS["momentum"].default)),
            batch_size=int(cfg["batch_size"]),
            milestones=tuple(int(m) for m in cfg.get("milestones") or ()),
            gamma=float(cfg.get("gamma", OPTIONS["gamma"].default)),
            weight_decay=float(cfg.get("weight_decay", OPTIONS["weight_decay"].default)),
            augment=str(cfg.get("augment", OPTIONS["augment"].default)),
            optimizer=str(cfg.get("optimizer", OPTIONS["optimizer"].default)),
            betas=tuple(float(b) for b in cfg.get("betas", OPTIONS["betas"].default)),
            eps=float(cfg.get("eps", OPTIONS["eps"].default)),
            schedule=str(cfg.get("schedule", OPTIONS["schedule"].default)),
            warmup_epochs=int(cfg.get("warmup_epochs", OPTIONS["warmup_epochs"].default)),
            clip_norm=None if cfg.get("clip_norm") is None else float(cfg["clip_norm"]),
            clip_value=None if cfg.get("clip_value") is None else float(cfg["clip_value"]),
            precision=str(cfg.get("precision", OPTIONS["precision"].default)),
            channels_last=bool(cfg.get("channels_last", OPTIONS["channels_last"].default)),
        )

    @classmethod
    def from_params(cls, params: Mapping) -> OptimSpec:
        """The inverse of :meth:`params`."""
        return cls.from_config(params)

    def params(self) -> dict:
        """The YAML-able form a config slice records."""
        return {
            "epochs": self.epochs,
            "lr": self.lr,
            "momentum": self.momentum,
            "batch_size": self.batch_size,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "weight_decay": self.weight_decay,
            # only where used: the slices (and config hashes) of runs without stay as they were
            **({"augment": self.augment} if self.augment != "none" else {}),
            **self._recipe_params(),
        }

    def _recipe_params(self) -> dict:
        """The recipe keys that differ from their defaults (a run with the defaults records
        none of them, so its slices and hashes stay those of the SGD-only releases)."""
        values = {
            "optimizer": self.optimizer,
            "betas": list(self.betas),
            "eps": self.eps,
            "schedule": self.schedule,
            "warmup_epochs": self.warmup_epochs,
            "clip_norm": self.clip_norm,
            "clip_value": self.clip_value,
            "precision": self.precision,
            "channels_last": self.channels_last,
        }
        defaults = {k: OPTIONS[k].default for k in values}
        defaults["betas"] = list(defaults["betas"])
        adam_only = ("betas", "eps")
        return {
            k: v
            for k, v in values.items()
            if v != defaults[k] and (self.optimizer == "adamw" or k not in adam_only)
        }

    def scaled(self, ratio: float) -> OptimSpec:
        """The same schedule over ``ratio`` times the epochs (e.g. as many steps on a
        split ``1/ratio`` the size): epochs and milestones scaled, at least 1."""
        epochs = max(1, round(self.epochs * ratio))
        warmup = self.warmup_epochs
        if warmup:  # as many warm-up steps, and at least one epoch after it
            warmup = max(1, min(round(warmup * ratio), epochs - 1)) if epochs > 1 else 0
        return replace(
            self,
            epochs=epochs,
            milestones=tuple(max(1, round(m * ratio)) for m in self.milestones),
            warmup_epochs=warmup,
        )


def lr_factor(opt: OptimSpec, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based) over ``lr``: during the warm-up
    (epoch + 1) / warmup_epochs; then γ^#{m ≤ epoch} (step) or the cosine from 1 down to
    0 over the epochs after the warm-up (reaching 0 after the last)."""
    warmup = opt.warmup_epochs
    if epoch < warmup:
        return (epoch + 1) / warmup
    if opt.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / (opt.epochs - warmup)))
    return opt.gamma ** sum(1 for m in opt.milestones if m <= epoch)


def epoch_lr(opt: OptimSpec, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based): what the schedule of
    :func:`build_optimizer` sets (``MultiStepLR`` for the paper's step schedule without
    warm-up: lr·γ^#{m ≤ epoch}; otherwise ``LambdaLR``: lr·:func:`lr_factor`)."""
    if _is_multistep(opt):
        return opt.lr * opt.gamma ** sum(1 for m in opt.milestones if m <= epoch)
    return opt.lr * lr_factor(opt, epoch)


def _is_multistep(opt: OptimSpec) -> bool:
    return opt.schedule == "step" and opt.warmup_epochs == 0


def build_optimizer(params: Iterable[torch.Tensor], opt: OptimSpec):
    """The torch optimizer and its per-epoch learning-rate schedule for ``opt``.

    SGD (momentum, weight decay added to the gradient) with ``MultiStepLR``, the paper's,
    is built exactly as the SGD-only releases built it; AdamW takes ``betas``, ``eps`` and
    decoupled weight decay; a cosine schedule or a warm-up runs through ``LambdaLR``.
    """
    import torch  # heavy dependency: the options and OptimSpec stay importable without it

    if opt.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay
        )
    elif opt.optimizer == "adamw":
        optimizer = torch.optim.AdamW(
            params,
            lr=opt.lr,
            betas=tuple(opt.betas),
            eps=opt.eps,
            weight_decay=opt.weight_decay,
        )
    else:
        raise ValueError(f"optimizer: unknown {opt.optimizer!r} (known: sgd, adamw)")
    if opt.schedule not in ("step", "cosine"):
        raise ValueError(f"schedule: unknown {opt.schedule!r} (known: step, cosine)")
    if _is_multistep(opt):
        schedule = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(opt.milestones), gamma=opt.gamma
        )
    else:

        def factor(epoch: int) -> float:
            return lr_factor(opt, epoch)

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, schedule


_BOTH_CLIPS = (
    "clip_norm and clip_value are both set; a step clips one way: keep clip_value "
    "(element-wise, turn-over training stays exact) or clip_norm (plain training only)"
)

#: why turn-over training refuses ``clip_norm``, and what it can use instead
CLIP_NORM_REFUSAL = (
    "clipping by the global norm of the batch gradient makes every parameter's step depend "
    "on every example of the batch, so turn-over training (the scores) would train each "
    "example's muted sub-network on it; use clip_value (element-wise clipping, which keeps "
    "turn-over exact) or remove clip_norm"
)


def clip_gradients(model_or_params, opt: OptimSpec) -> None:
    """Clip the gradients (``.grad``) of a model's parameters, or of the given ones: scaled
    so that their global norm is at most ``clip_norm`` (``clip_grad_norm_``), or each entry
    clamped to ``[-clip_value, clip_value]`` (``clip_grad_value_``); nothing without either.
    Call it on the true gradients (after fp16's loss unscaling), before the step."""
    if opt.clip_norm is None and opt.clip_value is None:
        return
    if opt.clip_norm is not None and opt.clip_value is not None:
        raise ValueError(f"clip_norm, clip_value: {_BOTH_CLIPS}")
    import torch  # heavy dependency: the options and OptimSpec stay importable without it

    params = model_or_params
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    grads = [p for p in params if p.grad is not None]
    if opt.clip_value is not None:
        torch.nn.utils.clip_grad_value_(grads, opt.clip_value)
    else:
        torch.nn.utils.clip_grad_norm_(grads, opt.clip_norm)


def turnover_clip_problems(recipe: Mapping) -> list[str]:
    """The clipping that turn-over training refuses in ``recipe`` (a mapping with keys of
    :data:`OPTIONS`), as ``"key: message"`` strings: ``clip_norm`` (the global norm couples
    every example to every parameter); ``clip_value`` is exact and passes."""
    if recipe.get("clip_norm") is None:
        return []
    return [f"clip_norm: {CLIP_NORM_REFUSAL}"]


def recipe_problems(opt: OptimSpec, given: Collection[str] | None = None) -> list[tuple[str, str]]:
    """What in ``opt`` contradicts itself, as (key, message) pairs: a clip that is not
    positive, ``clip_norm`` with ``clip_value``, a warm-up not shorter than the training,
    milestones with the cosine schedule, AdamW's ``betas``/``eps`` with SGD, SGD's
    ``momentum`` with AdamW. ``given``: the keys set explicitly (None: those
    that differ from their defaults)."""

    def set_(key: str) -> bool:
        if given is not None:
            return key in given
        default = OPTIONS[key].default
        value = getattr(opt, key)
        return (list(value) if isinstance(value, tuple) else value) != (
            list(default) if isinstance(default, tuple) else default
        )

    out = _clip_problems(opt)
    if opt.warmup_epochs >= opt.epochs:
        out.append(
            (
                "warmup_epochs",
                f"{opt.warmup_epochs} warm-up epochs are not shorter than the training "
                f"({opt.epochs} epochs), so the schedule never starts; use fewer than "
                f"{opt.epochs}",
            )
        )
    if opt.schedule == "cosine" and opt.milestones:
        out.append(
            (
                "milestones",
                f"{list(opt.milestones)} apply to the step schedule only; with schedule: "
                "cosine the learning rate follows the cosine: remove them or use schedule: step",
            )
        )
    if opt.optimizer == "sgd":
        for key in ("betas", "eps"):
            if set_(key):
                out.append(
                    (
                        key,
                        "is an option of optimizer: adamw; SGD would ignore it: remove it "
                        "or set optimizer: adamw",
                    )
                )
    elif opt.momentum and set_("momentum"):
        out.append(
            (
                "momentum",
                "is an option of optimizer: sgd; AdamW's momentum is betas[0]: remove it or "
                "set optimizer: sgd",
            )
        )
    return out


def _clip_problems(opt: OptimSpec) -> list[tuple[str, str]]:
    """A clip that is not a number > 0, or both clips (see :func:`recipe_problems`)."""
    out = []
    for key in ("clip_norm", "clip_value"):
        value = getattr(opt, key)
        if value is not None and not value > 0:  # NaN too
            out.append((key, f"must be a number > 0 (or null: no clipping), got {value!r}"))
    if opt.clip_norm is not None and opt.clip_value is not None:
        out.append(("clip_value", _BOTH_CLIPS))
    return out


def optimizer_state_copies(opt: OptimSpec | None) -> int:
    """How many float32 tensors the size of the parameters the optimizer of ``opt`` keeps
    (and a checkpoint saves): SGD with momentum one (the momentum buffer), SGD without
    none, AdamW two (the first and second moment estimates); None: plain SGD."""
    if opt is None:
        return 0
    if opt.optimizer == "adamw":
        return 2
    if opt.optimizer == "sgd":
        return 1 if opt.momentum else 0
    raise ValueError(f"optimizer: unknown {opt.optimizer!r} (known: sgd, adamw)")
