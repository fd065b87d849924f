"""Infrastructure: files never half-written (:mod:`.files`), declared options
(:mod:`.options`) and the GPU lease (:mod:`.device`)."""
