"""The step backend of any model: per-model gradients through ``torch.func``'s ``vmap``.

The models' parameters are stacked and the gradient of each model's batch loss comes from
``vmap(grad(functional_call))``.

``channels_last`` (a convolutional model) stacks channels-last weights, so every model's
slice of the stacked tensors, its gradient and its optimizer state stay channels-last, and
hands every model its batch in channels-last layout, as ``fit`` converts one model and its
batches. ``vmap`` runs the K models' convolutions as one grouped convolution and chooses
that one's layout itself; the results equal the default layout's to float tolerance.

Training runs the model in train mode, predictions (``logits``) in eval mode, as
:func:`~memorization.method.training.fit` and the models' scoring do: a batch-norm layer
predicts from its running statistics (and leaves them as they are), dropout is off.

Under a mixed ``precision``, ``vmap``'s batch rule of batch normalisation refuses a bf16
or fp16 input beside float32 weights, which one model's CPU kernel takes. The template's
batch-norm layers therefore normalise in float32 and hand their output on in their input's
dtype, as that kernel does (:func:`_batch_norm_in_float32`).
"""

from __future__ import annotations

import copy

from torch import Tensor, nn
from torch.func import functional_call, grad, stack_module_state, vmap
from torch.nn import functional as F

from ...method.precision import autocast, to_channels_last, to_channels_last_batch

__all__ = ["FuncStep"]


def _to_float32(module: nn.Module, args: tuple) -> tuple:
    module._input_dtype = args[0].dtype
    return (args[0].float(), *args[1:])


def _to_input_dtype(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return output.to(module._input_dtype)


def _batch_norm_in_float32(template: nn.Module) -> None:
    """Hooks on every batch-norm layer of ``template``: its input cast to float32, its
    output back to the input's dtype."""
    for module in template.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_to_float32)
            module.register_forward_hook(_to_input_dtype)


class FuncStep:
    """Batch gradients of all models through ``vmap(grad(functional_call))``; with a
    mixed ``precision`` the forward and the loss run under autocast, the stacked
    parameters and the optimizer's state stay float32; ``channels_last``: the module's
    docstring."""

    name = "func"
    model_dim = 0

    def __init__(
        self,
        models: list[nn.Module],
        x_train: Tensor,
        y_train: Tensor,
        precision: str = "fp32",
        *,
        channels_last: bool = False,
    ) -> None:
        # in place, before stacking (a model without convolutions is left as it is)
        self.channels_last = channels_last and to_channels_last(models[0])
        for model in models[1:] if self.channels_last else ():
            to_channels_last(model)
        self.template = copy.deepcopy(models[0]).to("meta").train()
        if precision != "fp32":
            _batch_norm_in_float32(self.template)
        # predictions in eval mode, as one model's (running statistics, no dropout)
        self.eval_template = copy.deepcopy(self.template).eval()
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self.x, self.y = x_train, y_train
        self.precision = precision

        def loss_one(p, b, x, y, w):
            with autocast(precision, x.device):  # fp32: no autocast at all
                logits = functional_call(self.template, (p, b), (x,))
                return (F.cross_entropy(logits, y, reduction="none") * w).sum()

        def logits_one(p, b, x):
            with autocast(precision, x.device):
                return functional_call(self.eval_template, (p, b), (x,))

        self._grad = vmap(grad(loss_one))
        self._logits = vmap(logits_one, in_dims=(0, 0, None))

    def tensors(self) -> list[Tensor]:
        return list(self.params.values())

    def gradients(self, rows: Tensor, weights: Tensor) -> list[Tensor]:
        x = self.x[rows]  # [K, b, ...]
        if self.channels_last:  # each model's [b, C, H, W] slice in channels-last layout
            x = to_channels_last_batch(x.flatten(0, 1)).unflatten(0, rows.shape)
        g = self._grad(self.params, self.buffers, x, self.y[rows], weights)
        return [g[k] for k in self.params]

    def logits(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = to_channels_last_batch(x)
        return self._logits(self.params, self.buffers, x)

    def state_dicts(self) -> list[dict[str, Tensor]]:
        k = next(iter(self.params.values())).shape[0]
        both = {**self.params, **self.buffers}
        return [{n: v[i].clone() for n, v in both.items()} for i in range(k)]
