"""Imports point one way: the layer and independence contracts in .importlinter (run with
import-linter, a dev dependency), and a standard-library check that the module import
graph of mocap/ and lifting/ has no cycle (function-level imports included).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mocap", "lifting")


def _module_files() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported internal module: first line}; every import statement counts,
    at module level or inside a function; ``from a.b import c`` is an import of ``a.b.c``
    when that is a module, else of ``a.b``."""
    files = _module_files()

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or "" if node.level == 0 else ".".join(
                    package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" for a in node.names]  # resolve() falls back to base
            else:
                continue
            for name in names:
                if name.split(".")[0] not in PACKAGES:
                    continue
                target = resolve(name)
                if target and target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Cycles as closed paths (first module repeated at the end): for every strongly connected
    component with more than one module (Tarjan's algorithm, iterative), a shortest cycle
    through each of its modules, each cycle listed once, starting at its smallest name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    cycles = []
    for component in components:  # a shortest cycle through each module, each cycle once
        seen = set()
        for start in component:
            cycle = _cycle_in(graph, set(component), start)
            i = cycle.index(min(cycle[:-1]))
            key = tuple(cycle[i:-1] + cycle[:i])
            if key not in seen:
                seen.add(key)
                cycles.append(list(key) + [key[0]])
    return sorted(cycles)


def _cycle_in(graph: dict[str, dict[str, int]], component: set[str], start: str) -> list[str]:
    """A shortest closed path from ``start`` back to it inside the component (breadth-first)."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node]):
            if child == start:
                return paths[node] + [start]
            if child in component and child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # cannot happen in a strongly connected component


def _describe(graph, cycle: list[str]) -> str:
    return " -> ".join(f"{a} (l.{graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"


def test_cycle_finder_finds_known_cycles():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"f": 5}, "f": {"e": 6}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    # two cycles sharing a module: both are reported
    graph = {"a": {"b": 1}, "b": {"a": 2, "c": 3}, "c": {"b": 4}}
    assert find_cycles(graph) == [["a", "b", "a"], ["b", "c", "b"]]
    assert find_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {}}) == []


def test_import_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert {"mocap.cli", "mocap.io.bvh", "lifting.train"} <= set(graph)
    assert "mocap.cli" in graph["mocap.__main__"]
    # mocap.io.video imports cv2 in a function; mocap.pipelines.capture imports stages in functions
    assert sum(len(v) for v in graph.values()) > 150


def test_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (module (line of its import) -> ...):\n" + "\n".join(
        _describe(graph, c) for c in cycles)


def test_import_contracts():
    """lint-imports with .importlinter: the layers (front ends > pipelines, eval > stages >
    io > foundations) and mocap never importing lifting."""
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install 'mocap-lift[dev]')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    report = run.stdout + run.stderr
    kept = run.returncode == 0 and re.search(r"Contracts: [1-9]\d* kept, 0 broken", report) is not None
    assert kept, report
