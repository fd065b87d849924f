"""``nn.Linear``: one token per position of its input (the last dimension is K)."""

from __future__ import annotations

import torch

from .base import Layer

__all__ = ["LinearLayer"]


class LinearLayer(Layer):
    def tokens_per_example(self, call):
        return call.a[0].numel() // self.in_features()

    def in_features(self):
        return self.module.in_features

    def out_features(self):
        return self.module.out_features

    def tokens(self, call, sl, need_a, dtype=torch.float64):
        d = call.d[sl]
        c = d.shape[0]
        d = d.reshape(c, -1, self.out_features()).to(dtype)
        a = None
        if need_a:
            a = call.a[sl].reshape(c, -1, self.in_features()).to(dtype)
        return a, d

    def dot(self, call, gw, gb):
        n = call.a.shape[0]
        a = call.a.reshape(n, -1, self.in_features())
        d = call.d.reshape(n, -1, self.out_features())
        out = torch.zeros(n, dtype=torch.float64, device=d.device)
        if gw is not None:
            # the cheaper side: Ḡ a_it against d_it, or Ḡᵀ d_it against a_it
            if self.out_features() <= self.in_features():
                out += (a @ gw.T).mul_(d).sum((1, 2)).to(torch.float64)
            else:
                out += (d @ gw).mul_(a).sum((1, 2)).to(torch.float64)
        if gb is not None:
            out += (d.sum(1) @ gb).to(torch.float64)
        return out
