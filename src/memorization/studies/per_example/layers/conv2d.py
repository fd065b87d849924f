"""``nn.Conv2d`` (groups=1, any stride, padding, dilation and padding mode): one token
per output position, its input patch unfolded to K = C_in k_h k_w numbers."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from .base import Call, Layer

__all__ = ["Conv2dLayer"]


class Conv2dLayer(Layer):
    def __init__(self, name, module):
        super().__init__(name, module)
        if module.groups != 1:
            raise ValueError(f"layer {name!r}: only groups=1 is supported by the hooks path")

    def tokens_per_example(self, call):
        return call.out_shape[-1] * call.out_shape[-2]

    def in_features(self):
        m = self.module
        return m.in_channels * m.kernel_size[0] * m.kernel_size[1]

    def out_features(self):
        return self.module.out_channels

    def _padded(self, a: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The input padded the way the module pads it, and the padding left to apply."""
        m = self.module
        if m.padding_mode == "zeros" and not isinstance(m.padding, str):
            return a, m.padding
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        return F.pad(a, m._reversed_padding_repeated_twice, mode=mode), (0, 0)

    def _check_input(self, call: Call) -> None:
        if call.a.dim() != 4:
            raise ValueError(f"layer {self.name!r}: the hooks path needs batched 4-d input")

    def tokens(self, call, sl, need_a, dtype=torch.float64):
        self._check_input(call)
        m = self.module
        d = call.d[sl]
        c = d.shape[0]
        d = d.reshape(c, m.out_channels, -1).transpose(1, 2).to(dtype)
        a = None
        if need_a:
            padded, padding = self._padded(call.a[sl].to(dtype))
            a = F.unfold(padded, m.kernel_size, m.dilation, padding, m.stride).transpose(1, 2)
        return a, d

    def dot(self, call, gw, gb):
        self._check_input(call)
        m = self.module
        out = torch.zeros(call.a.shape[0], dtype=torch.float64, device=call.d.device)
        if gw is not None:
            padded, padding = self._padded(call.a)
            proj = F.conv2d(padded, gw, None, m.stride, padding, m.dilation)
            out += proj.mul_(call.d).sum((1, 2, 3)).to(torch.float64)
        if gb is not None:
            out += (call.d.sum((2, 3)) @ gb).to(torch.float64)
        return out
