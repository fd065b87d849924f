"""Figure 8: lowest and highest memorization scores per class (CIFAR-10 in the paper)."""

from .grid import grid_drawing

draw, claims = grid_drawing("fig8", 8)
