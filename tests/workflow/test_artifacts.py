"""Artifacts prove their origin, never appear half-written, and fail before the compute."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import yaml

from memorization.infra.files import STALE_PART_SECONDS, atomic_write, preflight
from memorization.workflow.artifacts import (
    ArtifactError,
    check_origin,
    open_artifact,
    write_artifact,
)
from memorization.workflow.provenance import provenance, slice_hash
from memorization.workflow.registry import STAGES
from memorization.workflow.stages.data import LABELS

SLICE = {"dataset": "digits", "corrupt": 10, "corruption": "uniform", "seed": 3}


def _labels(n=20):
    lab = np.arange(n) % 10
    return xr.Dataset(
        {
            "label": ("example", lab),
            "true_label": ("example", lab),
            "corrupted": ("example", np.zeros(n, bool)),
            "mislabeled": ("example", np.zeros(n, bool)),
        },
        coords={"example": np.arange(n)},
    )


CLASSES = [str(c) for c in range(10)]


def test_provenance_records_slice_hash_and_execution_settings(tmp_path):
    path = write_artifact(
        _labels(), tmp_path / "labels.nc", "labels", LABELS,
        provenance(SLICE, experiment="a", threads=3), CLASSES,
    )  # fmt: skip
    ds = open_artifact(path, "labels")
    assert ds.attrs["config_hash"] == slice_hash(SLICE)
    assert yaml.safe_load(ds.attrs["config"]) == SLICE
    assert ds.attrs["experiment"] == "a" and ds.attrs["threads"] == 3
    assert ds.attrs["device"] == "cpu" and ds.attrs["seed"] == 3
    # CF global attributes; the title names the experiment
    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds.attrs["title"] == f"{LABELS.title} (a)"
    # the code that ran: its folder, its commit (maybe "+dirty") and a hash of its source
    assert ds.attrs["code"].endswith("memorization") and ds.attrs["git_commit"]
    assert len(ds.attrs["source_hash"]) == 16
    # a yes/no variable: flag values and meanings, no units
    assert ds["mislabeled"].attrs["long_name"] == "label differs from the true label"
    assert ds["mislabeled"].attrs["flag_values"].tolist() == [0, 1]
    assert ds["mislabeled"].attrs["flag_meanings"] == "false true"
    assert "units" not in ds["mislabeled"].attrs
    # a class index: flag values and meanings from the dataset's class names
    assert ds["label"].attrs["flag_values"].tolist() == list(range(10))
    assert ds["label"].attrs["flag_meanings"] == " ".join(CLASSES)
    assert "units" not in ds["label"].attrs
    assert STAGES["labels"].schema is LABELS
    check_origin(ds, path, SLICE)  # made from this slice: accepted


def test_a_foreign_artifact_is_refused_naming_file_and_keys(tmp_path):
    path = write_artifact(_labels(), tmp_path / "labels.nc", "labels", LABELS, provenance(SLICE))
    ds = open_artifact(path, "labels")
    other = {**SLICE, "seed": 4, "corrupt": 0}
    with pytest.raises(ArtifactError) as err:
        check_origin(ds, path, other)
    message = str(err.value)
    assert str(path) in message and f"rm {path}" in message
    assert "corrupt: 10 in the file, 0 in this config" in message
    assert "seed: 3 in the file, 4 in this config" in message
    # a file without provenance (another tool, an older version) is refused too
    bare = tmp_path / "bare.nc"
    _labels().assign_attrs(kind="labels").to_netcdf(bare, engine="netcdf4")
    with pytest.raises(ArtifactError, match="no config hash"):
        check_origin(open_artifact(bare, "labels"), bare, SLICE)


def test_unreadable_and_wrong_kind_inputs_name_the_file_and_the_fix(tmp_path):
    path = write_artifact(_labels(), tmp_path / "labels.nc", "labels", LABELS, provenance(SLICE))
    with pytest.raises(ArtifactError, match=r"is a 'labels' artifact, expected 'scores'.*rm "):
        open_artifact(path, "scores")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(path.read_bytes()[:300])
    cannot = r"truncated\.nc cannot be read .*\(rm .*truncated\.nc\)"
    with pytest.raises(ArtifactError, match=cannot):
        open_artifact(truncated, "labels")
    with pytest.raises(FileNotFoundError):
        open_artifact(tmp_path / "missing.nc", "labels")


def test_every_variable_needs_long_name_and_units(tmp_path):
    ds = _labels().assign(extra=("example", np.zeros(20)))
    with pytest.raises(ValueError, match=r"without long_name/units: \['extra'\]"):
        write_artifact(ds, tmp_path / "x.nc", "labels", LABELS, provenance(SLICE))
    assert not list(tmp_path.iterdir())


def _dead_pid() -> int:
    """The process id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_atomic_write_removes_parts_left_by_killed_writes(tmp_path):
    target = tmp_path / "scores.nc"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        # parts of writers that are gone: removed
        stale = [tmp_path / f".scores.nc.{dead}.abc123.part"]
        # a part without a process id, a day old: removed
        old = tmp_path / ".scores.nc.zz.part"
        # a live writer's part (another --nolock run), a fresh part without a process id
        # and another artifact's part: kept
        kept = [tmp_path / f".scores.nc.{live.pid}.x1.part", tmp_path / ".scores.nc.fresh.part"]
        other = tmp_path / ".subsets.nc.q.part"
        for p in [*stale, old, *kept, other]:
            p.write_text("half")
        past = time.time() - STALE_PART_SECONDS - 60
        os.utime(old, (past, past))
        atomic_write(target, lambda tmp: open(tmp, "w").write("done"))
        assert target.read_text() == "done"
        assert not any(p.exists() for p in [*stale, old])
        assert all(p.exists() for p in [*kept, other])

        def boom(tmp):
            open(tmp, "w").write("partial")
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            atomic_write(target, boom)
        assert target.read_text() == "done"  # the finished file survives a failed rewrite
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [p.name for p in [*kept, other]] + ["scores.nc"]
        )
    finally:
        live.kill()
        live.wait()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_preflight_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    with pytest.raises(PermissionError, match="cannot write"):
        preflight(folder / "scores.nc")


def test_preflight_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    import tempfile

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError, match=r"cannot write .*scores\.nc \(Permission denied\)"):
        preflight(tmp_path / "scores.nc")


def test_preflight_refuses_a_full_disk(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(OSError, match="has 1 MiB free, but scores.nc needs about 100 MiB"):
        preflight(tmp_path / "scores.nc", 100 * 2**20)
    preflight(tmp_path / "scores.nc")  # nothing to estimate: only writability


def test_claims_json_is_written_atomically(tmp_path):
    from memorization.report.claims import Claim, write_claims

    write_claims(
        [Claim("fig2", "k", "s", "supported", "e")], tmp_path / "c.md", tmp_path / "c.json"
    )
    assert json.loads((tmp_path / "c.json").read_text())[0]["verdict"] == "supported"
    assert not list(tmp_path.glob(".*.part"))
