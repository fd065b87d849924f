"""The optimizer of every training run: SGD with momentum and a multi-step schedule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..infra.options import Option

__all__ = ["OPTIONS", "OptimSpec", "epoch_lr"]

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
        }

    def scaled(self, ratio: float) -> OptimSpec:
        """The same schedule over ``ratio`` times the epochs (e.g. as many steps on a
        split ``1/ratio`` the size): epochs and milestones scaled, at least 1."""
        return replace(
            self,
            epochs=max(1, round(self.epochs * ratio)),
            milestones=tuple(max(1, round(m * ratio)) for m in self.milestones),
        )


def epoch_lr(opt: OptimSpec, epoch: int) -> float:
    """Learning rate of epoch ``epoch`` (0-based) under ``MultiStepLR``: lr·γ^#{m ≤ epoch}."""
    return opt.lr * opt.gamma ** sum(1 for m in opt.milestones if m <= epoch)
