"""Artifacts prove their origin, never appear half-written, and fail before the compute."""

import json
import os

import numpy as np
import pytest
import xarray as xr
import yaml

from memorization.artifacts import (
    ArtifactError,
    atomic_write,
    check_origin,
    open_artifact,
    preflight,
    provenance,
    write_artifact,
)
from memorization.experiment import slice_hash

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


def test_provenance_records_slice_hash_and_execution_settings(tmp_path):
    path = write_artifact(
        _labels(), tmp_path / "labels.nc", "labels", provenance(SLICE, experiment="a", threads=3)
    )
    ds = open_artifact(path, "labels")
    assert ds.attrs["config_hash"] == slice_hash(SLICE)
    assert yaml.safe_load(ds.attrs["config"]) == SLICE
    assert ds.attrs["experiment"] == "a" and ds.attrs["threads"] == 3
    assert ds.attrs["device"] == "cpu" and ds.attrs["seed"] == 3
    assert ds["mislabeled"].attrs["long_name"] == "label differs from the true label"
    check_origin(ds, path, SLICE)  # made from this slice: accepted


def test_a_foreign_artifact_is_refused_naming_file_and_keys(tmp_path):
    path = write_artifact(_labels(), tmp_path / "labels.nc", "labels", provenance(SLICE))
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
    path = write_artifact(_labels(), tmp_path / "labels.nc", "labels", provenance(SLICE))
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
        write_artifact(ds, tmp_path / "x.nc", "labels", provenance(SLICE))
    assert not list(tmp_path.iterdir())


def test_atomic_write_removes_parts_left_by_killed_writes(tmp_path):
    target = tmp_path / "scores.nc"
    stale = [tmp_path / ".scores.nc.abc123.part", tmp_path / ".scores.nc.zz.part"]
    other = tmp_path / ".subsets.nc.q.part"  # another artifact's: not touched
    for p in [*stale, other]:
        p.write_text("half")
    atomic_write(target, lambda tmp: open(tmp, "w").write("done"))
    assert target.read_text() == "done"
    assert not any(p.exists() for p in stale) and other.exists()

    def boom(tmp):
        open(tmp, "w").write("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert target.read_text() == "done"  # the finished file survives a failed rewrite
    assert sorted(p.name for p in tmp_path.iterdir()) == [".subsets.nc.q.part", "scores.nc"]


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
    from memorization.claims import Claim, write_claims

    write_claims(
        [Claim("fig2", "k", "s", "supported", "e")], tmp_path / "c.md", tmp_path / "c.json"
    )
    assert json.loads((tmp_path / "c.json").read_text())[0]["verdict"] == "supported"
    assert not list(tmp_path.glob(".*.part"))
