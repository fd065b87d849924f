"""Scores you can trust: ground truth by retraining (:mod:`.truth`, trained as vectorised
ensembles by :mod:`.ensemble`), peer estimators from one plain run (:mod:`.peers`),
turn-over replicates (:mod:`.replicates`), turn-over influence pairs (:mod:`.influence`),
quality metrics (:mod:`.metrics`) and the table of every estimator against the truth
(:mod:`.validation`)."""
