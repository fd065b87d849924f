"""Figure 7: lowest and highest memorization scores per class (MNIST in the paper)."""

from .grid import grid_figure

FIGURE = grid_figure(
    "fig7",
    7,
    "The lowest (top) and highest (bottom) memorization scores of each class (paper: MNIST).",
)
