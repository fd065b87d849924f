"""Per-example gradient statistics of the paper (eqs. 3 and 4), computed exactly.

With per-example loss l_i = cross_entropy(model(x_i), y_i), per-example gradient
v_i = ∇_θ l_i over every parameter with ``requires_grad``, and mini-batch gradient
g = (1/B) Σ_i v_i (the gradient of the mean loss, what SGD steps on):

* contribution of example i (eq. 4): (v_i · g) / ||g||;
* cosine similarity of a set (eq. 3): mean over i ≠ j of cos(v_i, v_j)
  = (||Σ_i u_i||² − n) / (n (n − 1)) with u_i = v_i / ||v_i||, Σ u_i kept in float64.

Public API (``model`` is called as ``model(x)`` and returns logits [B, C]; ``y`` holds
integer labels)::

    contributions(model, x, y, method="auto") -> (loss, contribution)
        loss: mean loss (detached scalar tensor); contribution: Tensor [B].
        Leaves p.grad = gradient of the mean loss (grads are reset first), exactly
        what ``optimizer.zero_grad(); loss.backward()`` leaves: a training loop calls
        it instead of its own backward and then ``optimizer.step()``.

    cosine_similarity(model, x, y, method="auto", chunk_size=None) -> float
        The set is processed chunk_size examples at a time (None: at once); the
        result does not depend on the chunking. p.grad is not touched.

    batch_statistics(model, x, y, method="auto", *, cosine=True) -> BatchStatistics
        Both statistics of one mini-batch from a single forward/backward pass
        (fields loss, losses, contribution, grad_norm, sq_norms, cosine, method);
        leaves p.grad like ``contributions``.

``method``:

* ``"hooks"`` (:mod:`.hooks`): exact and fast, for models whose trainable parameters
  all sit in ``nn.Linear`` / ``nn.Conv2d`` (groups=1) layers. Hooks save each layer's
  input and output-gradient; the statistics follow from them without materialising
  per-example gradients (extra memory ~ one activation per layer). Any other module
  with trainable parameters raises ``ValueError`` naming it.
* ``"func"`` (:mod:`.func`): exact for any module (LayerNorm, attention, ...): per-
  example gradients from ``torch.func.vmap(grad(...))``, a bounded chunk at a time.
* ``"backpack"`` (:mod:`.backpack_reference`): BackPACK ``BatchGrad`` on a deep copy
  of the model; materialises all B × P per-example gradients. The reference.
* ``"auto"``: ``"hooks"`` when the model allows it, else ``"func"``.

Every method refuses batch-norm in training mode (it couples the examples). An example
with an exactly zero gradient has cosine 0 with every other example.
"""

from .modules import METHODS, resolve_method
from .statistics import (
    BatchStatistics,
    batch_statistics,
    contributions,
    cosine_similarity,
)

__all__ = [
    "METHODS",
    "BatchStatistics",
    "batch_statistics",
    "contributions",
    "cosine_similarity",
    "resolve_method",
]
