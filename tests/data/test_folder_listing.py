"""An image folder is walked once per process while its folders are unchanged; its files'
sizes and times are read afresh at every call, so a changed file is always seen."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from memorization.data import fingerprint as fp
from memorization.data import folder_listing
from memorization.data.sources import image_folder
from memorization.data.spec import DatasetSpec

OLD_NS = 1_600_000_000 * 10**9  # long before any walk: the folders' times are trusted


def _png(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(path)


def _tree(root: Path) -> Path:
    for k, name in enumerate(("bird", "cat")):
        for i in range(3):
            _png(root / "train" / name / f"{i}.png", 10 * i + k)
        _png(root / "test" / name / "0.png", 99)
    _age(root)
    return root


def _age(root: Path) -> None:
    for folder, _, _ in os.walk(root):
        os.utime(folder, ns=(OLD_NS, OLD_NS))


@pytest.fixture
def walks(monkeypatch):
    """How many folders were listed (``os.scandir``) or walked (``os.walk``) so far."""
    count = {"n": 0}
    scandir, walk = os.scandir, os.walk

    def counted(real):
        def wrapper(*args, **kwargs):
            count["n"] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(os, "scandir", counted(scandir))
    monkeypatch.setattr(os, "walk", counted(walk))
    return count


def _both(spec: DatasetSpec):
    return fp.fingerprint(spec), image_folder.scan(spec.options["path"])[0].tolist()


def test_a_second_call_does_not_walk_the_folder_again(tmp_path, walks):
    root = _tree(tmp_path / "images")
    spec = DatasetSpec("pics", "image_folder", {"path": str(root)})
    first = _both(spec)
    assert walks["n"] > 0
    walks["n"] = 0
    assert _both(spec) == first  # the parse, then the job: before, reading, after
    assert _both(spec) == first
    assert walks["n"] == 0


def test_a_changed_file_is_still_seen(tmp_path, walks):
    root = _tree(tmp_path / "images")
    spec = DatasetSpec("pics", "image_folder", {"path": str(root)})
    before, paths = _both(spec)
    walks["n"] = 0
    edited = root / "train/cat/1.png"
    _png(edited, 200)  # rewritten in place: its folder's time is not changed
    os.utime(root / "train/cat", ns=(OLD_NS, OLD_NS))
    rewritten = fp.fingerprint(spec)
    assert rewritten != before
    assert walks["n"] == 0  # seen by its size and time, without a walk
    os.utime(edited, ns=(OLD_NS, OLD_NS))  # touched: only the time differs
    touched = fp.fingerprint(spec)
    assert touched not in (before, rewritten) and walks["n"] == 0
    # a new file changes its folder's time: walked again, the file found
    _png(root / "train/cat/7.png", 3)
    now, more = _both(spec)
    assert walks["n"] > 0 and now != touched
    assert more == sorted([*paths, "train/cat/7.png"])


def test_a_folder_changed_just_before_its_walk_is_walked_again(tmp_path, walks):
    root = tmp_path / "images"
    _tree(root)
    os.utime(root / "train/bird", None)  # now: a change in the same clock tick is possible
    folder_listing.listing(root)
    walks["n"] = 0
    folder_listing.listing(root)
    assert walks["n"] > 0


def test_the_listing_finds_what_a_fresh_walk_finds(tmp_path):
    root = _tree(tmp_path / "images")
    _png(root / "train/cat/deeper/5.png", 7)
    _png(root / "train/cat/.hidden/6.png", 7)
    _png(root / "train/bird/.8.png", 7)
    (root / "train/bird/notes.txt").write_text("not an image")
    _png(tmp_path / "elsewhere/9.png", 7)
    (root / "train/bird/linked").symlink_to(tmp_path / "elsewhere")
    expected = sorted(
        Path(d, f).relative_to(root).as_posix()
        for tree in ("train", "test")
        for name in ("bird", "cat")
        for d, dirs, files in os.walk(root / tree / name)
        if not any(p.startswith(".") for p in Path(d).relative_to(root).parts)
        for f in files
        if f.endswith(".png") and not f.startswith(".")
    )
    assert "train/cat/deeper/5.png" in expected and "train/bird/linked/9.png" not in expected
    assert image_folder.scan(root)[0].tolist() == expected
    # the fingerprint's manifest: every image file and folder, as it always was
    assert folder_listing.manifest(root, fp._is_image) == fp.folder_manifest(root, fp._is_image)
