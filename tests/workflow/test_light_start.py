"""A light start: a passed config check is kept and not redone while nothing it reads
changed, and the figures' metadata loads without the drawing libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import memorization.workflow.check as check_module
from memorization.data.spec import DatasetInfo
from memorization.workflow import check_cache
from memorization.workflow.gate import check_before_jobs

ROOT = Path(__file__).resolve().parents[2]
INFO = DatasetInfo(8, 2, (1, 4, 4), ("a", "b"), "arrays x.npz", (4, 4))


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """The check replaced by one that counts its calls and returns ``result[0]``."""
    calls = []
    result = [([], {"toy": INFO})]

    def check(config, *, local=False):
        calls.append(dict(config))
        return result[0]

    monkeypatch.setattr(check_module, "check", check)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.npz").write_bytes(b"12345")
    (tmp_path / "config.yaml").write_text("results: results\nseed: 1\n")
    return calls, result


def _gate(config, **kw):
    return check_before_jobs(
        config, configfiles=["config.yaml"], local=False, argv=["snakemake"],
        cache=".snakemake/memorization/check.json", **kw,
    )  # fmt: skip


def test_a_passed_check_is_kept_and_not_redone(counted):
    calls, _ = counted
    first = _gate({"seed": 1})
    second = _gate({"seed": 1})
    assert first == second == {"toy": INFO}
    assert isinstance(second["toy"].shape, tuple) and second["toy"].train_class_counts == (4, 4)
    assert len(calls) == 1


def test_without_a_cache_the_check_always_runs(counted):
    calls, _ = counted
    for _ in range(2):
        check_before_jobs({"seed": 1}, configfiles=["config.yaml"], local=False, argv=["x"])
    assert len(calls) == 2


@pytest.mark.parametrize("change", ["config", "configfile", "dataset", "env", "local"])
def test_any_change_checks_again(counted, monkeypatch, change):
    calls, _ = counted
    _gate({"seed": 1})
    config = {"seed": 1}
    kw = {}
    if change == "config":
        config = {"seed": 2}
    elif change == "configfile":
        Path("config.yaml").write_text("results: results\nseed: 2\n")
    elif change == "dataset":
        config = {"seed": 1, "experiments": {"e": {"dataset": "mnist"}}}
        _gate(config)
        os.utime("data/x.npz", ns=(1, 1))
    elif change == "env":
        monkeypatch.setenv("HF_DATASETS_CACHE", "/elsewhere")
    if change == "local":
        check_before_jobs(config, configfiles=["config.yaml"], local=True, argv=["x"],
                          cache=".snakemake/memorization/check.json")  # fmt: skip
    else:
        _gate(config, **kw)
    assert len(calls) == (3 if change == "dataset" else 2)


def test_a_dataset_named_outside_data_root_is_watched(counted, tmp_path):
    calls, _ = counted
    outside = tmp_path / "elsewhere.npz"
    outside.write_bytes(b"1")
    config = {"datasets": {"toy": {"source": "arrays", "path": str(outside)}}}
    _gate(config)
    _gate(config)
    outside.write_bytes(b"22")
    _gate(config)
    assert len(calls) == 2


def test_a_changed_library_source_checks_again(counted, monkeypatch, tmp_path):
    calls, _ = counted
    library = tmp_path / "lib"
    library.mkdir()
    (library / "a.py").write_text("X = 1\n")
    monkeypatch.setattr(check_cache, "SOURCE", library)
    _gate({"seed": 1})
    _gate({"seed": 1})
    (library / "a.py").write_text("X = 2\n")
    _gate({"seed": 1})
    assert len(calls) == 2


def test_a_check_with_problems_is_never_kept(counted, capsys):
    calls, result = counted
    result[0] = (["experiments.x: wrong"], {})
    for _ in range(2):
        with pytest.raises(SystemExit):
            _gate({"seed": 1})
    assert len(calls) == 2
    assert "experiments.x: wrong" in capsys.readouterr().err
    assert not Path(".snakemake/memorization/check.json").exists()


def test_a_kept_file_of_another_form_is_ignored(counted):
    calls, _ = counted
    path = Path(".snakemake/memorization/check.json")
    path.parent.mkdir(parents=True)
    key = check_cache.check_key({"seed": 1}, ["config.yaml"], local=False)
    path.write_text(json.dumps({"key": key, "infos": {"toy": {"n_train": 1}}}))
    assert _gate({"seed": 1}) == {"toy": INFO}
    assert len(calls) == 1


def test_the_real_check_of_the_default_config_is_kept(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()  # the library's source, fixed while others edit theirs
    monkeypatch.setattr(check_cache, "SOURCE", tmp_path / "lib")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cache = str(tmp_path / "check.json")
    first = check_before_jobs(config, local=False, argv=["x"], cache=cache)
    monkeypatch.setattr(check_module, "check", lambda *a, **k: pytest.fail("checked again"))
    assert check_before_jobs(config, local=False, argv=["x"], cache=cache) == first
    assert first and all(isinstance(i, DatasetInfo) for i in first.values())


def test_figure_metadata_loads_without_matplotlib():
    code = (
        "import sys; from memorization.report.figures import FIGURES; "
        "names = [(f.name, f.heading, f.caption, f.needs({})) for f in FIGURES.values()]; "
        "print(len(names), 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, loaded = out.stdout.split()
    assert int(count) >= 10 and loaded == "False"


def test_a_results_folder_made_unwritable_checks_again(counted):
    calls, _ = counted
    Path("res").mkdir()
    config = {"results": "res/sub"}
    _gate(config)
    _gate(config)
    Path("res").chmod(0o555)
    try:
        _gate(config)
    finally:
        Path("res").chmod(0o755)
    assert len(calls) == 2
