"""The zero-gradient proof: a turn-over model never trains an example's muted sub-network on it.

Turn-over dropout estimates the leave-one-out loss of example ``i`` with its muted
sub-network, which must therefore receive no gradient at all from ``i``'s own (unmuted)
loss, except in parameters both sub-networks use (*shared* parameters, which every
example updates). :func:`prove_turnover` checks it on a small batch, in train mode (so
that batch-norm uses batch statistics, as in training, and the examples of the batch are
coupled as in training) and in eval mode: for every example ``i`` it takes the gradient of
``i``'s unmuted loss and of ``i``'s muted logits, both within the batch forward pass.

- An entry that receives nonzero gradient from both is *shared*; a parameter with a
  shared entry is a shared parameter. One whose entries each go to one sub-network only
  is *split*.
- A site's own parameters (the weight columns of the head, the filters and bias of a
  masked convolution) must receive exactly zero gradient from ``i``'s unmuted loss in
  the units ``i``'s mask drops (masks multiply by exact zeros). Otherwise the site breaks
  turn-over, e.g. when a batch-norm in train mode after the masked output mixes the
  examples' statistics, or the masked output is used unmasked: :class:`TurnoverSiteError`
  names the parameter.
- Every site must split at least one parameter (in eval mode, its mask alone); a site
  after which both sub-networks use every parameter is refused.

The model is left as it was: buffers (batch-norm statistics), training flags and the
global random state are restored, and no ``.grad`` is written.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..models.base import TurnOverNet
from .errors import TurnoverSiteError
from .sites import Trace, trace

__all__ = ["TurnoverProof", "prove_turnover"]

_MODES = ("train", "eval")


@dataclass
class TurnoverProof:
    """What :func:`prove_turnover` found. Parameter names as in ``model.named_parameters()``
    (the wrapped network's under ``net.``), module names as in ``model.net``."""

    sites: list[str]
    n_examples: int
    #: parameters split between the sub-networks: name -> entries
    split: dict[str, int]
    #: parameters both sub-networks of an example train: name -> entries
    shared: dict[str, int]
    #: entries of each shared parameter seen receiving gradient from both
    shared_observed: dict[str, int]
    #: trainable parameters of all entries
    total_entries: int
    #: parameters no sub-network gave gradient to on this batch
    unused: list[str] = field(default_factory=list)
    #: the shared parameters seen in each mode
    shared_by_mode: dict[str, list[str]] = field(default_factory=dict)
    #: batch-norm layers that run before a site / after one (module names)
    batchnorm_before: list[str] = field(default_factory=list)
    batchnorm_after: list[str] = field(default_factory=list)

    @property
    def shared_entries(self) -> int:
        """Entries of the shared parameters."""
        return sum(self.shared.values())

    @property
    def shared_fraction(self) -> float:
        """Entries of the shared parameters over all trainable entries."""
        return self.shared_entries / self.total_entries if self.total_entries else 0.0

    def text(self) -> str:
        """The report in words."""
        lines = [
            f"Turn-over proof on {self.n_examples} examples in train and eval mode; "
            f"sites: {', '.join(self.sites)}.",
            f"Split between the two sub-networks of every example: {_listing(self.split)}.",
            f"Shared (both sub-networks of an example train them, so every example updates "
            f"them): {len(self.shared)} parameters, {self.shared_entries:,} of "
            f"{self.total_entries:,} entries ({self.shared_fraction:.2%}).",
        ]
        if self.batchnorm_before:
            lines.append(
                f"{len(self.batchnorm_before)} batch-norm layers run before a site "
                f"({_names(self.batchnorm_before)}): their statistics are shared by both "
                "sub-networks (every example updates the running statistics, and in train "
                "mode the batch statistics couple the examples of a batch); memorization "
                "scores are computed in eval mode with the running statistics."
            )
        if self.batchnorm_after:
            lines.append(
                f"{len(self.batchnorm_after)} batch-norm layers run after a site "
                f"({_names(self.batchnorm_after)}): in train mode they couple the examples, "
                "so the parameters after them are shared in training."
            )
        if self.unused:
            lines.append(f"No gradient on this batch: {_names(self.unused)}.")
        return "\n".join(lines)

    __str__ = text


def _names(names, limit: int = 6) -> str:
    """The first ``limit`` names, and how many more."""
    names = list(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _listing(counts: dict[str, int]) -> str:
    """Parameters with their entry counts, in words."""
    if not counts:
        return "nothing"
    return _names(f"{n} ({c:,} entries)" for n, c in counts.items())


@contextlib.contextmanager
def _preserved(model: nn.Module):
    """Restore training flags, buffers and the global random state afterwards."""
    flags = {name: m.training for name, m in model.named_modules()}
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(buffers[name])
            for name, m in model.named_modules():
                m.training = flags[name]


def _site_parameters(model: TurnOverNet) -> list[tuple[int, str, int]]:
    """(site, parameter name, units axis) of every parameter of a site's own module that
    its mask splits: the head's weight columns, a masked module's output rows."""
    out = []
    for k, site in enumerate(model.sites):
        module = model.net.get_submodule(site.name)
        for pname, p in module.named_parameters(recurse=False):
            if site.kind == "input":
                axis = 1
            else:
                axis = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
            if p.requires_grad and p.dim() > axis and p.shape[axis] == site.units:
                out.append((k, f"net.{site.name}.{pname}" if site.name else f"net.{pname}", axis))
    return out


def _check_dropped(model, mode, i, grads, masks, checks) -> None:
    """Refuse a site whose own parameters get gradient from example i's unmuted loss in
    the units its mask drops."""
    for k, pname, axis in checks:
        site = model.sites[k]
        dropped = (model._expand(masks[k][i : i + 1], site)[0] == 0).nonzero().flatten()
        g = grads[pname]
        if g is None:
            continue
        leaked = int((g.index_select(axis, dropped.to(g.device)) != 0).sum())
        if leaked:
            raise TurnoverSiteError(
                f"site {site.name!r} breaks turn-over ({mode} mode): parameter {pname!r} gets "
                f"gradient from example {i}'s unmuted loss in {leaked} entries of units its "
                "mask drops, so the muted sub-network learns from the example. A batch-norm "
                "in train mode after the masked output mixes the examples' statistics (mask "
                "after the normalisation instead), or the masked output is used unmasked."
            )


def _usage(model, mode, x, y, unmuted, muted, checks):
    """Per parameter: entries some example's two sub-networks both use (``both``) and
    entries one of them uses alone (``only``)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names, params = [n for n, _ in named], [p for _, p in named]
    model.train(mode == "train")
    losses = F.cross_entropy(model(x, unmuted).float(), y, reduction="none")
    logits = model(x, muted).float()
    probe = torch.randn(logits.shape[1], generator=torch.Generator().manual_seed(1))
    muted_out = logits @ probe.to(logits.device)  # a random projection: never zero by accident
    both = {n: torch.zeros(p.shape, dtype=torch.bool, device=p.device) for n, p in named}
    only = {n: torch.zeros_like(b) for n, b in both.items()}
    for i in range(len(x)):
        gu = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
        gm = torch.autograd.grad(muted_out[i], params, retain_graph=True, allow_unused=True)
        gu = dict(zip(names, gu, strict=True))
        _check_dropped(model, mode, i, gu, unmuted, checks)
        for name, gm_ in zip(names, gm, strict=True):
            nu = gu[name] != 0 if gu[name] is not None else torch.zeros_like(both[name])
            nm = gm_ != 0 if gm_ is not None else torch.zeros_like(both[name])
            both[name] |= nu & nm
            only[name] |= nu ^ nm
    return both, only


def _module_of(pname: str) -> str:
    """The ``model.net`` module name of a parameter named as in ``model.named_parameters()``."""
    return pname.removeprefix("net.").rpartition(".")[0]


def _site_point(seen: Trace, site) -> int:
    """The event at which a site's mask applies: the head's start, a module's return."""
    return seen.start[site.name] if site.kind == "input" else seen.end[site.name]


def _require_split(model, k: int, usage, seen: Trace) -> None:
    """Refuse site ``k`` if its mask alone splits no parameter between the sub-networks."""
    both, only = usage
    if any(bool(only[n].any()) and not bool(both[n].any()) for n in both):
        return
    site = model.sites[k]
    point = _site_point(seen, site)
    after = [n for n in both if seen.start.get(_module_of(n), -1) > point and both[n].any()]
    raise TurnoverSiteError(
        f"site {site.name!r} splits no parameter between the two sub-networks: both use "
        f"every parameter after it ({_names(after) if after else 'there is none'}), so the "
        "muted sub-network is trained on the example too; mask an earlier module"
    )


def _batchnorms(model: TurnOverNet, seen: Trace) -> tuple[list[str], list[str]]:
    """Batch-norm layers that start before the last site's mask, and after the first."""
    points = [_site_point(seen, s) for s in model.sites]
    norms = [
        n
        for n, m in model.net.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and n in seen.start
    ]
    before = [n for n in norms if seen.start[n] < max(points)]
    after = [n for n in norms if seen.start[n] > min(points)]
    return before, after


def _proof_batch(model, in_shape, n_classes, seed, n_examples, x, y):
    """The given batch, or ``n_examples`` standard-normal inputs (a private generator) with
    labels cycling through the classes; on the model's device and float type."""
    ref = next(p for p in model.parameters() if p.is_floating_point())
    if x is None:
        gen = torch.Generator().manual_seed(int(seed))
        x = torch.randn((int(n_examples), *(int(s) for s in in_shape)), generator=gen)
    if y is None:
        y = torch.arange(len(x)) % int(n_classes)
    return x.to(device=ref.device, dtype=ref.dtype), y.to(ref.device)


def _only_site(masks, k: int) -> list[torch.Tensor]:
    """Masks with every site but ``k`` unmasked (all ones)."""
    return [m if j == k else torch.ones_like(m) for j, m in enumerate(masks)]


def prove_turnover(
    model: TurnOverNet,
    in_shape,
    n_classes: int,
    seed: int = 0,
    n_examples: int = 8,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> TurnoverProof:
    """Check on a small batch that every example's muted sub-network gets no gradient from
    it outside shared parameters (see the module docstring) and report what is split and shared.
    Raises :class:`TurnoverSiteError` naming the parameter or site at fault. Cost: per mode
    two forward passes of the batch and two backward passes per example (and with several
    sites, the same again in eval mode for each site alone).
    """
    if not hasattr(model, "sites"):
        raise TypeError(f"prove_turnover takes a TurnOverModel, got {type(model).__name__}")
    x, y = _proof_batch(model, in_shape, n_classes, seed, n_examples, x, y)
    masks = model.turnover_masks(seed, np.arange(len(x)), x.device, check_unique=False)
    rows = torch.arange(len(x), device=x.device)
    unmuted, muted = masks.unmuted(rows), masks.muted(rows)
    seen = trace(model.net, x[:2])
    checks = _site_parameters(model)
    with _preserved(model), torch.enable_grad():
        usage = {mode: _usage(model, mode, x, y, unmuted, muted, checks) for mode in _MODES}
        for k in range(len(model.sites)):
            alone = usage["eval"]
            if len(model.sites) > 1:
                iso = (_only_site(unmuted, k), _only_site(muted, k))
                alone = _usage(model, "eval", x, y, *iso, [])
            _require_split(model, k, alone, seen)
    return _report(model, usage, seen, len(x))


def _report(model, usage, seen: Trace, n_examples: int) -> TurnoverProof:
    """Gather the usage of both modes into a :class:`TurnoverProof`."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    both = {n: usage["train"][0][n] | usage["eval"][0][n] for n in params}
    only = {n: usage["train"][1][n] | usage["eval"][1][n] for n in params}
    shared = {n: params[n].numel() for n in params if both[n].any()}
    split = {n: params[n].numel() for n in params if n not in shared and only[n].any()}
    before, after = _batchnorms(model, seen)
    return TurnoverProof(
        sites=[
            f"{s.kind} of {s.name!r} ({s.units} units, {s.bits} mask bits)" for s in model.sites
        ],
        n_examples=n_examples,
        split=split,
        shared=shared,
        shared_observed={n: int(both[n].sum()) for n in shared},
        total_entries=sum(p.numel() for p in params.values()),
        unused=[n for n in params if n not in shared and n not in split],
        shared_by_mode={m: [n for n in params if usage[m][0][n].any()] for m in _MODES},
        batchnorm_before=before,
        batchnorm_after=after,
    )
