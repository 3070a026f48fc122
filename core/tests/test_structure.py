"""Core's structure (issue 15): no import cycle, every module says what it is for, the registry
stays small. The import graph is read from the source (function-level imports included,
``if TYPE_CHECKING:`` blocks excluded: they never run), so a cycle hidden behind a
function-level import fails here too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "funnel"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path) -> set[str]:
    """Core modules that ``path`` imports at run time (at module level or inside functions)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in MODULES else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES and m != here}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    return out


def test_the_import_reader_sees_function_level_imports() -> None:
    # funnel.ensemble imports the exporter inside Ensemble.export(): the reader must see it
    assert "funnel.triton.export" in GRAPH["funnel.ensemble"]
    assert "funnel.files" in GRAPH["funnel.triton.runtime"]


def test_core_has_no_import_cycle() -> None:
    cycles = _cycles()
    detail = "\n".join(
        " ↔ ".join(c) + "\n    " + "\n    ".join(f"{m} imports {sorted(GRAPH[m] & set(c))}" for m in c) for c in cycles
    )
    assert not cycles, f"import cycles in core:\n{detail}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"import {module} alone failed:\n{proc.stderr[-2000:]}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_starts_by_saying_what_it_is_for(module: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 4, f"{MODULES[module]}: the module docstring should say what it is for"


def test_the_module_map_in_architecture_md_matches_the_tree() -> None:
    import re

    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## Core modules", 1)[1].split("\n## ", 1)[0]
    listed = {name for row in re.findall(r"^\| ([^|]+) \|", section, flags=re.M) for name in re.findall(r"`([\w/]+(?:\.py)?)`", row)}
    tree = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"} | {
        f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert listed == tree, f"docs/architecture.md's module map: missing {sorted(tree - listed)}, stale {sorted(listed - tree)}"


#: issue 15: core a maintainer can read in one sitting (every line of core/src, as `wc -l` counts)
CORE_LINE_BUDGET = 3800


def test_core_stays_within_its_line_budget() -> None:
    sizes = {str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines()) for p in SRC.rglob("*.py")}
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
    assert total <= CORE_LINE_BUDGET, (
        f"core/src has {total} lines, over its budget of {CORE_LINE_BUDGET} (largest: {largest}); a new "
        "capability with a backend of its own belongs in a plugin (plugins/), see docs/architecture.md"
    )
