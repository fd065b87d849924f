"""The ground truth's settings without its training: the options of an experiment's
``truth:``. The config's typed specs read them without importing torch (:mod:`.truth`
trains the models and takes its defaults from here)."""

from __future__ import annotations

from ..infra.options import Option

__all__ = ["TRUTH_OPTIONS"]

#: the Feldman-Zhang ground truth's options (``truth:`` of an experiment)
TRUTH_OPTIONS = {
    "models": Option(200, "models (K) trained", {"type": "integer", "minimum": 2}),
    "fraction": Option(
        0.7,
        "share of the training set each model sees",
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    ),
    "shards": Option(1, "jobs the K models are split over", {"type": "integer", "minimum": 1}),
    "top_k": Option(10, "influence pairs kept per test example", {"type": "integer", "minimum": 1}),
    "design": Option(
        "random",
        "how the models' subsets are drawn: random (each model on a random fraction of the "
        "training set) or pairs (complementary halves, stratified by label: every example "
        "in exactly half of the models, the lowest standard error per model; fraction is "
        "1/2 and models a multiple of 4)",
        {"enum": ["random", "pairs"]},
    ),
}
