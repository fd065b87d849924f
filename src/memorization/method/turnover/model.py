"""A turn-over model around any ``nn.Module``: masks applied by hooks at the sites.

:class:`TurnOverModel` holds the user's network unchanged (as ``net``) and registers a
hook at every :class:`~.sites.Site`: a forward pre-hook that multiplies the head's
input, or a forward hook that multiplies a module's output, by the mask of the current
call. The hooks are objects, not closures, so that ``copy.deepcopy`` and pickling give
a model whose hooks belong to the copy. ``forward(x, masks=None)`` sets the masks for
one call; without masks the hooks do nothing and the model is the plain network.

With ``turnover: head`` the backbone does not depend on the mask, so
:meth:`TurnOverModel.forward_pair` runs it once: a pre-hook captures the head's input
and stops the forward pass there (a private exception), then the head runs on the
captured features once per sub-network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

from ..masks import check_keep_fraction, complement
from ..models.base import TurnOverNet, parameter_counts
from .errors import TurnoverSiteError
from .proof import prove_turnover
from .sites import Site, sample_input, trace

__all__ = ["TurnOverModel"]


class _StopForward(BaseException):
    """Raised by the capturing pre-hook of :meth:`TurnOverModel.forward_pair`.

    A ``BaseException`` so that a network's own ``except Exception`` cannot swallow it.
    """


class _SiteMask:
    """Multiplies the tensor at one site by the mask set for the current call."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.mask: torch.Tensor | None = None  # [B, units], set by TurnOverModel
        self.calls = 0

    def apply(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` times the mask broadcast along the site's units axis (``t`` if no mask)."""
        if self.mask is None:
            return t
        self.calls += 1
        axis = self.site.axis(t.dim())
        b, units = self.mask.shape
        if t.shape[0] != b or t.shape[axis] != units:
            raise TurnoverSiteError(
                f"site {self.site.name!r}: {self.site.kind} of shape {tuple(t.shape)} does not "
                f"take a mask of {units} units for a batch of {b} (units on axis {axis})"
            )
        shape = [1] * t.dim()
        shape[0], shape[axis] = b, units
        return t * self.mask.to(t.dtype).view(shape)


class _InputMask(_SiteMask):
    def __call__(self, module, args):
        return (self.apply(args[0]), *args[1:])


class _OutputMask(_SiteMask):
    def __call__(self, module, args, output):
        return self.apply(output)


class _Capture:
    """Pre-hook that keeps a module's inputs and stops the forward pass."""

    def __call__(self, module, args, kwargs):
        self.args, self.kwargs = args, kwargs
        raise _StopForward


class TurnOverModel(TurnOverNet):
    """Any network with turn-over masks at its sites (see the module docstring).

    ``mask_units`` are the mask bits of every site (one per group of units), in the order
    of ``site_names``; ``keep_fraction`` the share of bits the unmuted sub-network keeps.
    ``pair_module`` names the head module when ``turnover: head`` (the module that
    :meth:`forward_pair` runs twice on the backbone's features). ``in_shape`` and
    ``n_classes`` (when known) let :meth:`shared_parameter_names` run the proof.
    """

    def __init__(
        self,
        net: nn.Module,
        sites: Sequence[Site],
        keep_fraction: float = 0.5,
        *,
        pair_module: str | None = None,
        in_shape: Sequence[int] | None = None,
        n_classes: int | None = None,
    ) -> None:
        super().__init__()
        if not sites:
            raise TurnoverSiteError("a turn-over model needs at least one site")
        self.net = net
        self.sites = list(sites)
        self.site_names = [s.name for s in self.sites]
        self.mask_units = [s.bits for s in self.sites]
        self.keep_fraction = check_keep_fraction(keep_fraction)
        self.pair_module = pair_module
        self.in_shape = None if in_shape is None else tuple(int(s) for s in in_shape)
        self.n_classes = n_classes
        self.proof = None  # named sites: the TurnoverProof their shared parameters come from
        self.weights_report: dict | None = None  # what build_external loaded, if anything
        self._pair_ok: bool | None = None  # does the head's output come out unchanged?
        self._masks: list[_SiteMask] = []
        for site in self.sites:
            module = net.get_submodule(site.name)
            if site.kind == "input":
                hook = _InputMask(site)
                module.register_forward_pre_hook(hook)
            else:
                hook = _OutputMask(site)
                module.register_forward_hook(hook)
            self._masks.append(hook)
        if self.in_shape is not None and pair_module is not None:
            self._check_pair(sample_input(net, self.in_shape))

    # -- masks -------------------------------------------------------------------------------

    def _expand(self, bits: torch.Tensor, site: Site) -> torch.Tensor:
        """The [B, units] mask of a site from its [B, bits] mask bits (groups repeated)."""
        sizes = site.groups
        if len(sizes) == site.units:
            return bits
        if all(s == sizes[0] for s in sizes):
            return bits.repeat_interleave(sizes[0], dim=1)
        repeats = torch.tensor(sizes, device=bits.device)
        return bits.repeat_interleave(repeats, dim=1, output_size=site.units)

    @contextlib.contextmanager
    def _masked(self, masks: Sequence[torch.Tensor]):
        """Set the masks of one call; check afterwards that every site applied its mask once."""
        self._check_masks(masks)
        for hook, bits, site in zip(self._masks, masks, self.sites, strict=True):
            hook.mask, hook.calls = self._expand(bits, site), 0
        try:
            yield
            for hook in self._masks:
                if hook.calls != 1:
                    raise TurnoverSiteError(
                        f"site {hook.site.name!r} applied its mask {hook.calls} times in one "
                        "forward pass; a turn-over site must run exactly once"
                    )
        finally:
            for hook in self._masks:
                hook.mask = None

    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None):
        """Logits of the sub-networks of ``masks`` (one per site), or of the plain network."""
        if masks is None:
            return self.net(x)
        with self._masked(masks):
            return self.net(x)

    # -- the pair ----------------------------------------------------------------------------

    def _head_inputs(self, x: torch.Tensor) -> _Capture:
        """Run the backbone up to the head and return the head's captured inputs."""
        module = self.net.get_submodule(self.pair_module)
        capture = _Capture()
        handle = module.register_forward_pre_hook(capture, prepend=True, with_kwargs=True)
        try:
            self.net(x)
        except _StopForward:
            return capture
        finally:
            handle.remove()
        raise TurnoverSiteError(f"the head {self.pair_module!r} did not run in forward")

    def _check_pair(self, x: torch.Tensor) -> None:
        """Whether the network returns the head's output unchanged (then the pair can share
        the backbone): a traced forward on a small batch."""
        seen = trace(self.net, x, keep=[self.pair_module])
        head_out = seen.outputs.get(self.pair_module)
        out = seen.output
        same = torch.is_tensor(out) and head_out is not None and out.shape == head_out.shape
        if same and out.device.type != "meta":
            same = bool(torch.equal(out, head_out))
        self._pair_ok = same

    def forward_pair(self, x, unmuted, muted=None):
        """Logits of the unmuted and the muted sub-network of each example.

        With ``turnover: head`` the backbone runs once and the head twice; otherwise (or if
        the network changes the head's output before returning it) two full forwards.
        """
        muted = complement(unmuted, self.keep_fraction) if muted is None else muted
        self._check_masks(unmuted)
        self._check_masks(muted)
        if self.pair_module is not None and self._pair_ok is None:
            self._check_pair(x[:2].detach())
        if self.pair_module is None or not self._pair_ok:
            return self(x, unmuted), self(x, muted)
        captured = self._head_inputs(x)
        head = self.net.get_submodule(self.pair_module)
        logits = []
        for masks in (unmuted, muted):
            with self._masked(masks):
                logits.append(head(*captured.args, **captured.kwargs))
        return logits[0], logits[1]

    # -- what is shared ------------------------------------------------------------------------

    def _structural_shared(self) -> list[str]:
        """With ``turnover: head``: every parameter outside the head, and the bias of a plain
        Linear head (its input mask does not split it)."""
        prefix = self.pair_module + "." if self.pair_module else ""  # "": the net is the head
        head_bias = prefix + "bias" if self.sites[0].kind == "input" else None
        return [
            name
            for name, p in self.net.named_parameters()
            if p.requires_grad and (not name.startswith(prefix) or name == head_bias)
        ]

    def shared_parameter_names(self) -> list[str]:
        """Parameters both sub-networks of an example train (every example updates them).

        With ``turnover: head`` from the structure: every parameter before the head (and a
        head bias). This is an upper bound: :func:`~.proof.prove_turnover` may find some of
        them split, e.g. a last convolution (and its batch-norm) whose output channel ``c``
        only reaches feature ``c``, as for torchvision ResNets on 32x32 inputs. With named
        sites, from the proof (kept as ``self.proof``; run now if it has not run, which
        needs ``in_shape`` and ``n_classes``). Names as in ``self.named_parameters()``.
        """
        if self.pair_module is not None:
            return ["net." + name for name in self._structural_shared()]
        if self.proof is not None:
            return list(self.proof.shared)
        if self.in_shape is None or self.n_classes is None:
            raise ValueError(
                "the shared parameters of named sites come from the proof: set "
                "model.proof = prove_turnover(model, in_shape, n_classes) first"
            )
        self.proof = prove_turnover(self, self.in_shape, self.n_classes)
        return list(self.proof.shared)

    def describe(self) -> dict:
        """Sites (name, masked input or output, units, mask bits, group sizes), the keep
        fraction, the shared parameters (name: entries) and their fraction of all entries."""
        shared = set(self.shared_parameter_names())
        params = dict(self.named_parameters())
        counts = parameter_counts(self)
        return {
            "sites": [
                {
                    "name": s.name,
                    "masked": s.kind,
                    "units": s.units,
                    "bits": s.bits,
                    "group_sizes": sorted(set(s.groups)),
                }
                for s in self.sites
            ],
            "keep_fraction": self.keep_fraction,
            "shared_parameters": {n: params[n].numel() for n in params if n in shared},
            "shared_entries": counts["shared"],
            "total_entries": counts["total"],
            "shared_fraction": counts["shared"] / counts["total"] if counts["total"] else 0.0,
        }
