"""A model of your own, tried before any job: built, run once, and its turn-over proved.

The config check builds every model on the meta device (no memory, no compute), which
vets its options but runs nothing. A torchvision, timm or factory model can still fail
only when it runs: its output is not ``[batch, classes]`` logits (a factory returning
``[B, K, 1]``), or a named turn-over site breaks turn-over (a batch-norm after a masked
convolution, sites that split nothing). :func:`dry_run` finds both on two random
examples on the CPU: it builds the model, runs the zero-gradient proof
(:func:`~memorization.method.turnover.prove_turnover`) for named sites and one forward
pass. The global random state is left as it was. On 2 cores of an Intel Xeon (no GPU),
one thread, a torchvision ResNet-18 on 28x28 images takes about 1 s (a site at conv1) to
4 s (at layer4).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence

import numpy as np
import torch

from .models.spec import ModelSpec, is_external
from .turnover.errors import TurnoverSiteError
from .turnover.proof import prove_turnover
from .turnover.sites import sample_input, trace

__all__ = ["DRY_RUN_MAX_PARAMS", "PROOF_EXAMPLES", "dry_run"]

#: examples of the proof in the check (the scores job proves on more before training;
#: two already couple through a batch-norm)
PROOF_EXAMPLES = 2

#: models with more trainable entries than this are not tried in the config check (the
#: scores job proves them before training)
DRY_RUN_MAX_PARAMS = 50_000_000


def dry_run(
    spec: ModelSpec, in_shape: Sequence[int], parameters: int | None = None, seed: int = 0
) -> list[str]:
    """Problems of an external model found by building it (initialised with ``seed``, as
    the job does), one forward pass and the proof (none for a built-in model, or one of
    more than :data:`DRY_RUN_MAX_PARAMS` ``parameters``)."""
    if not is_external(spec.name) or (parameters or 0) > DRY_RUN_MAX_PARAMS:
        return []
    k = int(spec.n_classes)
    with torch.random.fork_rng(devices=[]), _kept_random_state():
        try:
            model = spec.build(tuple(in_shape), turnover=False, seed=seed)  # proof: below
        except Exception as err:  # noqa: BLE001 - the user's code: any error is a problem
            return [f"building it failed: {type(err).__name__}: {err}"]
        net = getattr(model, "net", model)
        x = sample_input(net, in_shape)
        try:
            out = trace(net, x).output
        except Exception as err:  # noqa: BLE001 - the user's code: any error is a problem
            return [f"a forward pass on {len(x)} examples failed: {type(err).__name__}: {err}"]
        shape = tuple(out.shape) if torch.is_tensor(out) else None
        if shape != (len(x), k):
            got = f"shape {list(shape)}" if shape is not None else f"a {type(out).__name__}"
            return [
                f"its output for a batch of {len(x)} examples is {got}, expected "
                f"[{len(x)}, {k}] (batch, classes: one logit per class); flatten or squeeze "
                "it in the model"
            ]
        if spec.options.get("turnover", "head") == "head":
            return []  # the head's mask is safe by construction (the job proves it too)
        try:
            prove_turnover(model, tuple(in_shape), k, n_examples=PROOF_EXAMPLES)
        except Exception as err:  # noqa: BLE001 - the user's code: any error is a problem
            what = "" if isinstance(err, TurnoverSiteError) else f"{type(err).__name__}: "
            return [f"the zero-gradient proof on {PROOF_EXAMPLES} examples refuses it: {what}{err}"]
    return []


@contextlib.contextmanager
def _kept_random_state():
    """NumPy's and Python's global random state restored afterwards (seeding the build
    sets them; torch's is kept by ``torch.random.fork_rng``)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
