"""``python -m memorization``: the command line (:mod:`memorization.cli`)."""

from .cli import main

main()
