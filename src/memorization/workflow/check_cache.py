"""A config check that passed is not redone while nothing it read has changed.

The Snakefile checks the whole config before Snakemake plans a job (:mod:`.gate`);
on a rerun where nothing changed that check would find the same nothing again. Its
result (each dataset's info) is kept in one file, under a key that hashes everything
the check reads:

- the config as parsed (``--config`` overrides included) and the bytes of every config
  file,
- whether the jobs run here (then the host checks ran: the host name, its memory, the
  visible GPUs named by ``CUDA_VISIBLE_DEVICES``), and whether the results folder can be
  written (its nearest existing folder's mode and owner),
- the dataset files: the size and modification time of every file under every path a
  ``datasets:`` entry names, and under ``data_root`` where a dataset is read from it
  (``mnist5k`` and ``digits`` come with their packages),
- the library's own source (every ``.py`` file of the package, by content),
- the environment variables the dataset sources read (``HF_*``, ``MEMORIZATION_*``).

Any change gives another key, and the check runs again. A check that found problems
is never kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from ..data.spec import DatasetInfo
from ..infra.files import atomic_write

__all__ = ["CACHE_FILE", "check_key", "read_cached", "write_cached"]

#: where the Snakefile keeps the last passed check, relative to the working directory
CACHE_FILE = os.path.join(".snakemake", "memorization", "check.json")

#: the library whose source is part of the key
SOURCE = Path(__file__).resolve().parents[1]

_ENV_PREFIXES = ("HF_", "MEMORIZATION_", "CUDA_VISIBLE_DEVICES")


def _stats(path: str) -> Iterator[str]:
    """``path size mtime_ns`` of a file, or of every file and folder under a folder."""
    if not os.path.isdir(path):
        st = os.stat(path)
        yield f"{path}\t{st.st_size}\t{st.st_mtime_ns}"
        return
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files) + dirs:
            full = os.path.join(folder, name)
            try:
                st = os.stat(full)
            except OSError:  # a broken link, or a file removed while listing
                yield f"{full}\tmissing"
                continue
            yield f"{full}\t{st.st_size}\t{st.st_mtime_ns}"


#: built-in datasets that come with a package (its source is part of the key), not data_root
_PACKAGED = ("mnist5k", "digits")


def _reads_data_root(config: Mapping) -> bool:
    """Whether a dataset the experiments use is read from ``data_root``."""
    datasets = config.get("datasets")
    datasets = datasets if isinstance(datasets, Mapping) else {}
    experiments = config.get("experiments")
    for exp in experiments.values() if isinstance(experiments, Mapping) else ():
        name = exp.get("dataset") if isinstance(exp, Mapping) else None
        entry = datasets.get(name)
        if isinstance(entry, Mapping):
            if entry.get("source") == "torchvision" and not entry.get("root"):
                return True
        elif name not in _PACKAGED:
            return True
    return False


def _dataset_paths(config: Mapping) -> list[str]:
    """Every path named by an entry of ``datasets:`` that exists, and ``data_root`` where
    a dataset is read from it."""
    paths = set()
    if _reads_data_root(config):
        paths.add(os.path.expanduser(str(config.get("data_root", "data"))))
    datasets = config.get("datasets")
    for entry in datasets.values() if isinstance(datasets, Mapping) else ():
        for value in entry.values() if isinstance(entry, Mapping) else ():
            if isinstance(value, str) and value and os.path.exists(os.path.expanduser(value)):
                paths.add(os.path.expanduser(value))
    return sorted(p for p in paths if os.path.exists(p))


def _source_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _results_state(config: Mapping) -> list:
    """The results folder's nearest existing folder: its kind, mode and owner (the check
    says whether the results can be written there)."""
    folder = Path(os.path.abspath(str(config.get("results", "results"))))
    for parent in [folder, *folder.parents]:
        if parent.exists():
            st = parent.stat()
            return [str(parent), parent.is_dir(), st.st_mode, st.st_uid, os.access(parent, os.W_OK)]
    return []


def _host(local: bool) -> list[str]:
    if not local:
        return []
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return [socket.gethostname(), str(memory)]


def check_key(config: Mapping, configfiles: Sequence[str], *, local: bool) -> str:
    """The hash of everything the config check reads (see the module's docstring)."""
    parts = {
        "config": json.dumps(config, sort_keys=True, default=repr),
        "configfiles": [
            [f, hashlib.sha256(Path(f).read_bytes()).hexdigest() if os.path.isfile(f) else None]
            for f in configfiles
        ],
        "local": local,
        "host": _host(local),
        "results": _results_state(config),
        "datasets": [line for p in _dataset_paths(config) for line in _stats(p)],
        "source": _source_digest(SOURCE),
        "env": sorted((k, v) for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)),
        "cwd": os.getcwd(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _info(fields: Mapping) -> DatasetInfo:
    return DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def read_cached(path: str | os.PathLike, key: str) -> dict[str, DatasetInfo] | None:
    """The dataset infos of the check kept under ``key``; None where none is kept."""
    try:
        kept = json.loads(Path(path).read_text())
        if kept.get("key") != key:
            return None
        return {
            name: DatasetInfo(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in info.items()}
            )
            for name, info in kept["infos"].items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # no file, or one another version wrote: check again


def write_cached(path: str | os.PathLike, key: str, infos: Mapping[str, DatasetInfo]) -> None:
    """Keep a passed check's dataset infos under ``key`` (replacing what was kept)."""
    text = json.dumps({"key": key, "infos": {n: asdict(i) for n, i in infos.items()}})
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
