"""The out-of-bag estimator's settings without the estimator: its experiment keys, the
forms of its estimate, their typed spec, the narrow sub-network and the cost in plain runs.
The config's typed specs and the workflow's parse read them without importing torch
(:mod:`.oob` trains the sub-networks and re-exports these names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..infra.options import Option, resolve
from ..method.models.spec import ModelSpec, is_external

__all__ = ["FORMS", "OPTIONS", "OOBSpec", "cost_runs", "narrow"]

#: the experiment keys of the out-of-bag estimator
OPTIONS = {
    "oob_networks": Option(
        8,
        "out-of-bag sub-networks: networks K (even), each on a balanced half of the "
        "training set, every example in exactly K/2 of them",
        {"type": "integer", "minimum": 2, "multipleOf": 2},
    ),
    "oob_width": Option(
        1.0,
        "out-of-bag sub-networks: multiplier of the model's width option (MLP hidden, "
        "VGG width, CCT embed_dim and tokenizer_channels); 1: full-width copies",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 16},
    ),
    "oob_fork": Option(
        0.0,
        "out-of-bag sub-networks: share of the epochs trained as one plain network on all "
        "the data before the K networks branch from its state (0: no fork)",
        {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    ),
    "oob_shared_init": Option(
        False,
        "out-of-bag sub-networks: the two networks of each complementary pair of halves "
        "start from the same initialisation and batch-order seed, so an example's in- and "
        "out-networks differ in their data alone (common random numbers)",
        {"type": "boolean"},
    ),
    "oob_record_every": Option(
        2,
        "out-of-bag sub-networks: record every network's loss on every example every N "
        "epochs (and after the last) for the cumulative forms",
        {"type": "integer", "minimum": 1},
    ),
}

#: the forms of the estimate: variable suffix -> (long name, units)
FORMS = {
    "correct": ("fraction correct of the networks trained on it minus of the others", "1"),
    "prob": ("label probability of the networks trained on it minus of the others", "1"),
    "loss": ("loss of the networks not trained on it minus of those trained on it", "nats"),
    "cumulative": (
        "loss of the networks not trained on it minus of those trained on it, averaged "
        "over the recorded epochs",
        "nats",
    ),
    "cumulative_prob": (
        "label probability of the networks trained on it minus of the others, averaged "
        "over the recorded epochs",
        "1",
    ),
}


@dataclass(frozen=True)
class OOBSpec:
    """The out-of-bag estimator's settings (see :data:`OPTIONS`)."""

    networks: int = OPTIONS["oob_networks"].default
    width: float = OPTIONS["oob_width"].default
    fork: float = OPTIONS["oob_fork"].default
    record_every: int = OPTIONS["oob_record_every"].default
    shared_init: bool = OPTIONS["oob_shared_init"].default

    def __post_init__(self) -> None:
        if int(self.networks) < 2 or int(self.networks) % 2:
            raise ValueError(f"oob_networks must be even and at least 2, got {self.networks}")
        if not float(self.width) > 0:
            raise ValueError(f"oob_width must be positive, got {self.width}")
        if not 0 <= float(self.fork) < 1:
            raise ValueError(f"oob_fork must be in [0, 1), got {self.fork}")
        if int(self.record_every) < 1:
            raise ValueError(f"oob_record_every must be at least 1, got {self.record_every}")

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> OOBSpec:
        """From an experiment's keys (``oob_networks``, ...; defaults for the rest)."""
        got = resolve(OPTIONS, values)
        return cls(
            int(got["oob_networks"]),
            float(got["oob_width"]),
            float(got["oob_fork"]),
            int(got["oob_record_every"]),
            bool(got["oob_shared_init"]),
        )

    def params(self) -> dict[str, Any]:
        """The settings as a slice's params; ``shared_init`` only when set, so the
        artifacts of configs that never set it keep their hashes."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.shared_init:
            del out["shared_init"]
        return out

    def fork_epochs(self, epochs: int) -> int:
        """Epochs of the shared plain run before the branches (0: no fork)."""
        return int(round(self.fork * epochs))

    def recorded_epochs(self, epochs: int) -> list[int]:
        """The 1-based epochs after which every network's losses are recorded."""
        first = self.fork_epochs(epochs) + 1
        every = [e for e in range(first, epochs + 1) if e % self.record_every == 0]
        return every if every and every[-1] == epochs else [*every, epochs]


def narrow(model: ModelSpec, width: float) -> ModelSpec:
    """The model with its width option times ``width`` (1: the model itself).

    MLP: ``hidden``; VGG-11: ``width``; CCT: ``embed_dim`` (a multiple of ``heads``) and
    ``tokenizer_channels``. Other models have no width option: refused.
    """
    if float(width) == 1.0:
        return model
    opts = dict(model.options)
    if model.name == "mlp":
        opts["hidden"] = max(2, int(round(opts.get("hidden", 4096) * width)))
    elif model.name.startswith("vgg") and not is_external(model.name):
        opts["width"] = float(opts.get("width", 1.0)) * width
    elif model.name == "cct":
        heads = int(opts["heads"])
        opts["embed_dim"] = max(heads, int(round(opts["embed_dim"] * width / heads)) * heads)
        opts["tokenizer_channels"] = max(2, int(round(opts["tokenizer_channels"] * width)))
    else:
        raise ValueError(
            f"oob_width {width} needs a model with a width option (mlp, vgg11, cct); "
            f"model {model.name!r} has none: set oob_width: 1"
        )
    return replace(model, options=opts)


def cost_runs(spec: OOBSpec, epochs: int, flops_ratio: float = 1.0) -> float:
    """Training compute in plain runs of the model (all the data, ``epochs`` epochs).

    A training step costs 3 forward passes, a recording pass 1: the fork's plain run
    ``f``, the K networks on half the data for the remaining epochs ``K (1 - f) / 2``,
    and a recording pass of every network on every example per recorded epoch
    (``K R / (3 E)``), the networks' passes at ``flops_ratio`` (narrow over full FLOPs).
    """
    fork = spec.fork_epochs(epochs)
    branch = spec.networks * (epochs - fork) / 2 / epochs
    record = spec.networks * len(spec.recorded_epochs(epochs)) / (3 * epochs)
    return (fork / epochs + branch + record) * flops_ratio
