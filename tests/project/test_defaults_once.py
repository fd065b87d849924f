"""A default is written once: the declared default of a key option does not reappear as a
literal next to the option's name elsewhere in the library (a parameter default, a keyword
argument, ``config.get("name", value)`` or a dataclass field)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

from memorization import api
from memorization.method.optim import OptimSpec
from memorization.trust.metrics import MEMORIZED, REPLICATES_COMPARED
from memorization.trust.truth_spec import TRUTH_OPTIONS
from memorization.workflow.config import WORKFLOW_OPTIONS
from memorization.workflow.execution import EXECUTION_OPTIONS, Execution

SRC = Path(__file__).resolve().parents[2] / "src" / "memorization"

#: key option -> (its declared default, where it is declared: that place is not a duplicate)
DECLARED = {
    "batch_size": (OptimSpec.batch_size, ("method/optim.py", "OptimSpec")),
    "checkpoint_every": (WORKFLOW_OPTIONS["checkpoint_every"].default, ("", "")),
    "threshold": (MEMORIZED, ("", "")),
    "replicates": (REPLICATES_COMPARED, ("", "")),
    "models": (TRUTH_OPTIONS["models"].default, ("", "")),
    "shards": (TRUTH_OPTIONS["shards"].default, ("", "")),
    "fraction": (TRUTH_OPTIONS["fraction"].default, ("", "")),
}

#: duplicates still to remove, each with why it is still there; a new one fails the test
KNOWN: set[tuple[str, str]] = set()


def _literal(node):
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
    return tuple(value) if isinstance(value, list) else value


def _named_values(node) -> list[tuple[str, ast.AST]]:
    """(name, value node) of every default, keyword, ``.get(name, value)`` or field."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        a = node.args
        defaulted = (a.posonlyargs + a.args)[len(a.posonlyargs + a.args) - len(a.defaults) :]
        out = list(zip([x.arg for x in defaulted], a.defaults, strict=True))
        pairs = zip(a.kwonlyargs, a.kw_defaults, strict=True)
        return out + [(x.arg, d) for x, d in pairs if d is not None]
    if isinstance(node, ast.Call):
        out = [(k.arg, k.value) for k in node.keywords if k.arg]
        first = node.args[0] if node.args else None
        if isinstance(node.func, ast.Attribute) and node.func.attr == "get" and len(node.args) == 2:
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                out.append((first.value, node.args[1]))
        return out
    if isinstance(node, ast.ClassDef):
        return [
            (s.target.id, s.value)
            for s in node.body
            if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value
        ]
    return []


def duplicates(source: str, module: str) -> list[tuple[str, str, int]]:
    """(module, option, line) of every literal copy of a key option's declared default."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for name, value in _named_values(node):
            if name not in DECLARED:
                continue
            default, (home, owner) = DECLARED[name]
            if module == home and owner and getattr(node, "name", "") == owner:
                continue
            literal = _literal(value)
            if type(literal) in (int, float, tuple) and literal == default:
                found.append((module, name, value.lineno))
    return sorted(found, key=lambda f: (f[2], f[1]))


def test_no_key_default_is_written_twice():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += duplicates(path.read_text(), str(path.relative_to(SRC)))
    new = [f"{m}:{line} {name}" for m, name, line in found if (m, name) not in KNOWN]
    assert new == [], "declared once, read everywhere: use the declaration"


def test_the_scan_finds_each_form_of_copy():
    source = (
        "def f(batch_size=256, *, threshold=0.25): ...\n"
        "g(checkpoint_every=5)\n"
        "config.get('threshold', 0.25)\n"
        "class Spec:\n    batch_size: int = 256\n"
        "h(batch_size=128, threshold=MEMORIZED)\n"
    )
    found = duplicates(source, "x.py")
    assert [(name, line) for _, name, line in found] == [
        ("batch_size", 1), ("threshold", 1), ("checkpoint_every", 2), ("threshold", 3),
        ("batch_size", 5),
    ]  # fmt: skip
    assert duplicates("class OptimSpec:\n    batch_size: int = 256\n", "method/optim.py") == []


def test_the_api_reads_the_declared_defaults():
    parameters = inspect.signature(api.score).parameters
    assert parameters["batch_size"].default == OptimSpec.batch_size
    assert {f.name: f.default for f in dataclasses.fields(OptimSpec)}["batch_size"] == 256
    assert MEMORIZED == 0.25


def test_the_execution_settings_are_their_declared_options():
    fields = {f.name: f.default for f in dataclasses.fields(Execution)}
    assert fields == {key: option.default for key, option in EXECUTION_OPTIONS.items()}
    assert {k: WORKFLOW_OPTIONS[k] for k in EXECUTION_OPTIONS} == EXECUTION_OPTIONS
    assert Execution.from_config({"experiments": {}}) == Execution()
    given = {"device": "cpu", "threads": "3", "checkpoint_every": 2, "download": 1}
    assert Execution.from_config(given) == Execution("cpu", 3, 2, "data", True)
