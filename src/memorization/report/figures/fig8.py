"""Figure 8: lowest and highest memorization scores per class (CIFAR-10 in the paper)."""

from .grid import grid_figure

FIGURE = grid_figure(
    "fig8",
    8,
    "The lowest (top) and highest (bottom) memorization scores of each class "
    "(paper: CIFAR-10 with VGG-11).",
)
