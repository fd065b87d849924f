"""An experiment of the workflow config, parsed once into a typed object.

The config names experiments (``experiments: {name: {dataset, model, ...}}``). Every
stage of the workflow reads one :class:`Experiment`, built by
:meth:`Experiment.from_config` from the validated mapping, and nothing else: the
study overrides (``dynamics_lr``, ``gradstats_epochs``, ``crosstrain_epochs``, ...)
are resolved here, in one place, into one :class:`~memorization.training.OptimConfig`
per study.

:meth:`Experiment.slice` gives, for each stage, the resolved settings that decide
its artifact and nothing else. The workflow passes that slice to the stage through
Snakemake's ``params`` (so changing a setting reruns exactly the stages it decides),
the stage stores it in the artifact's provenance with its :func:`slice_hash`, and the
next stage checks the hash of every artifact it reads
(:func:`memorization.artifacts.check_origin`). Execution settings (``device``,
``threads``) decide where and how fast a job runs, not what it computes: they are
never part of a slice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from .training import OptimConfig

__all__ = [
    "SCORE_FORMS",
    "STAGES",
    "STUDIES",
    "Experiment",
    "TruthConfig",
    "describe",
    "replicate_seed",
    "slice_hash",
]

#: plain-training studies; each may override the experiment's lr and epochs
STUDIES = ("dynamics", "gradstats", "crosstrain", "sweep")

#: stages whose artifacts an experiment can have, in DAG order
STAGES = (
    "labels",
    "score_replicate",
    "score",
    "score_test",
    "subsets",
    "subsets_test",
    *STUDIES,
    "estimators",
    "truth_shard",
    "truth",
    "influence",
)

#: score form (config ``score_form``) -> the scores' variable the subsets rank by
SCORE_FORMS = {
    "loss": "memorization",
    "probability": "probability_memorization",
    "zero_one": "zero_one_memorization",
    "sharpened": "sharpened_memorization",
}

_OPTIM = ("epochs", "lr", "momentum", "batch_size", "milestones", "gamma", "weight_decay")


def slice_hash(config_slice: Mapping) -> str:
    """A short, stable hash of a config slice (canonical JSON, SHA-256)."""
    text = json.dumps(config_slice, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed of turn-over replicate ``replicate``: the experiment's own for replicate 0,
    else a hash of both (independent initialisation, batch order and masks)."""
    if replicate == 0:
        return int(seed)
    import numpy as np

    from .masks import splitmix64

    mixed = splitmix64(np.uint64(seed) ^ splitmix64(np.uint64(replicate) + np.uint64(0xEB1)))
    return int(mixed % np.uint64(2**31 - 1))


@dataclass(frozen=True)
class TruthConfig:
    """Feldman-Zhang ground truth: ``models`` retrainings on random ``fraction`` subsets,
    trained by ``shards`` jobs; ``top_k`` influence pairs kept per test example."""

    models: int = 200
    fraction: float = 0.7
    shards: int = 1
    top_k: int = 10

    def shard_range(self, shard: int) -> tuple[int, int]:
        """Models ``[k0, k1)`` of shard ``shard`` (as even as possible)."""
        per, extra = divmod(self.models, self.shards)
        k0 = shard * per + min(shard, extra)
        return k0, k0 + per + (shard < extra)


def _optim_dict(opt: OptimConfig) -> dict:
    return {
        "epochs": opt.epochs,
        "lr": opt.lr,
        "momentum": opt.momentum,
        "batch_size": opt.batch_size,
        "milestones": list(opt.milestones),
        "gamma": opt.gamma,
        "weight_decay": opt.weight_decay,
    }


