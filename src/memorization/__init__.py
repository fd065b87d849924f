"""Per-example memorization scores with turn-over dropout (Liu, Lin, Jaggi).

Modules: ``data`` (datasets), ``corruption`` (random labels), ``masks``
(turn-over masks), ``models`` (MLP, VGG-11, CCT), ``training`` (turn-over and
plain training), ``scoring`` (memorization scores), ``subsets`` (easy/difficult
subsets), ``gradstats`` (per-example gradient statistics), ``artifacts`` (NetCDF
schemas), ``plots`` (figures), ``device`` (GPU lease), ``config`` (validation).
"""

__version__ = "0.1.0"
