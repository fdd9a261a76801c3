"""The gateway's modules import one another in one direction only: no cycle.

Every import counts, those under ``TYPE_CHECKING`` included: a cycle hidden from
the interpreter is still two modules that cannot be understood one without the
other. The package's ``__init__`` only re-exports, and is left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import archipel.gateway

PACKAGE = "archipel.gateway"
ROOT = Path(archipel.gateway.__file__).parent


def imported(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, by module name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            names.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
            names.add(str(node.module))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
    return names


def graph() -> dict[str, set[str]]:
    modules = {f"{PACKAGE}.{p.stem}": p for p in ROOT.glob("*.py") if p.stem != "__init__"}
    return {name: imported(path) & modules.keys() for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> Iterator[list[str]]:
    """One path per cycle found by a depth-first walk (enough to name the culprits)."""
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> Iterator[list[str]]:
        if node in path:
            yield [*path[path.index(node) :], node]
            return
        if node in done:
            return
        for nxt in sorted(edges[node]):
            yield from walk(nxt, [*path, node])
        done.add(node)

    for start in sorted(edges):
        yield from walk(start, [])


def test_the_gateway_modules_import_each_other_without_a_cycle() -> None:
    assert list(cycles(graph())) == []


def test_the_cycle_finder_names_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert list(cycles(edges)) == [["a", "b", "c", "a"]]
