"""Per-example gradient statistics: hooks and torch.func agree with BackPACK and autograd."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from memorization.method.models.mlp import MLP
from memorization.method.models.vgg import VGG11
from memorization.studies import per_example
from memorization.studies.per_example import hooks
from memorization.studies.per_example.cosine import UnitGradientSum, inverse_norms

RTOL = 1e-5
FAST = ("hooks", "func")


def reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """Contributions and mean pairwise cosine from a plain per-example autograd loop."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (torch.zeros_like(p) if g is None else g).reshape(-1).double()
                    for p, g in zip(params, grads, strict=True)
                ]
            )
        )
    v = torch.stack(rows)
    g = v.mean(0)
    contribution = v @ g / g.norm()
    u = v / v.norm(dim=1, keepdim=True)
    c = u @ u.T
    n = v.shape[0]
    cosine = (c.sum() - c.diagonal().sum()) / (n * (n - 1))
    return contribution, float(cosine), v.square().sum(1)


def assert_close_vec(got, want, rtol=RTOL):
    got, want = got.double(), want.double()
    err = (got - want).abs().max().item()
    assert err <= rtol * want.abs().max().item(), (err, want.abs().max().item())


def assert_close(got: float, want: float, rtol=RTOL):
    assert abs(got - want) <= rtol * abs(want), (got, want)


MODELS = {
    "mlp": lambda: (MLP((1, 28, 28), 10, hidden=64), (1, 28, 28)),
    "vgg-mnist": lambda: (VGG11((1, 28, 28), 10, width=0.125), (1, 28, 28)),
    "vgg-cifar": lambda: (VGG11((3, 32, 32), 10, width=1 / 16), (3, 32, 32)),
}


def make(name: str, dtype: torch.dtype, n: int = 12, seed: int = 0):
    torch.manual_seed(seed)
    model, shape = MODELS[name]()
    model = model.to(dtype)
    x = torch.randn(n, *shape, dtype=dtype)
    y = torch.randint(0, 10, (n,))
    return model, x, y


@pytest.fixture(scope="module")
def cases():
    """Every model in float32 and float64 with its reference and BackPACK statistics."""
    out = {}
    for name in MODELS:
        for dtype in (torch.float32, torch.float64):
            model, x, y = make(name, dtype)
            ref = reference(model, x, y)
            bp = per_example.batch_statistics(model, x, y, "backpack")
            out[name, dtype] = (model, x, y, ref, bp)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_backpack_matches_autograd_loop(cases, name, dtype):
    _, _, _, (contribution, cosine, sq_norms), bp = cases[name, dtype]
    assert_close_vec(bp.contribution, contribution)
    assert_close(bp.cosine, cosine)
    assert_close_vec(bp.sq_norms, sq_norms)


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_fast_paths_match_backpack_and_loop(cases, name, dtype, method):
    model, x, y, (contribution, cosine, sq_norms), bp = cases[name, dtype]
    stats = per_example.batch_statistics(model, x, y, method)
    assert stats.method == method
    for want in (bp.contribution, contribution):
        assert_close_vec(stats.contribution, want)
    assert_close_vec(stats.sq_norms, bp.sq_norms)
    assert_close(stats.cosine, bp.cosine)
    assert_close(stats.cosine, cosine)
    assert stats.loss == pytest.approx(float(bp.loss), rel=1e-6)
    loss, contrib = per_example.contributions(model, x, y, method)
    assert_close_vec(contrib, bp.contribution)
    assert float(loss) == pytest.approx(float(bp.loss), rel=1e-6)
    assert_close(per_example.cosine_similarity(model, x, y, method), cosine)


