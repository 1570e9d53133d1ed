"""The package's import graph, read from the source with ``ast`` (module-level *and*
function-level imports): no cycles between modules, and the layer rules of DESIGN.md -

* ``models/`` never imports ``explain/``, ``training/`` or ``ui/``;
* ``explain/`` never imports ``ui/`` or ``training/``;
* ``person/`` imports only ``data/`` (and the package's leaf modules: errors, labels, options,
  settings - every layer may import them; they import only each other);
* ``data/`` imports none of the other layers;
* library layers (data, person, models, explain) hold no argparse: command code lives with the
  faces (``cli.py``, ``commands/``, ``training/cli.py``, ``ui/``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "har_demo"
# imported by every layer; they import nothing of ours but each other (settings -> options -> errors)
LEAVES = {"har_demo.errors", "har_demo.labels", "har_demo.options", "har_demo.settings"}
# layer -> the har_demo layers it must not import (a layer = first package under har_demo)
FORBIDDEN = {
    "data": {"person", "models", "explain", "training", "ui", "commands", "cli", "evaluate", "testing"},
    "person": {"models", "explain", "training", "ui", "commands", "cli", "evaluate", "testing"},
    "models": {"explain", "training", "ui", "commands", "cli", "evaluate", "testing"},
    "explain": {"training", "ui", "commands", "cli", "evaluate", "testing"},
}
LIBRARY_LAYERS = ("data", "person", "models", "explain")
MODULES = set()  # filled below: every module of the package


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module this file imports, anywhere in it (absolute names)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names} & MODULES  # "from . import x": module x
            out.update(subs or {mod})
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    MODULES.update(files)
    g = {}
    for name, path in files.items():
        # an import of a.b.c also runs a/__init__ and a/b/__init__; count the named module itself
        g[name] = {m for m in imports_of(path) if m in files and m != name}
    return g


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = graph()


def test_the_graph_was_read():
    assert "har_demo.models.registry" in GRAPH and "har_demo.models.base" in GRAPH["har_demo.models.registry"]
    assert "har_demo.models.registry" in GRAPH["har_demo.models.checkpoint"]


def test_no_import_cycles():
    colour: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if nxt.endswith("__init__") or GRAPH.get(nxt) is None:
                continue
            if colour.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif not colour.get(nxt):
                visit(nxt)
        stack.pop()
        colour[node] = 2

    for node in sorted(GRAPH):
        if not colour.get(node):
            visit(node)
    # a package's __init__ re-exporting its own submodules is not a cycle through them
    real = [c for c in cycles if not any(len(m.split(".")) < len(c[0].split(".")) and c[0].startswith(m + ".") for m in c)]
    assert not real, "import cycles: " + "; ".join(" -> ".join(c) for c in real)


@pytest.mark.parametrize("layer_name", sorted(FORBIDDEN))
def test_layer_rules(layer_name):
    bad = []
    for mod, deps in GRAPH.items():
        if layer(mod) != layer_name:
            continue
        for dep in deps:
            if dep in LEAVES:
                continue
            if layer(dep) in FORBIDDEN[layer_name]:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_person_imports_only_data():
    bad = [f"{m} imports {d}" for m, deps in GRAPH.items() if layer(m) == "person" for d in deps
           if d not in LEAVES and layer(d) not in ("person", "data")]
    assert not bad, "\n".join(bad)


def test_library_layers_hold_no_argparse():
    bad = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
           if layer(module_name(p)) in LIBRARY_LAYERS and "argparse" in imports_of(p)]
    assert not bad, f"argparse in library layers (move command code to har_demo/commands/): {bad}"


def test_leaf_modules_import_only_leaves():
    for leaf in LEAVES:
        assert GRAPH[leaf] <= LEAVES, f"{leaf} imports {GRAPH[leaf] - LEAVES}"
    assert not GRAPH["har_demo.errors"] and not GRAPH["har_demo.labels"]
