"""``source: image_folder``: a folder of image files, one subfolder per class.

Layouts:

- ``path/train/<class>/...`` and ``path/test/<class>/...``: the given split; both
  trees must have the same class subfolders;
- ``path/<class>/...`` (no ``train``/``test`` subfolders): a stratified seeded split
  with ``test_fraction`` (scikit-learn ``train_test_split`` of the example ids with
  ``stratify=labels, random_state=split_seed``).

Classes are the sorted names of the class subfolders (hidden ones skipped); label
``k`` is the ``k``-th. Image files are found at any depth under a class folder by
extension (``.png .jpg .jpeg .bmp .gif .webp``, any case); other files are ignored.
16-bit grey images (PNG mode ``I;16``) and float images are scaled to 8-bit grey levels,
not clipped (:mod:`memorization.data.depth`). Training images that are all one value
are refused (they cannot be standardised).

Options:

- ``path`` (required): the root folder.
- ``size`` (``[H, W]``, or null: the default): every image is resized to ``H x W``
  with PIL's bilinear filter; null keeps the images' own size, which must then be the
  same for all (checked).
- ``channels`` (null, 1 or 3): null takes the mode of the first image (grey modes
  such as ``L``: 1, anything else: 3); every image is converted to ``L`` or ``RGB``.
- ``test_fraction`` (0.2) and ``split_seed`` (0): the split of a single tree.
- ``lazy`` (true): the ``dataset`` artifact holds the files' absolute paths and
  training decodes each batch when it is drawn
  (:class:`memorization.data.lazy.LazyImages`); the channel statistics are computed
  while streaming once over the images at prepare time. False: the artifact holds
  the pixels (uint8).

Example ids (``ids``): ``sorted`` (the default) numbers the image files ``0..N-1`` in
the sorted order of their path relative to the root, as POSIX strings (e.g.
``test/cat/1.png`` < ``train/cat/1.png``), so an id does not change as long as the set
of files does not; ``filename`` takes each file's name without its extension as its id
(``train/cat/00042.png`` is example 42: ids you chose, e.g. the rows of an arrays file
the images came from; they must be distinct non-negative integers).

:func:`info` only lists the files and opens (not decodes) the first image of each
class; :func:`load` decodes every image once (an unreadable file is refused by name).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...infra.options import REQUIRED, Option
from .. import folder_listing
from ..spec import DatasetError, DatasetInfo, DatasetSpec, RawData
from ..stats import ChannelSums
from .checks import check_pixels
from .split import stratified_split

__all__ = ["EXTENSIONS", "OPTIONS", "info", "load", "scan"]

#: image files are found by these extensions (any case)
EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})

OPTIONS: dict[str, Option] = {
    "path": Option(
        REQUIRED,
        "Root folder: train/<class>/ and test/<class>/ subfolders, or one <class>/ tree.",
        {"type": "string"},
    ),
    "size": Option(
        None,
        "Image size [height, width] every image is resized to; null: all images must have "
        "one size.",
        {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 2,
                    "maxItems": 2,
                },
            ]
        },
    ),
    "channels": Option(
        None,
        "Channels (1: grey, 3: RGB) every image is converted to; null: from the first image.",
        {"enum": [None, 1, 3]},
    ),
    "test_fraction": Option(
        0.2,
        "Fraction held out as a stratified test split when there are no train/ and test/ "
        "subfolders.",
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    ),
    "split_seed": Option(
        0, "Seed of the stratified train/test split.", {"type": "integer", "minimum": 0}
    ),
    "ids": Option(
        "sorted",
        "Example ids: sorted (the files numbered in sorted path order) or filename (each "
        "file's name without extension is its id).",
        {"type": "string", "enum": ["sorted", "filename"]},
    ),
    "lazy": Option(
        True,
        "Store the file paths and decode each batch during training (false: store the pixels).",
        {"type": "boolean"},
    ),
}


def _classes(tree: Path, root: Path, known: folder_listing.Listing) -> list[str]:
    prefix = _rel(tree, root)
    return sorted(
        name
        for folder in known.folders
        if folder.startswith(prefix) and folder != prefix
        for name in [folder[len(prefix) : -1]]
        if "/" not in name and not name.startswith(".")
    )


def _rel(folder: Path, root: Path) -> str:
    """``folder`` as a prefix of the listing's paths (``""`` for the root)."""
    rel = folder.relative_to(root).as_posix()
    return "" if rel == "." else rel + "/"


def _by_class(known: folder_listing.Listing, depth: int) -> dict[str, list[str]]:
    """The listing's files by their class folder (the first ``depth`` folders of
    their path, as a prefix ``train/cat/``)."""
    out: dict[str, list[str]] = {}
    for rel in known.files:
        parts = rel.split("/", depth)
        if len(parts) > depth:
            out.setdefault("/".join(parts[:depth]) + "/", []).append(rel)
    return out


