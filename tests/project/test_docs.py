"""The README and the documentation site: short front page, no internal references, a nav
that lists every page, links that resolve, versions that agree, a worked example that runs.

Fast: no network and no workflow run. The strict site build runs only where mkdocs is
installed (``pip install -e '.[docs]'``, as ``.ci/run`` does)."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml

import memorization
from memorization.report.claims import README_END, README_START

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))

#: the README's two commands, each followed by the line where its measured time goes
COMMANDS = {
    "bin/setup && .venv/bin/snakemake --cores 2": "<!-- time: default -->",
    "bin/setup && .venv/bin/pytest": "<!-- time: tests -->",
}

#: what user-facing text must not say: internal issue numbers, the machine it was
#: written on, paths outside the repository
FORBIDDEN = {
    "an issue number": re.compile(r"\bissues?\s*#?\d+", re.I),
    "an issue reference": re.compile(r"(?<![\w&/#])#\d+\b"),
    "'this machine'": re.compile(r"\bthis machine\b", re.I),
    "a path outside the repository": re.compile(r"\.\./shared"),
}

SNIPPET = re.compile(r'^\s*-{1,}8<-{1,}\s+"([^"]+)"', re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _user_facing() -> list[Path]:
    files = [README, ROOT / "CHANGELOG.md", ROOT / "ARCHITECTURE.md", *_pages(), *EXAMPLES]
    files += sorted((ROOT / "config").glob("*.yaml"))
    files += sorted((ROOT / "config" / "examples").glob("*.yaml"))
    return files


def _prose(text: str) -> str:
    """Markdown without its fenced code blocks and inline code (links there are not links)."""
    text = re.sub(r"^(```|~~~).*?^\1\s*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _relative_links(path: Path) -> list[str]:
    out = []
    for target in LINK.findall(_prose(path.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the same page
        out.append(target.split("#", 1)[0])
    return out


class _MkdocsLoader(yaml.SafeLoader):
    """mkdocs.yml with its tags (``!relative``, ``!ENV``) read as plain values."""


_MkdocsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _nav_files(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    return []


def _mkdocs() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_MkdocsLoader)


# --- the README -------------------------------------------------------------------------


def test_the_readme_is_a_front_page_under_150_lines():
    lines = README.read_text().splitlines()
    assert len(lines) < 150, f"README.md has {len(lines)} lines: move detail into docs/"


@pytest.mark.parametrize("command", COMMANDS)
def test_the_readme_gives_each_command_with_the_line_for_its_time(command):
    lines = README.read_text().splitlines()
    at = [i for i, line in enumerate(lines) if command in line]
    assert at, f"README.md does not give the command {command!r}"
    marker = COMMANDS[command]
    timed = [i for i, line in enumerate(lines) if line.startswith(marker)]
    assert timed, f"README.md has no line starting with {marker!r}"
    assert any(0 < t - at[0] <= 2 for t in timed), (
        f"the line starting with {marker!r} should follow the block of {command!r}"
    )


def test_the_readme_has_the_claims_markers_once_in_order():
    text = README.read_text()
    assert text.count(README_START) == 1, README_START
    assert text.count(README_END) == 1, README_END
    assert text.index(README_START) < text.index(README_END)


# --- what user-facing text says -----------------------------------------------------------


@pytest.mark.parametrize("path", _user_facing(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_user_facing_text_has_no_internal_references(path):
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    assert not found, "internal references in user-facing text:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "text, bad",
    [("see issue 8", True), ("issues #12 and 13", True), ("fixed in #14.", True),
     ("on this machine", True), ("data_root=../shared/data", True), ("## 1. Install", False),
     ("&#123;", False), ("page.md#12-anchor", False), ("12 issues", False)],
)  # fmt: skip
def test_the_internal_reference_patterns(text, bad):
    assert any(p.search(text) for p in FORBIDDEN.values()) == bad


# --- the site -----------------------------------------------------------------------------


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_files(_mkdocs()["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in _pages()}
    assert len(nav) == len(set(nav)), f"pages listed twice in mkdocs.yml's nav: {nav}"
    assert not set(nav) - pages, f"nav entries without a page: {sorted(set(nav) - pages)}"
    assert not pages - set(nav), f"pages missing from mkdocs.yml's nav: {sorted(pages - set(nav))}"


def test_relative_links_point_to_files_that_exist():
    broken = []
    for path in [README, *_pages()]:
        for target in _relative_links(path):
            resolved = (path.parent / target).resolve()
            if not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif path.is_relative_to(DOCS) and not resolved.is_relative_to(DOCS.resolve()):
                broken.append(
                    f"{path.relative_to(ROOT)}: {target} (outside docs/: not in the site)"
                )
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_included_files_exist_and_have_no_relative_links():
    """Files the pages include (``--8<--``) are rendered from the page's folder too, so a
    relative link in them would resolve differently on the site."""
    included = [(page, rel) for page in _pages() for rel in SNIPPET.findall(page.read_text())]
    assert included, "no page includes ARCHITECTURE.md, CHANGELOG.md or the worked example"
    for page, rel in included:
        target = ROOT / rel
        assert target.is_file(), f"{page.relative_to(ROOT)} includes {rel}, which does not exist"
        if target.suffix == ".md":
            assert not _relative_links(target), f"{rel} (included) has relative links"
    names = {rel for _, rel in included}
    assert {"ARCHITECTURE.md", "CHANGELOG.md"} <= names, names


#: a line that is meant as an include (``--8<--``), however a formatter spaced it
_INCLUDE_LIKE = re.compile(r"^\s*-+\s*8\s*<\s*-+", re.M)


def test_every_include_line_is_one_the_site_renders():
    """An include line the snippets extension does not recognise (``--8 < --"file"``, as
    a Markdown formatter rewrites it) is shown literally, and ``mkdocs build --strict``
    passes anyway: this test fails instead."""
    broken = []
    for page in _pages():
        for line in _INCLUDE_LIKE.finditer(page.read_text()):
            text = page.read_text()[line.start() :].splitlines()[0]
            if not SNIPPET.match(text) or not re.fullmatch(r'\s*--8<-- "[^"]+"\s*', text):
                broken.append(f"{page.relative_to(ROOT)}: {text.strip()!r}")
    assert not broken, 'include lines rendered literally (write --8<-- "path"):\n' + (
        "\n".join(broken)
    )
    assert _INCLUDE_LIKE.match('--8 < --"docs/examples/most_memorized.py"')


def test_the_changelog_version_is_the_package_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", text, flags=re.M)
    assert versions, "CHANGELOG.md has no '## [x.y.z]' section"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert versions[0] == memorization.__version__ == project["version"]
    assert str(citation["version"]) == versions[0]


# --- the worked example -------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_docs_examples_compile(example, tmp_path):
    py_compile.compile(str(example), cfile=str(tmp_path / "x.pyc"), doraise=True)


def _tiny_results(folder: Path) -> None:
    """A results folder with a dataset artifact and one experiment's scores, as the
    workflow lays them out (only the variables the worked example reads)."""
    import xarray as xr

    rng = np.random.default_rng(0)
    n, n_train = 12, 9
    examples = np.arange(100, 100 + n)
    data = xr.Dataset(
        {
            "image": (("example", "channel", "height", "width"),
                      rng.integers(0, 256, (n, 1, 6, 6), dtype=np.uint8)),
            "label": ("example", np.arange(n) % 3),
            "split": ("example", np.array(["train"] * n_train + ["test"] * (n - n_train))),
            "class_name": ("class", np.array(["a", "b", "c"])),
        },
        coords={"example": examples, "class": np.arange(3)},
    )  # fmt: skip
    memorized = np.linspace(0.0, 2.0, n_train)
    labels = np.arange(n_train) % 3
    true = labels.copy()
    true[-1] = (true[-1] + 1) % 3  # the most memorized example carries a wrong label
    scores = xr.Dataset(
        {
            "memorization": ("example", memorized.astype(np.float32)),
            "label": ("example", labels),
            "true_label": ("example", true),
            "mislabeled": ("example", labels != true),
        },
        coords={"example": examples[:n_train]},
        attrs={"config": yaml.safe_dump({"dataset": {"name": "tiny", "source": "arrays"}})},
    )
    (folder / "data").mkdir(parents=True)
    (folder / "exp").mkdir()
    data.to_netcdf(folder / "data" / "tiny.nc", engine="netcdf4")
    scores.to_netcdf(folder / "exp" / "scores.nc", engine="netcdf4")


def test_the_worked_example_runs_on_a_results_folder(tmp_path):
    example = DOCS / "examples" / "most_memorized.py"
    _tiny_results(tmp_path / "results")
    out = tmp_path / "top.png"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    res = subprocess.run(
        [sys.executable, str(example), str(tmp_path / "results"), "exp", str(out), "-n", "4"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.stat().st_size > 1000
    rows = [line.split() for line in res.stdout.splitlines() if line[:3].strip().isdigit()]
    assert [int(r[0]) for r in rows] == [108, 107, 106, 105], res.stdout  # highest first
    assert "1 of the 4 carry a label drawn at random" in res.stdout


# --- the strict build ---------------------------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs-material is not installed (pip install -e '.[docs]')",
)
def test_the_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
         "--config-file", str(ROOT / "mkdocs.yml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-5000:]
    assert (site / "index.html").is_file()
    assert "stage registry" in (site / "architecture" / "index.html").read_text()
    assert memorization.__version__ in (site / "changelog" / "index.html").read_text()


# --- the option reference (generated) ---------------------------------------------------


# --- the reference ----------------------------------------------------------------------------


def test_reference_is_what_the_generator_writes():
    from memorization.workflow.reference import render

    assert (DOCS / "reference.md").read_text() == render(), (
        "docs/reference.md is out of date: run .venv/bin/memorization generate"
    )


def test_reference_lists_every_option():
    from memorization.data.sources import SOURCES
    from memorization.method.models import MODELS
    from memorization.method.models.external import OPTIONS as EXTERNAL
    from memorization.workflow.config import WORKFLOW_OPTIONS
    from memorization.workflow.figures import FIGURES
    from memorization.workflow.specs import EXPERIMENT_OPTIONS, TRUTH_OPTIONS

    text = (DOCS / "reference.md").read_text()
    keys = [*WORKFLOW_OPTIONS, *EXPERIMENT_OPTIONS, *TRUTH_OPTIONS, *EXTERNAL]
    keys += [k for m in MODELS.values() for k in m.options]
    keys += [k for s in SOURCES.values() for k in s.OPTIONS]
    keys += [k for f in FIGURES.values() for k in f.options]
    missing = sorted({k for k in keys if f"| `{k}` |" not in text})
    assert not missing, f"docs/reference.md has no row for {missing}"
    headings = [f"`model: {m}`" for m in MODELS] + [f"`{f}`:" for f in FIGURES]
    headings += [f"`source: {s}`" for s, m in SOURCES.items() if m.OPTIONS]
    assert not [h for h in headings if f"### {h}" not in text]
