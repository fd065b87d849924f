"""K plain models trained at once as one vectorised ensemble.

Model ``k`` of an ensemble is exactly what :func:`train_sequential` (the
ordinary :func:`memorization.method.training.fit` loop) makes from the same three
things, to float tolerance:

- its initialisation: ``model.build(in_shape, turnover=False, seed=seeds[k])``;
- its training subset: the rows where ``subsets[k]`` (boolean over the training
  rows) is true, passed to ``fit`` as ``positions``;
- its batch order: every epoch a ``torch.randperm`` of its subset drawn from a
  generator seeded with ``seeds[k] + 1``, as ``fit`` draws it,

and the optimizer of :class:`~memorization.method.optim.OptimSpec` on the
mean cross-entropy of each batch: SGD with momentum and weight decay, or AdamW
(bias-corrected moments, decoupled weight decay), as ``torch.optim.SGD`` and
``torch.optim.AdamW`` do it, after clipping each model's gradient by its own global
norm where ``clip_norm`` says so and each gradient element to ``[-clip_value,
clip_value]`` where ``clip_value`` does; the learning rate of each epoch is
:func:`~memorization.method.optim.epoch_lr` (the step, cosine and warm-up schedules).

All models take their ``s``-th step together. Subsets of equal size (as
:func:`memorization.trust.truth.draw_subsets` draws them: exactly ``round(fraction *
N)`` rows each) give every model the same number of batches of the same sizes.
Subsets of different sizes work too: the batches of a step are padded to the
longest with rows of weight 0, and a model whose epoch has fewer batches sits
the extra steps out (no update, its momentum or moments and its step count untouched).

The parts, one job each:

- :mod:`.reference`: what model ``k`` is (its initialisation, batch order and subset)
  and the one-by-one reference trainer and predictions;
- :mod:`.train`: training the K models together, at once or a chunk at a time;
- :mod:`.batches`: one epoch's batches of the K models, padded where subsets differ;
- :mod:`.optimizer`: SGD or AdamW and the clipping on stacked [K, ...] tensors;
- :mod:`.backends`: which step backend (``path``) computes the per-model gradients:
  :mod:`.func_step` (any model, ``torch.func``'s ``vmap``: for a GPU),
  :mod:`.loop_step` (any model, one after another on the stacked parameters: for a CPU)
  or :mod:`.sparse_mlp` (the MLP on sparse inputs);
- :mod:`.stacked`: the trained ensemble, read back as modules or predictions.
"""

from .backends import PATHS, SPARSE_DENSITY
from .reference import batch_order, build_models, predict_split, train_sequential
from .sparse_mlp import input_density
from .stacked import Ensemble, Predictions
from .train import default_chunk, train_ensemble, train_in_chunks

__all__ = [
    "PATHS",
    "SPARSE_DENSITY",
    "Ensemble",
    "Predictions",
    "batch_order",
    "build_models",
    "default_chunk",
    "input_density",
    "predict_split",
    "train_ensemble",
    "train_in_chunks",
    "train_sequential",
]