@pytest.mark.parametrize("method", (*FAST, "backpack"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_chunked_cosine_equals_unchunked(cases, dtype, method):
    model, x, y, _, _ = cases["vgg-mnist", dtype]
    whole = per_example.cosine_similarity(model, x, y, method)
    tol = 1e-12 if dtype == torch.float64 else RTOL
    for chunk in (5,) if method == "backpack" else (1, 5, 12, 100):
        assert_close(
            per_example.cosine_similarity(model, x, y, method, chunk_size=chunk), whole, tol
        )


@pytest.mark.parametrize("method", FAST)
def test_chunked_cosine_mlp(cases, method):
    """Gram matrices (one chunk) and float64 unit sums (several) give the same cosine."""
    model, x, y, (_, cosine, _), _ = cases["mlp", torch.float32]
    for chunk in (None, 1, 7):
        assert_close(per_example.cosine_similarity(model, x, y, method, chunk_size=chunk), cosine)


def test_unit_gradient_sum():
    """The float64 accumulator against pairwise cosines, zero vectors counting as 0."""
    torch.manual_seed(3)
    v = torch.randn(9, 5, dtype=torch.float64)
    v[4] = 0.0
    acc = UnitGradientSum()
    for rows in (slice(0, 4), slice(4, 9)):
        block = v[rows]
        sq = block.square().sum(1)
        acc.add(sq, {"p": (inverse_norms(sq)[:, None] * block).sum(0)})
    pair = F.cosine_similarity(v[:, None], v[None, :], dim=-1)
    want = (pair.sum() - pair.diagonal().sum()) / (9 * 8)
    assert acc.cosine() == pytest.approx(float(want), rel=1e-12)
    with pytest.raises(ValueError, match="whole set"):
        acc.add(sq, {}, sum_sq=1.0)


def test_hooks_internal_chunking(cases, monkeypatch):
    """Tiny float64 chunks (gram, direct and single-token norms) give the same answer."""
    for name in MODELS:
        model, x, y, _, _ = cases[name, torch.float64]
        want = per_example.batch_statistics(model, x, y, "hooks")
        with monkeypatch.context() as m:
            m.setattr(hooks, "CHUNK_ELEMENTS", 1)
            got = per_example.batch_statistics(model, x, y, "hooks")
        assert_close_vec(got.sq_norms, want.sq_norms, 1e-12)
        assert_close(got.cosine, want.cosine, 1e-10)


@pytest.mark.parametrize("method", ("hooks", "func", "backpack"))
@pytest.mark.parametrize("name", ["mlp", "vgg-cifar"])
def test_contributions_leave_the_mean_loss_gradient(cases, name, method):
    model, x, y, _, _ = cases[name, torch.float32]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    plain = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)  # stale gradients must not leak in
    per_example.contributions(model, x, y, method)
    for p, want in zip(model.parameters(), plain, strict=True):
        if method == "hooks":
            assert torch.equal(p.grad, want)
        else:
            torch.testing.assert_close(p.grad, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", ("hooks", "func", "backpack"))
def test_cosine_does_not_touch_grads(cases, method):
    model, x, y, _, _ = cases["vgg-mnist", torch.float32]
    sentinel = [torch.full_like(p, 3.0) for p in model.parameters()]
    for p, s in zip(model.parameters(), sentinel, strict=True):
        p.grad = s.clone()
    per_example.cosine_similarity(model, x, y, method, chunk_size=5)
    for p, s in zip(model.parameters(), sentinel, strict=True):
        assert torch.equal(p.grad, s)
    for p in model.parameters():
        p.grad = None
    per_example.cosine_similarity(model, x, y, method)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("method", FAST)
def test_sanity_properties(method):
    model, x, y = make("vgg-mnist", torch.float64, n=10)
    # identical examples have identical gradients: cosine 1
    xd, yd = x[:1].repeat(6, 1, 1, 1), y[:1].repeat(6)
    assert per_example.cosine_similarity(model, xd, yd, method) == pytest.approx(1.0, abs=1e-12)
    # mean_i v_i . g = g . g, so mean(contribution) * ||g|| = ||g||^2
    stats = per_example.batch_statistics(model, x, y, method)
    g_sq = sum(float(p.grad.square().sum()) for p in model.parameters())
    assert stats.grad_norm == pytest.approx(math.sqrt(g_sq), rel=1e-12)
    assert float(stats.contribution.mean()) * stats.grad_norm == pytest.approx(g_sq, rel=1e-10)
    # the cosine is the same whether computed with the batch or separately
    assert stats.cosine == pytest.approx(per_example.cosine_similarity(model, x, y, method), 1e-10)


class Odd(nn.Module):
    """Conv variants and Linear uses the hooks path must handle exactly."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.c1 = nn.Conv2d(3, 4, 3, stride=2, padding=2, dilation=2, bias=False)
        self.c2 = nn.Conv2d(4, 5, (2, 3), padding="same", padding_mode="reflect")
        self.c3 = nn.Conv2d(5, 5, 3, stride=(1, 2), padding="valid")
        self.tok = nn.Linear(5, 6)  # on [B, tokens, features]
        self.head = nn.Linear(6, 3)
        self.head.bias.requires_grad_(False)  # frozen parameters are not part of v_i

    def forward(self, x):
        x = F.relu(self.c1(x), inplace=self.inplace)
        x = torch.tanh(self.c2(x))
        x = self.c3(x) + self.c3(x.flip(-1))  # one layer called twice
        x = self.tok(x.flatten(2).transpose(1, 2)).mean(1)
        return self.head(x) + self.head(x.square())


@pytest.mark.parametrize("inplace", [False, True], ids=["relu", "relu_"])
def test_hooks_on_conv_variants_match_loop(inplace):
    torch.manual_seed(1)
    model = Odd(inplace).double()
    x, y = torch.randn(7, 3, 11, 13, dtype=torch.float64), torch.randint(0, 3, (7,))
    contribution, cosine, sq_norms = reference(model, x, y)
    for method in FAST:
        stats = per_example.batch_statistics(model, x, y, method)
        assert_close_vec(stats.contribution, contribution, 1e-10)
        assert_close_vec(stats.sq_norms, sq_norms, 1e-10)
        assert_close(stats.cosine, cosine, 1e-10)
        assert_close(per_example.cosine_similarity(model, x, y, method, 3), cosine, 1e-10)
    assert per_example.resolve_method(model, "auto") == "hooks"


class Attention(nn.Module):
    """A tiny transformer block: LayerNorm and attention need the func path."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.norm(self.inp(x))
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.out(h.mean(1))


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_unsupported_module_under_hooks():
    torch.manual_seed(2)
    model = Attention().double()
    x, y = torch.randn(6, 5, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    with pytest.raises(ValueError, match="'norm' \\(LayerNorm\\)"):
        per_example.contributions(model, x, y, "hooks")
    with pytest.raises(ValueError, match="LayerNorm"):
        per_example.cosine_similarity(model, x, y, "hooks")
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="groups=2"):
        per_example.contributions(grouped, torch.randn(2, 4, 3, 3), torch.tensor([0, 1]), "hooks")
    with pytest.raises(ValueError, match="unknown method"):
        per_example.contributions(model, x, y, "magic")
    # "auto" falls back to torch.func, which is exact for any module
    assert per_example.resolve_method(model, "auto") == "func"
    contribution, cosine, _ = reference(model, x, y)
    loss, contrib = per_example.contributions(model, x, y)
    assert_close_vec(contrib, contribution, 1e-10)
    assert_close(per_example.cosine_similarity(model, x, y, chunk_size=4), cosine, 1e-10)


def test_batchnorm_in_training_mode_is_refused():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    x, y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    with pytest.raises(ValueError, match="batch-norm"):
        per_example.contributions(model, x, y, "func")
    model.eval()
    assert per_example.resolve_method(model, "auto") == "func"
