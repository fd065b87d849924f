"""Figure 7: lowest and highest memorization scores per class (MNIST in the paper)."""

from .grid import grid_drawing

draw, claims = grid_drawing("fig7", 7)
