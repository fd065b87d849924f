"""Recording, during one forward pass, every hooked layer's inputs and output-gradients."""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from .layers import Call, Layer, make_layer
from .modules import hook_layers

__all__ = ["LayerRecorder"]


class LayerRecorder:
    """Context manager: during one forward pass, record every hooked layer's calls.

    Each call's input is saved (a detached alias of what autograd saves anyway) and a
    hook on its output stores the output-gradient when a backward pass reaches it.
    With ``keep_outputs`` the outputs are kept too, so that the backward pass can stop
    at them (:func:`unit_sum`).
    """

    def __init__(self, model: nn.Module, batch_size: int, keep_outputs: bool = False):
        self.layers = [make_layer(n, m) for n, m in hook_layers(model)]
        self.batch_size = batch_size
        self.keep_outputs = keep_outputs
        self._handles: list = []

    def __enter__(self) -> LayerRecorder:
        self._handles = [
            layer.module.register_forward_hook(partial(self._forward_hook, layer))
            for layer in self.layers
        ]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _forward_hook(self, layer: Layer, module, inputs, output) -> None:
        if not isinstance(output, Tensor) or not output.requires_grad:
            return
        if not inputs or not isinstance(inputs[0], Tensor):
            raise ValueError(f"layer {layer.name!r} must be called with its input positionally")
        a = inputs[0]
        if a.dim() < 2 or a.shape[0] != self.batch_size:
            raise ValueError(
                f"layer {layer.name!r} got input of shape {tuple(a.shape)}; the hooks path "
                f"needs the batch ({self.batch_size} examples) in dimension 0"
            )
        call = Call(a, output, self.keep_outputs)
        output.register_hook(call.save_grad)
        layer.calls.append(call)

    def outputs(self) -> list[Tensor]:
        return [c.z for layer in self.layers for c in layer.calls]

    def outputs_intact(self) -> bool:
        return all(c.z._version == c.z_version for layer in self.layers for c in layer.calls)

    def check_all_seen(self) -> None:
        """Raise if a layer's parameters got gradient while its forward never ran."""
        for layer in self.layers:
            if layer.calls:
                continue
            for p in (layer.weight, layer.bias):
                if p is not None and p.grad is not None:
                    raise ValueError(
                        f"parameters of layer {layer.name!r} received gradient although "
                        "its forward() never ran (used functionally?); use method='func'"
                    )
