"""The Snakefile's parse stays light: what ``Snakefile`` and ``rules/*.smk`` import pulls in
no drawing or fitting library, and each import by which a workflow or report module on that
path still pulls torch in is listed here, to be made lazy (a new one fails; the goal is none).

A no-op ``snakemake`` rerun pays for every import of the parse; torch alone costs seconds.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

#: never imported by the parse (the figures draw, the check fits, in jobs only)
NEVER = ("matplotlib", "scipy", "sklearn", "timm", "torchvision", "backpack")

#: modules of the workflow layer freed of torch and xarray at their top: the parse may
#: import them (the rules' glue, the execution settings, the stage context, the resources)
FREED = (
    "memorization.workflow.execution",
    "memorization.workflow.context",
    "memorization.workflow.resources",
)

#: (workflow or report module on the parse path, what it imports at its top that imports
#: torch): each to make lazy, or to split into a light declaration (options, specs,
#: slices) and its heavy computation. A package's ``__init__`` that imports its heavy
#: modules (``memorization.data``) makes every import of a module inside it heavy.
KNOWN = {
    ("report.claims", "trust.replicates"),
    ("report.overview", "trust.replicates"),
    ("report.top", "method.scoring"),
    ("report.top", "trust.replicates"),
    ("workflow.check_cache", "data"),
    ("workflow.config", "data.sources"),
    ("workflow.gate", "data.sources.builtin"),
    ("workflow.provenance", "method.checkpoint"),
    ("workflow.provenance", "torch"),
    ("workflow.slices", "data"),
    ("workflow.slices", "method.models.spec"),
    ("workflow.slices", "method.optim"),
    ("workflow.specs", "data.sources"),
    ("workflow.specs", "method.models.spec"),
    ("workflow.specs", "method.optim"),
    ("workflow.specs", "method.scoring"),
    ("workflow.specs", "studies.gradient_statistics"),
    ("workflow.specs", "studies.gradstats"),
    ("workflow.specs", "trust.oob"),
    ("workflow.stages.common", "data.preprocess"),
    ("workflow.stages.common", "data.tensors"),
    ("workflow.stages.common", "method.checkpoint"),
    ("workflow.stages.common", "method.models.external"),
    ("workflow.stages.common", "method.models.spec"),
    ("workflow.stages.common", "torch"),
    ("workflow.stages.common", "trust.replicates"),
    ("workflow.stages.data", "data.fingerprint"),
    ("workflow.stages.data", "data.lazy"),
    ("workflow.stages.data", "data.prepare"),
    ("workflow.stages.estimates", "method.scoring"),
    ("workflow.stages.estimates", "trust.oob"),
    ("workflow.stages.estimates", "trust.peers"),
    ("workflow.stages.oob", "data"),
    ("workflow.stages.oob", "method.models.spec"),
    ("workflow.stages.oob", "method.optim"),
    ("workflow.stages.oob", "trust.oob"),
    ("workflow.stages.scores", "method.checkpoint"),
    ("workflow.stages.scores", "method.scoring"),
    ("workflow.stages.scores", "method.turnover"),
    ("workflow.stages.scores", "torch"),
    ("workflow.stages.scores", "trust.oob"),
    ("workflow.stages.scores", "trust.replicates"),
    ("workflow.stages.studies", "data.tensors"),
    ("workflow.stages.studies", "studies.crosstrain"),
    ("workflow.stages.studies", "studies.dynamics"),
    ("workflow.stages.studies", "studies.gradient_statistics"),
    ("workflow.stages.studies", "torch"),
    ("workflow.stages.trust", "method.scoring"),
    ("workflow.stages.trust", "trust.influence"),
    ("workflow.stages.trust", "trust.peers"),
    ("workflow.stages.trust", "trust.truth"),
    ("workflow.stages.trust", "trust.validation"),
    ("workflow.watch", "data.fingerprint"),
}

#: the layers the Snakefile's glue lives in
_GLUE = ("memorization.workflow", "memorization.report")


def parse_roots() -> list[str]:
    """The library modules the Snakefile and its rules import while Snakemake parses them."""
    names = []
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        for line in path.read_text().splitlines():
            found = re.match(r"^(?:from|import)\s+(memorization[\w.]*)", line)
            if found and found.group(1) not in names:
                names.append(found.group(1))
    return names


def _file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.exists():
            return path
    return None


def top_imports(module: str) -> set[str]:
    """Every module ``module`` imports when it is imported (its top level, ``if`` and
    ``try`` blocks; not ``if TYPE_CHECKING``, not inside functions), with its parents."""
    path = _file(module)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = node.module or ""
                if node.level:
                    target = ".".join(base + ([node.module] if node.module else []))
                found.add(target)
                found.update(
                    f"{target}.{a.name}" for a in node.names if _file(f"{target}.{a.name}")
                )
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                visit(node.orelse)
                visit(node.finalbody)
                for handler in node.handlers:
                    visit(handler.body)

    visit(ast.parse(path.read_text()).body)
    parts = {".".join(n.split(".")[:k]) for n in found for k in range(1, n.count(".") + 2)}
    return parts - {module}


def parse_path() -> dict[str, str | None]:
    """Every library module the parse imports -> the module that imported it first."""
    reached: dict[str, str | None] = {}
    todo = deque()
    for root in parse_roots():
        for k in range(1, root.count(".") + 2):
            name = ".".join(root.split(".")[:k])
            if name not in reached:
                reached[name] = None
                todo.append(name)
    while todo:
        module = todo.popleft()
        for name in sorted(top_imports(module)):
            if name.startswith("memorization") and _file(name) and name not in reached:
                reached[name] = module
                todo.append(name)
    return reached


def _library(name: str) -> bool:
    return name.startswith("memorization.") and _file(name) is not None


def pulls(module: str, library: str = "torch") -> bool:
    """Whether importing ``module`` imports ``library`` (through its top-level imports)."""
    seen, todo = {module}, [module]
    while todo:
        for name in top_imports(todo.pop()):
            if name.split(".")[0] == library:
                return True
            if _library(name) and name not in seen:
                seen.add(name)
                todo.append(name)
    return False


def heavy_edges(reached, library: str = "torch") -> set[tuple[str, str]]:
    """(glue module, what it imports that pulls ``library`` in), names without the
    package's: the library itself, or the deepest heavy library module it names."""
    out = set()
    for module in reached:
        if not module.startswith(_GLUE):
            continue
        names = top_imports(module)
        heavy = {n for n in names if _library(n) and not n.startswith(_GLUE) and pulls(n, library)}
        heavy = {n for n in heavy if not any(o.startswith(n + ".") for o in heavy)}
        heavy |= {library} if any(n.split(".")[0] == library for n in names) else set()
        out |= {
            (module.removeprefix("memorization."), n.removeprefix("memorization.")) for n in heavy
        }
    return out