def _files(prefix: str, files: list[str], links: frozenset[str]) -> list[str]:
    """The image files of class folder ``prefix`` (any depth; not in hidden or linked
    folders below it, as ``os.walk`` finds them), as POSIX paths relative to the root."""
    out = []
    for rel in files:
        *dirs, name = rel[len(prefix) :].split("/")
        if os.path.splitext(name)[1].lower() not in EXTENSIONS or any(
            part.startswith(".") for part in (*dirs, name)
        ):
            continue
        if not any(prefix + "/".join(dirs[: i + 1]) + "/" in links for i in range(len(dirs))):
            out.append(rel)
    return out


def _numbered(paths: list[str], labels: list[int], ids: str, where: str):
    """Paths and labels in id order, and the ids (see the module docstring)."""
    if ids == "sorted":
        order = sorted(range(len(paths)), key=paths.__getitem__)
        numbers = np.arange(len(paths), dtype=np.int64)
    else:
        stems = [Path(p).stem for p in paths]
        bad = [p for p, s in zip(paths, stems, strict=True) if not s.isdigit()]
        if bad:
            raise DatasetError(
                f"{where}: with ids: filename every file name must be an id "
                f"(a non-negative integer), not {bad[0]!r}"
            )
        values = np.array([int(s) for s in stems], dtype=np.int64)
        order = list(np.argsort(values, kind="stable"))
        numbers = values[order]
        dup = numbers[1:][numbers[1:] == numbers[:-1]]
        if dup.size:
            raise DatasetError(
                f"{where}: with ids: filename, id {int(dup[0])} is the name of two files"
            )
    paths = np.array([paths[i] for i in order], dtype=object)
    return paths, np.asarray(labels, dtype=np.int64)[order], numbers


