"""Two everyday changes of ARCHITECTURE.md, applied to a copy of the workflow: a dataset
source touches four files (its module, one line in SOURCES and the two generated files),
a changed default one file (and the two generated ones), and each is then seen
everywhere it is read: the config check, the typed config, the schema and the reference."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import changed_files

ROOT = Path(__file__).resolve().parents[2]
#: what `memorization generate` reads and writes, and what a change touches
PARTS = ("src", "config", "docs")
GENERATED = {"config/schema/config.schema.yaml", "docs/reference.md"}

SOURCE = '''\
"""``source: stripes``: images of horizontal stripes, one class per stripe position."""

import numpy as np

from ...infra.options import Option
from ..spec import DatasetInfo, DatasetSpec, RawData

OPTIONS = {
    "per_class": Option(20, "images of each class", {"type": "integer", "minimum": 2}),
}
CLASSES = tuple(str(k) for k in range(4))


def info(spec: DatasetSpec, data_root="data") -> DatasetInfo:
    n = spec.options["per_class"] * len(CLASSES)
    return DatasetInfo(n - n // 4, n // 4, (1, 8, 8), CLASSES, "stripes")


def load(spec: DatasetSpec, data_root="data", download=False) -> RawData:
    n = spec.options["per_class"] * len(CLASSES)
    labels = np.arange(n) % len(CLASSES)
    images = np.zeros((n, 1, 8, 8), np.uint8)
    for i, k in enumerate(labels):
        images[i, 0, 2 * k : 2 * k + 2] = 200 + i % 50
    return RawData(labels=labels, is_test=np.arange(n) >= n - n // 4, ids=np.arange(n),
                   classes=CLASSES, source="stripes", images=images)
'''


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "workflow"
    for part in PARTS:
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Snakefile", copy / "Snakefile")
    return copy


def _changed(copy: Path) -> set[str]:
    return changed_files(copy, ROOT, PARTS)


def _run(copy: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    return subprocess.run(
        [sys.executable, *args], cwd=copy, capture_output=True, text=True, env=env, timeout=300
    )


def _generate(copy: Path) -> None:
    res = _run(copy, "-m", "memorization", "generate")
    assert res.returncode == 0, res.stderr[-3000:]


def test_a_dataset_source_is_one_module_one_line_and_the_generated_files(tmp_path):
    copy = _copy(tmp_path)
    sources = copy / "src/memorization/data/sources"
    (sources / "stripes.py").write_text(SOURCE)
    init = sources / "__init__.py"
    text = init.read_text()
    text = text.replace(
        "from . import arrays,", "from . import stripes  # noqa: I001\nfrom . import arrays,"
    )
    text = text.replace(
        '    "arrays": arrays,\n', '    "arrays": arrays,\n    "stripes": stripes,\n'
    )
    init.write_text(text)
    _generate(copy)
    assert _changed(copy) == {
        "src/memorization/data/sources/stripes.py",
        "src/memorization/data/sources/__init__.py",
        *GENERATED,
    }
    assert "`source: stripes`" in (copy / "docs/reference.md").read_text()
    config = copy / "stripes.yaml"
    config.write_text(textwrap.dedent("""\
        results: results
        datasets:
          s: {source: stripes, per_class: 30}
        experiments:
          e: {dataset: s, model: mlp, hidden: 32, seed: 0, epochs: 1, lr: 0.1, batch_size: 16}
        """))  # fmt: skip
    res = _run(copy, "-m", "memorization", "check", str(config))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    script = textwrap.dedent("""\
        import yaml
        from memorization.workflow.config import WorkflowConfig
        from memorization.data.sources import dataset_info, load_dataset
        w = WorkflowConfig.from_config(yaml.safe_load(open("stripes.yaml")))
        spec = w.experiments["e"].dataset
        info = dataset_info(spec)
        raw = load_dataset(spec)
        assert (info.n_train, info.n_test, spec.source) == (90, 30, "stripes"), info
        assert raw.images.shape == (120, 1, 8, 8) and raw.is_test.sum() == 30
        print("ok")
        """)  # fmt: skip
    res = _run(copy, "-c", script)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]
    # a typo in the new source's option is refused by the schema, as for the others
    config.write_text(config.read_text().replace("per_class", "per_clas"))
    res = _run(copy, "-m", "memorization", "check", str(config))
    assert res.returncode == 1 and "per_clas" in res.stdout + res.stderr


def test_a_default_is_changed_in_one_place(tmp_path):
    copy = _copy(tmp_path)
    execution = copy / "src/memorization/workflow/execution.py"
    text = execution.read_text()
    declared = '    "checkpoint_every": Option(\n        5,\n'
    assert text.count(declared) == 1
    execution.write_text(text.replace(declared, declared.replace("5,", "7,")))
    _generate(copy)
    assert _changed(copy) == {"src/memorization/workflow/execution.py", *GENERATED}
    script = textwrap.dedent("""\
        from memorization.workflow.config import WorkflowConfig
        from memorization.workflow.execution import Execution
        from memorization.workflow.schema import schema
        config = {"experiments": {"e": {"dataset": "digits", "model": "mlp", "seed": 0,
                  "epochs": 1, "lr": 0.1, "batch_size": 16}}}
        assert WorkflowConfig.from_config(config).execution.checkpoint_every == 7
        assert Execution().checkpoint_every == 7
        assert schema()["properties"]["checkpoint_every"]["default"] == 7
        print("ok")
        """)  # fmt: skip
    res = _run(copy, "-c", script)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]
    assert "| `checkpoint_every` | `7` |" in (copy / "docs/reference.md").read_text()
