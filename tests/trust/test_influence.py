"""Turn-over influence (eq. 5): the MLP's fast path against the generic one."""

import numpy as np
import torch

from memorization.data import prepare_dataset, to_tensors
from memorization.method.models import TurnOverNet
from memorization.method.models.mlp import MLP
from memorization.method.models.spec import ModelSpec
from memorization.method.optim import OptimSpec
from memorization.method.scoring import score_examples, train_turnover
from memorization.trust.influence import influence, influence_block, top_turnover_influence


class _Generic(TurnOverNet):
    """The same MLP, hidden from the fast path (isinstance MLP is False)."""

    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp
        self.mask_units = mlp.mask_units
        self.keep_fraction = getattr(mlp, "keep_fraction", 0.5)

    def forward(self, x, masks=None):
        return self.mlp(x, masks)


def test_fast_path_equals_the_generic_one_and_self_influence_is_memorization():
    ds = prepare_dataset("digits")
    train, test = to_tensors(ds, "train"), to_tensors(ds, "test")
    spec = ModelSpec.from_config("mlp", {"hidden": 48}).with_classes(10)
    run = train_turnover(
        spec, train, OptimSpec(epochs=2, lr=0.1, batch_size=128), 3, progress=False
    )
    model, masks = run.model, run.masks
    assert isinstance(model, MLP)
    x, y = test.x[:20], test.y[:20]
    fast = influence_block(model, masks, x, y)
    slow = influence_block(_Generic(model), masks, x, y)
    assert fast.shape == (len(train), 20)
    assert torch.allclose(fast, slow, atol=1e-4)
    # on its own example, the influence is the memorization score (eq. 6)
    rows = torch.arange(5)
    own = influence_block(model, masks, train.x[:5], train.y[:5]).diagonal()
    mem = score_examples(model, train, masks)["memorization"][:5]
    assert np.allclose(own.numpy(), mem, atol=1e-4)
    ref = influence(model, masks, rows, x, y)
    assert isinstance(ref, torch.Tensor) and ref.shape == (5, 20)
    assert np.allclose(ref.numpy(), fast[:5].numpy(), atol=1e-4)
    positions, values = top_turnover_influence(model, masks, test, top_k=4, block=16)
    assert positions.shape == (len(test), 4) and np.all(np.diff(values, axis=1) <= 0)
    full = influence_block(model, masks, test.x[:16], test.y[:16]).numpy()
    assert np.allclose(values[:16, 0], full.max(0), atol=1e-5)
    assert np.array_equal(positions[:16, 0], full.argmax(0))