@dataclass(frozen=True)
class Experiment:
    """One experiment: data, labels, model, training and the studies' settings."""

    name: str
    dataset: str
    model: str
    model_options: dict
    corrupt: int
    corruption: str
    seed: int
    optim: OptimConfig
    subset_size: int | None = None
    test_subset_size: int | None = None
    probe_size: int | None = None
    cosine_pairs: str = "probe"
    gradstats_method: str = "auto"
    control: bool = False
    corruption_levels: tuple[int, ...] = ()
    replicates: int = 1
    score_form: str = "loss"
    score_temperature: float = 0.5
    truth: TruthConfig | None = None
    studies: dict[str, OptimConfig] = field(default_factory=dict)
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, name: str, exp: Mapping) -> Experiment:
        """Parse a validated experiment mapping; resolve defaults and study overrides."""
        from .data import DATASETS
        from .models import MODEL_OPTIONS

        model = exp["model"]
        defaults = MODEL_OPTIONS.get(model, {})
        options = {k: exp.get(k, v) for k, v in defaults.items()}
        optim = OptimConfig.from_config(exp)
        studies = {}
        for study in STUDIES:
            cfg = dict(exp)
            cfg["lr"] = exp.get(f"{study}_lr") or exp["lr"]
            cfg["epochs"] = exp.get(f"{study}_epochs") or exp["epochs"]
            studies[study] = OptimConfig.from_config(cfg)
        subset_size = exp.get("subset_size")
        test_size = exp.get("test_subset_size")
        if subset_size is not None and not test_size and exp["dataset"] in DATASETS:
            # test subsets are as large a share of the test split as the training
            # subsets are of the training split
            info = DATASETS[exp["dataset"]]
            test_size = max(1, round(subset_size * info.n_test / info.n_train))
        return cls(
            name=str(name),
            dataset=exp["dataset"],
            model=model,
            model_options=options,
            corrupt=int(exp.get("corrupt", 0)),
            corruption=exp.get("corruption", "uniform"),
            seed=int(exp["seed"]),
            optim=optim,
            subset_size=subset_size,
            test_subset_size=test_size,
            probe_size=exp.get("probe_size"),
            cosine_pairs=exp.get("cosine_pairs", "probe"),
            gradstats_method=exp.get("gradstats_method", "auto"),
            control=bool(exp.get("control", False)),
            corruption_levels=tuple(exp.get("corruption_levels") or ()),
            replicates=int(exp.get("replicates", 1)),
            score_form=exp.get("score_form", "loss"),
            score_temperature=float(exp.get("score_temperature", 0.5)),
            truth=None if exp.get("truth") is None else TruthConfig(**exp["truth"]),
            studies=studies,
            raw=dict(exp),
        )

    # --- the slices that decide each artifact ------------------------------------------

    def _labels(self) -> dict:
        return {
            "dataset": self.dataset,
            "corrupt": self.corrupt,
            "corruption": self.corruption,
            "seed": self.seed,
        }

    def _model(self) -> dict:
        return {"model": self.model, **self.model_options}

    def _turnover(self) -> dict:
        return {
            **self._labels(),
            **self._model(),
            **_optim_dict(self.optim),
            "score_temperature": self.score_temperature,
        }

    def slice(
        self,
        stage: str,
        level: int | None = None,
        replicate: int | None = None,
        shard: int | None = None,
    ) -> dict:
        """The resolved settings that decide ``stage``'s artifact (YAML-able, nested).

        ``level`` is the corruption level of a ``sweep`` artifact, ``replicate`` the
        turn-over replicate of a ``score_replicate`` one, ``shard`` the shard of a
        ``truth_shard`` one.
        """
        if stage == "labels":
            return self._labels()
        if stage == "score_replicate":
            if replicate is None:
                raise ValueError("a score_replicate slice needs its replicate")
            return {**self._turnover(), "replicate": int(replicate)}
        if stage == "score":
            out = self._turnover()
            if self.replicates > 1:
                out["replicates"] = self.replicates
            return out
        if stage == "estimators":
            return {**self._labels(), **self._model(), "study": self.study("estimators")}
        if stage in ("truth_shard", "truth"):
            if self.truth is None:
                raise ValueError(f"experiment {self.name!r} has no truth settings")
            out = {
                **self._labels(),
                **self._model(),
                "study": self.study("estimators"),
                "truth": {
                    "models": self.truth.models,
                    "fraction": self.truth.fraction,
                    "shards": self.truth.shards,
                },
            }
            if stage == "truth_shard":
                if shard is None:
                    raise ValueError("a truth_shard slice needs its shard")
                out["shard"] = int(shard)
            else:
                out["top_k"] = self.truth.top_k
            return out
        if stage == "influence":
            return {**self._turnover(), "top_k": self.truth.top_k if self.truth else 10}
        if stage == "score_test":
            return {
                "dataset": self.dataset,
                "split": "test",
                "seed": self.seed,
                **self._model(),
                **_optim_dict(self.test_optim()),
                "score_temperature": self.score_temperature,
            }
        if stage == "subsets":
            out = {"scores": self.slice("score"), "subset_size": self.subset_size}
            if self.score_form != "loss":
                out["score_form"] = self.score_form
            return out
        if stage == "subsets_test":
            return {"scores": self.slice("score_test"), "subset_size": self.test_subset_size}
        if stage == "sweep":
            if level is None:
                raise ValueError("a sweep slice needs its corruption level")
            labels = {**self._labels(), "corrupt": int(level)}
            return {**labels, **self._model(), "study": self.study("sweep")}
        if stage in STUDIES:
            out = {
                **self._labels(),
                **self._model(),
                "subsets": self.slice("subsets"),
                "study": self.study(stage),
            }
            if stage == "dynamics":
                out["subsets_test"] = self.slice("subsets_test")
                out["control"] = self.control
            if stage == "gradstats":
                out.update(
                    probe_size=self.probe_size,
                    cosine_pairs=self.cosine_pairs,
                    gradstats_method=self.gradstats_method,
                )
            return out
        raise ValueError(f"unknown stage {stage!r}; known: {STAGES}")

    def test_optim(self) -> OptimConfig:
        """The turn-over training that scores the test split: as many optimizer steps as
        the training split's (epochs and milestones scaled by n_train / n_test), so the
        smaller split's model is trained as far."""
        from dataclasses import replace

        from .data import DATASETS

        info = DATASETS.get(self.dataset)
        if info is None:
            return self.optim
        ratio = info.n_train / info.n_test
        return replace(
            self.optim,
            epochs=max(1, round(self.optim.epochs * ratio)),
            milestones=tuple(max(1, round(m * ratio)) for m in self.optim.milestones),
        )

    def study(self, study: str) -> dict:
        """The resolved optimizer settings of a plain-training study, with its name.

        The peer estimators and the ground truth train plainly with the experiment's own
        settings (``estimators``)."""
        if study == "estimators":
            return {"name": study, **_optim_dict(self.optim)}
        return {"name": study, **_optim_dict(self.studies[study])}

    def study_optim(self, study: str) -> OptimConfig:
        return self.studies[study]

    def describe(self) -> str:
        """A short description for figure titles: dataset, model, labels."""
        return describe(self.slice("score"))


def describe(cfg: Mapping, labels: bool = True) -> str:
    """Dataset, model and labels of an artifact's config slice, for titles and tables."""
    model = cfg.get("model", "?")
    detail = {
        "mlp": f"hidden {cfg.get('hidden')}",
        "vgg11": f"width {cfg.get('width')}"
        + (f", last {cfg['masked_layers']} masked" if cfg.get("masked_layers") else ""),
        "cct": f"depth {cfg.get('depth')}, heads {cfg.get('heads')}, embed {cfg.get('embed_dim')}",
    }.get(model)
    corrupt = int(cfg.get("corrupt", 0) or 0)
    text = f"{cfg.get('dataset', '?')}, {model}" + (f" ({detail})" if detail else "")
    if labels:
        mode = cfg.get("corruption", "uniform")
        text += f", {corrupt} random labels ({mode})" if corrupt else ", true labels"
    return text