def scan(root: str | Path, test_fraction: float = 0.2, split_seed: int = 0, ids="sorted"):
    """``(relative paths, labels, is_test, classes, ids)`` of an image folder, in id order."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {str(root)!r} does not exist or is not a folder")
    train_dir, test_dir = root / "train", root / "test"
    trees = [t for t in (train_dir, test_dir) if t.is_dir()]
    if len(trees) == 1:
        missing = test_dir if trees[0] == train_dir else train_dir
        raise DatasetError(
            f"image folder {str(root)!r} has {trees[0].name}/ but no {missing.name}/: give "
            "both train/ and test/, or one tree of class folders (split with test_fraction)"
        )
    split_given = len(trees) == 2
    known = folder_listing.listing(root)  # walked once a process
    if split_given:
        classes = _classes(train_dir, root, known)
        test_classes = _classes(test_dir, root, known)
        if classes != test_classes:
            only_train = sorted(set(classes) - set(test_classes))
            only_test = sorted(set(test_classes) - set(classes))
            raise DatasetError(
                f"image folder {str(root)!r}: train/ and test/ must have the same class "
                f"folders; only in train/: {only_train}, only in test/: {only_test}"
            )
    else:
        classes = _classes(root, root, known)
    where = f"image folder {str(root)!r}"
    if len(classes) < 2:
        raise DatasetError(f"{where}: at least two class folders are needed, found {classes}")
    paths, labels = [], []
    by_class = _by_class(known, 2 if split_given else 1)
    for k, name in enumerate(classes):
        for tree in trees if split_given else [root]:
            prefix = _rel(tree / name, root)
            found = _files(prefix, by_class.get(prefix, []), known.links)
            if not found and tree != test_dir:
                ext = " ".join(sorted(EXTENSIONS))
                raise DatasetError(
                    f"{where}: class folder {str(tree / name)!r} has no image files ({ext})"
                )
            paths += found
            labels += [k] * len(found)
    paths, labels, ids = _numbered(paths, labels, ids, where)
    if split_given:
        is_test = np.array([p.startswith("test/") for p in paths], dtype=bool)
    else:
        is_test = stratified_split(labels, test_fraction, split_seed, where)
    counts = np.bincount(labels[~is_test], minlength=len(classes))
    few = [f"{classes[k]} ({c})" for k, c in enumerate(counts) if c < 2]
    if few:
        raise DatasetError(
            f"{where}: every class needs at least 2 training images; too few: {', '.join(few)}"
        )
    return paths, labels, is_test, tuple(classes), ids


def _options(spec: DatasetSpec) -> dict:
    opts = {k: o.default for k, o in OPTIONS.items() if not o.required}
    opts.update(spec.options)
    if "path" not in opts:
        raise DatasetError(f"dataset {spec.name!r} (source: image_folder) needs path")
    if opts["size"] is not None:
        size = list(opts["size"])
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise DatasetError(f"dataset {spec.name!r}: size must be [height, width], got {size}")
        opts["size"] = (int(size[0]), int(size[1]))
    if opts["channels"] not in (None, 1, 3):
        raise DatasetError(f"dataset {spec.name!r}: channels must be 1, 3 or null")
    return opts


def _peek(path: Path) -> tuple[str, tuple[int, int]]:
    """Mode and ``(H, W)`` of an image file (its header only)."""
    from PIL import Image  # PIL is imported only where images are opened (heavy)

    try:
        with Image.open(path) as im:
            return im.mode, (im.size[1], im.size[0])
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DatasetError(f"image file {str(path)!r} cannot be read: {err}") from err


def _scan(spec: DatasetSpec):
    from ..lazy import GREY_MODES  # heavy dependency: data.lazy imports torch

    opts = _options(spec)
    root = Path(str(opts["path"])).expanduser().resolve()
    paths, labels, is_test, classes, ids = scan(
        root, opts["test_fraction"], opts["split_seed"], opts["ids"]
    )
    # the first image of each class (in id order): mode, and size where not given
    firsts = [int(np.argmax(labels == k)) for k in range(len(classes))]
    first = min(firsts)
    mode, own = _peek(root / paths[first])
    channels = opts["channels"] or (1 if mode in GREY_MODES else 3)
    size = opts["size"]
    if size is None:
        for i in firsts:
            if i == first:
                continue
            other = _peek(root / paths[i])[1]
            if other != own:
                raise DatasetError(_size_error(root, paths[first], own, paths[i], other))
        size = own
    return opts, root, paths, labels, is_test, classes, channels, size, ids


def _size_error(root, first, size, path, other) -> str:
    return (
        f"image folder {str(root)!r}: images differ in size ({str(root / first)!r} is "
        f"{size[0]}x{size[1]}, {str(root / path)!r} is {other[0]}x{other[1]}, height x "
        "width) and size is null; set size: [height, width] to resize them"
    )


def info(spec: DatasetSpec, data_root: str | Path = "data") -> DatasetInfo:
    _, root, _, labels, is_test, classes, channels, size, _ = _scan(spec)
    counts = np.bincount(labels[~is_test], minlength=len(classes))
    return DatasetInfo(
        n_train=int((~is_test).sum()),
        n_test=int(is_test.sum()),
        shape=(channels, *size),
        classes=classes,
        source=f"image_folder {root}",
        train_class_counts=tuple(int(c) for c in counts),
    )


def _decode_checked(root, rel, size, channels, keep_size, first):
    from ..lazy import read_image  # heavy dependency: data.lazy imports torch

    img = read_image(root / rel, None if keep_size else size, channels)
    if keep_size and img.shape[1:] != tuple(size):
        raise DatasetError(_size_error(root, first, size, rel, img.shape[1:]))
    return img


def load(spec: DatasetSpec, data_root: str | Path = "data", download: bool = False) -> RawData:
    opts, root, paths, labels, is_test, classes, channels, size, ids = _scan(spec)
    keep_size = opts["size"] is None
    first = paths[0]
    attrs = {"image_root": str(root), "image_size": list(size), "image_channels": channels}
    common = dict(
        labels=labels,
        is_test=is_test,
        ids=ids,
        classes=classes,
        source=f"image_folder {root}",
        shape=(channels, *size),
    )
    if not opts["lazy"]:
        images = np.empty((len(paths), channels, *size), dtype=np.uint8)
        for i, rel in enumerate(paths):
            images[i] = _decode_checked(root, rel, size, channels, keep_size, first)
        check_pixels(images, is_test, f"image folder {str(root)!r}")
        return RawData(images=images, attrs=attrs, **common)
    # one streaming pass: every image decoded once (checked), training pixels summed exactly
    sums = ChannelSums(channels)
    for rel, test in zip(paths, is_test, strict=True):
        img = _decode_checked(root, rel, size, channels, keep_size, first)
        if not test:
            sums.add(img)
    mean, std = sums.stats()
    if (std == 0).any():
        c = int(np.argmax(std == 0))
        raise DatasetError(
            f"image folder {str(root)!r}: every training image has the grey level "
            f"{round(float(mean[c]) * 255)} in every pixel of channel {c}: constant images "
            "cannot be standardised (their standard deviation is 0)"
        )
    attrs.update(channel_mean=mean.tolist(), channel_std=std.tolist())
    abs_paths = np.array([str(root / p) for p in paths], dtype=object)
    return RawData(paths=abs_paths, attrs=attrs, **common)
