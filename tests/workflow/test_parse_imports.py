"""The Snakefile's parse stays light: what ``Snakefile`` and ``rules/*.smk`` import pulls in
no drawing or fitting library, no torch and no xarray; an import by which a workflow or
report module on that path would pull one in fails here, naming the chain, to be made lazy
(imported inside the function that needs it, ``# heavy dependency``) or split into a light
declaration (options, specs, slices) and its heavy computation.

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

#: libraries the parse never imports, read by the jobs only: torch (seconds to import),
#: xarray and its pandas (most of a second)
HEAVY = ("torch", "xarray", "pandas")

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


def test_the_parse_loads_no_drawing_or_fitting_library_and_no_torch():
    loaded = _loaded_by_the_parse()
    assert "memorization" in loaded
    assert sorted(set(NEVER + HEAVY) & loaded) == []
    # the static map below sees what the interpreter loads (numpy is still loaded)
    assert "numpy" in loaded and heavy_edges(parse_path(), "numpy")


def test_no_import_pulls_torch_or_xarray_into_the_parse():
    reached = parse_path()
    for library in HEAVY:
        found = sorted(heavy_edges(reached, library))
        chains = [f"{_chain('memorization.' + m, reached)} imports {n}" for m, n in found]
        assert found == [], "make these imports lazy (# heavy dependency):\n" + "\n".join(chains)


def test_the_parse_reads_the_figures_declarations_not_their_drawings():
    """The figures' options and inputs are declared in the workflow; the report layer
    (the drawings, the claims) is loaded by the jobs that draw, never by the parse."""
    reached = parse_path()
    assert "memorization.workflow.figures" in reached
    assert [m for m in reached if m.startswith("memorization.report")] == []


def test_the_scan_finds_a_heavy_import_and_its_importer():
    # the config check fits a model (run by a job or once per changed config, not the parse)
    reached = {"memorization.workflow.check.model": None, "memorization.workflow.execution": None}
    edges = heavy_edges(reached)
    assert ("workflow.check.model", "torch") in edges
    assert not any(m == "workflow.execution" for m, _ in edges)
    assert pulls("memorization.method.models.mlp")  # nn.Module subclasses need torch
    assert pulls("memorization.method.scoring")
    assert not pulls("memorization.infra.options")


def test_the_declarations_import_no_torch_or_xarray():
    """What the config and the job graph read (the data package, the specs, the options,
    the forms, the stage modules' slices and schemas) imports torch and xarray only in
    the functions that compute."""
    light = [
        "memorization.data",
        "memorization.data.sources",
        "memorization.method.models",
        "memorization.method.models.spec",
        "memorization.method.optim",
        "memorization.method.forms",
        "memorization.studies.gradient_choices",
        "memorization.trust.oob_spec",
        "memorization.trust.peer_records",
        "memorization.trust.replicates",
        "memorization.workflow.provenance",
        "memorization.workflow.registry",
    ]
    assert [m for m in light if pulls(m) or pulls(m, "xarray")] == []
    code = "import sys\n" + "".join(f"import {m}\n" for m in light)
    code += "print(sorted({'torch', 'xarray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
