"""How easy and difficult examples are learnt: the paper's optimization studies.

Each study trains the experiment's model plainly (no turn-over masks):
:mod:`.dynamics` (figures 3, 5 and 10), :mod:`.gradient_statistics` (figure 4, with
the exact per-example gradient statistics of :mod:`.per_example`) and
:mod:`.crosstrain` (figure 6); :mod:`.plain` holds what they share.
"""
