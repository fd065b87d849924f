"""One function per workflow stage: check inputs, call the library, write the artifact.

Each stage function takes a :class:`~memorization.workflow.context.StageContext`; its
record in :mod:`memorization.workflow.registry` names it. A stage module holds, next
to its stage functions, each artifact's schema, the slice builders (what decides the
artifact) and, for a stage that trains, its cost in passes over examples.
"""