def _chain(module: str, reached) -> str:
    chain = [module]
    while reached[chain[-1]]:
        chain.append(reached[chain[-1]])
    return " <- ".join(chain)


def _loaded_by_the_parse() -> set[str]:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in parse_roots())
        + "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


def test_the_parse_imports_the_snakefiles_library():
    roots = parse_roots()
    assert "memorization.workflow.snakemake" in roots and len(roots) >= 5
    reached = parse_path()
    assert "memorization.workflow.registry" in reached


def test_the_parse_loads_no_drawing_or_fitting_library_and_agrees_with_the_map():
    loaded = _loaded_by_the_parse()
    assert "memorization" in loaded
    assert sorted(set(NEVER) & loaded) == []
    # the static map below sees what the interpreter loads
    assert ("torch" in loaded) == bool(heavy_edges(parse_path()))


def test_no_new_import_pulls_torch_into_the_parse():
    reached = parse_path()
    new = sorted(heavy_edges(reached) - KNOWN)
    chains = [f"{_chain('memorization.' + m, reached)} imports {n}" for m, n in new]
    assert new == [], "make these imports lazy (# heavy dependency):\n" + "\n".join(chains)


def test_the_scan_finds_a_heavy_import_and_its_importer():
    reached = {"memorization.workflow.provenance": None, "memorization.workflow.execution": None}
    edges = heavy_edges(reached)
    assert ("workflow.provenance", "torch") in edges
    assert not any(m == "workflow.execution" for m, _ in edges)
    assert pulls("memorization.method.models.mlp")  # nn.Module subclasses need torch
    assert not pulls("memorization.infra.options")


def test_the_freed_workflow_modules_import_no_heavy_library():
    for module in FREED:
        heavy = {m for m in top_imports(module) if m.split(".")[0] in ("torch", "xarray")}
        assert heavy == set(), module
    code = "import sys\n" + "".join(f"import {m}\n" for m in FREED)
    code += "print(sorted({'torch', 'xarray', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_map_reads_lazy_imports_as_lazy():
    # a function-level or TYPE_CHECKING import is not an import of the module
    assert "torch" not in top_imports("memorization.workflow.context")
    assert "memorization.workflow.execution" in top_imports("memorization.workflow.context")
    assert "memorization.workflow.check" not in top_imports("memorization.workflow.gate")
