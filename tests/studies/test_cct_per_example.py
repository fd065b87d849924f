"""Per-example gradient statistics on the CCT: BackPACK cannot (layer norm, attention), so
the exact torch.func path runs; it must match a plain loop over examples."""

import torch
from torch.nn import functional as F

from memorization.method.models import build_model
from memorization.studies.per_example import contributions, cosine_similarity, resolve_method


def _loop(model, x, y):
    grads = []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    v = torch.stack(grads).double()
    g = v.mean(0)
    contrib = v @ g / g.norm()
    u = v / v.norm(dim=1, keepdim=True)
    n = len(x)
    cos = (u.sum(0).pow(2).sum() - n) / (n * (n - 1))
    return contrib, float(cos)


def _tiny_cct():
    return build_model(
        "cct",
        (1, 28, 28),
        10,
        depth=2,
        heads=2,
        embed_dim=32,
        tokenizer_channels=16,
        turnover=False,
    )


def test_cct_gradient_statistics_are_exact():
    torch.manual_seed(0)
    model = _tiny_cct()
    assert resolve_method(model, "auto") == "func"
    x = torch.randn(12, 1, 28, 28)
    y = torch.arange(12) % 10
    ref_contrib, ref_cos = _loop(model, x, y)
    _, contrib = contributions(model, x, y, method="auto")
    torch.testing.assert_close(contrib.double(), ref_contrib, rtol=1e-5, atol=1e-7)
    cos = cosine_similarity(model, x, y, method="auto", chunk_size=5)
    assert abs(cos - ref_cos) <= 1e-5 * abs(ref_cos) + 1e-8
    # the training gradient left behind is the mean-loss gradient
    model2 = _tiny_cct()
    model2.load_state_dict(model.state_dict())
    model2.zero_grad(set_to_none=True)
    F.cross_entropy(model2(x), y).backward()
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
