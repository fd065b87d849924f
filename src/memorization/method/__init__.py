"""The method of the paper: turn-over masks (:mod:`.masks`), models that carry them
(:mod:`.models`), SGD training (:mod:`.training`, :mod:`.optim`, resumable through
:mod:`.checkpoint`), memorization scores (:mod:`.scoring`) and the easy/difficult
subsets (:mod:`.subsets`)."""
