"""The forms a memorization score takes (config ``score_form``) and their variables in the
scores artifact, without the scoring itself: the config's typed specs read them without
importing torch (:mod:`.scoring` computes them and re-exports these names).
"""

from __future__ import annotations

__all__ = ["CUMULATIVE", "SCORE_FORMS", "SHARPEN_TEMPERATURE"]

#: score form (config ``score_form``) -> the scores' variable
SCORE_FORMS = {
    "loss": "memorization",
    "probability": "probability_memorization",
    "zero_one": "zero_one_memorization",
    "sharpened": "sharpened_memorization",
    "cumulative": "cumulative_memorization",
}

#: cumulative score -> the per-epoch score it sums over the epochs
CUMULATIVE = {"cumulative_memorization": "memorization"}

#: softmax temperature of the sharpened score form: measured closest to the
#: Feldman-Zhang estimate on mnist5k (the config's ``score_temperature`` default)
SHARPEN_TEMPERATURE = 0.5
