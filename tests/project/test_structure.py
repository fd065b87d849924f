"""The shape of the library: layers without import cycles, imports at the top, short
functions, and one vocabulary (the stage registry) that the rules and the profile follow."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from memorization.workflow.registry import STAGES, Named

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "memorization"
MAX_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, *, top_only: bool) -> list[tuple[str, int]]:
    """(imported module of this package, line) for every import of ``module``."""
    tree = ast.parse(MODULES[module].read_text())
    nodes = tree.body if top_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target
                     for a in node.names]  # fmt: skip
        else:
            continue
        out += [(n, node.lineno) for n in names if n in MODULES and n != module]
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_even_through_imports_inside_functions():
    edges = {m: {t for t, _ in _imports(m, top_only=False)} for m in MODULES}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for m in edges:
        edges[m] = {t for t in edges[m] if not (_is_package(t) and m.startswith(t + "."))}
    assert _cycles(edges) == []


def test_imports_inside_functions_say_why():
    """An import inside a function is for an optional or heavy dependency, with a comment."""
    unexplained = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    text = lines[inner.lineno - 1] + lines[inner.end_lineno - 1]
                    if "#" not in text:
                        unexplained.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert unexplained == []


def test_functions_are_short_or_say_why():
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = ast.get_docstring(node) or ""
                if length > MAX_LINES and "Long because" not in doc:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} {length}")
    assert long == []


#: the layers in their order: each imports only the layers before it (ARCHITECTURE.md)
LAYERS = ("infra", "data", "method", "studies", "trust", "workflow", "report")


def test_layers_keep_their_order():
    """Every layer imports only itself and the layers before it: the method knows nothing
    of the workflow, the workflow nothing of the report (which draws the workflow's
    artifacts), infrastructure nothing of any other layer."""
    wrong = []
    for module in MODULES:
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            continue
        allowed = LAYERS[: LAYERS.index(parts[1]) + 1]
        for target, line in _imports(module, top_only=False):
            layer = target.split(".")[1] if target.count(".") else None
            if target != "memorization" and layer not in allowed:
                wrong.append(f"{module}:{line} imports {target}")
    assert wrong == []


def test_every_module_is_in_a_layer_or_at_the_top():
    """A new top-level package would escape the layer order."""
    tops = {m.split(".")[1] for m in MODULES if m.count(".")}
    assert tops <= {*LAYERS, "api", "cli", "__main__"}, tops


def test_the_report_stages_the_registry_names_exist():
    """The registry names the report's stage functions (it never imports the report):
    each name resolves to a function of the report layer."""
    named = [s for s in STAGES.values() if isinstance(s.run, Named)]
    assert {s.name for s in named} == {"figure", "claims", "overview"}
    for record in named:
        function = record.run.resolve()
        assert callable(function) and function.__module__.startswith("memorization.report.")
        assert function.__name__ == record.name


def _rule_names() -> dict[str, str]:
    names = {}
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for name in re.findall(r"^rule (\w+):", path.read_text(), flags=re.M):
            names[name] = path.name
    return names


def test_every_rule_is_a_registered_stage_and_every_stage_has_a_rule():
    rules = _rule_names()
    assert set(rules) - {"all"} == set(STAGES)


def test_rule_inputs_are_named_by_the_stage_that_makes_them():
    """A rule's input names are stage names (the origin check finds their slices by them),
    except the figures' and the run-wide tables' inputs, which their modules name."""
    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, flags=re.M | re.S):
        block = re.search(r"    input:\n((?:        .*\n)+)", body)
        if block is None or "unpack(" in block.group(1):
            continue
        names = re.findall(r"^        (\w+)=", block.group(1), flags=re.M)
        assert set(names) <= set(STAGES), (rule, names)


def test_slurm_profile_lists_exactly_the_stages_that_train():
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    named = set(profile["set-resources"])
    assert named <= set(STAGES), f"the profile names unknown stages: {named - set(STAGES)}"
    assert named == {s.name for s in STAGES.values() if s.trains}


def test_every_stage_that_writes_netcdf_has_a_schema():
    for record in STAGES.values():
        if record.path.endswith(".nc"):
            assert record.schema is not None, record.name
        if record.trains:
            assert record.passes is not None, record.name
