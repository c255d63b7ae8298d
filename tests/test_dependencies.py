"""Declared dependencies: every third-party import in the package is declared in
pyproject.toml (core or an extra), and every message that tells users which extra to
install names an extra that exists and that really provides the package.

Pure ast + tomllib: needs nothing installed beyond the standard library (the check of
the import-name table against the installed distributions skips what is not installed).
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mocap", "lifting")  # what pyproject's packages.find installs
MESSAGE_DIRS = ("mocap", "lifting", "blender_addon")  # where users read "pip install 'mocap-lift[X]'"

# import name -> distribution, where they differ (checked against the installed
# distributions by test_import_table_matches_installed_distributions)
IMPORT_TO_DIST = {
    "cv2": "opencv-contrib-python",
    "mathutils": "bpy",  # ships inside the bpy wheel
    "python_multipart": "python-multipart",
    "multipart": "python-multipart",
    "tflite_runtime": "tflite-runtime",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
}
EXTRA_IN_TEXT = re.compile(r"mocap-lift\[([A-Za-z0-9_,\- ]+)\]")
EXTRA_IN_DOC = re.compile(r"``([A-Za-z0-9_-]+)`` extra")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist(import_name: str) -> str:
    return _norm(IMPORT_TO_DIST.get(import_name, import_name))


@cache
def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirement(req: str) -> tuple[str, tuple[str, ...]]:
    """``'name[a,b]>=1; marker'`` -> (normalised name, extras)."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", req)
    assert m, f"cannot parse requirement {req!r}"
    return _norm(m.group(1)), tuple(e.strip() for e in (m.group(2) or "").split(",") if e.strip())


@cache
def _core() -> frozenset[str]:
    return frozenset(_requirement(r)[0] for r in _project()["dependencies"])


@cache
def _extras() -> dict[str, frozenset[str]]:
    """extra -> the distributions it installs (a self-reference ``mocap-lift[a,b]`` expanded)."""
    raw = _project()["optional-dependencies"]
    me = _norm(_project()["name"])

    def expand(extra: str, seen: tuple[str, ...] = ()) -> set[str]:
        assert extra in raw, f"extra {extra!r} (used by {seen[-1] if seen else '?'}) is not in pyproject.toml"
        out: set[str] = set()
        for req in raw[extra]:
            name, sub = _requirement(req)
            if name == me:
                for e in sub:
                    if e not in seen:
                        out |= expand(e, (*seen, extra))
            else:
                out.add(name)
        return out

    return {extra: frozenset(expand(extra)) for extra in raw}


def _py_files(dirs) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in _py_files(PACKAGES)}


def _imported_names(node: ast.AST, module: str, path: Path) -> list[str]:
    """Absolute dotted names an Import/ImportFrom node imports ([] for other nodes)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level == 0:
            base = node.module or ""
        else:
            pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
        return [base] + [f"{base}.{a.name}" for a in node.names]
    return []


def _third_party(name: str) -> str | None:
    top = name.split(".")[0]
    if not top or top == "__future__" or top in sys.stdlib_module_names or top in PACKAGES:
        return None
    return top


def _all_third_party_imports() -> list[tuple[Path, int, str]]:
    """(file, line, top-level import name) for every third-party import, module or function level."""
    out = []
    for module, path in _modules().items():
        for node in ast.walk(_tree(path)):
            for name in _imported_names(node, module, path)[:1]:
                top = _third_party(name)
                if top:
                    out.append((path, node.lineno, top))
    return out


def _internal_target(name: str) -> str | None:
    while name and name not in _modules():
        name = name.rpartition(".")[0]
    return name or None


def _top_level_nodes(tree: ast.Module):
    """The statements that run on import (module body, descending into if/try/with, not defs)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            todo.extend(getattr(node, field, []))


@cache
def _import_time_dists(module: str) -> frozenset[str]:
    """Distributions that ``import module`` needs: its own module-level imports, those of the
    internal modules it imports at module level, and of its parent packages, transitively."""
    seen: set[str] = set()
    dists: set[str] = set()
    todo = [module]
    while todo:
        mod = todo.pop()
        if mod in seen or mod not in _modules():
            continue
        seen.add(mod)
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        path = _modules()[mod]
        for node in _top_level_nodes(_tree(path)):
            names = _imported_names(node, mod, path)
            for name in names[:1]:
                top = _third_party(name)
                if top:
                    dists.add(_dist(top))
            todo.extend(t for t in map(_internal_target, names) if t)
    return frozenset(dists)


def _extras_named(node: ast.AST, constants: dict[str, str]) -> list[str]:
    """Extras a piece of code tells users to install: missing_extra(pkg, EXTRA) calls and
    literal "mocap-lift[X]" text."""
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and _is_missing_extra(sub):
            out.append(_const(sub.args[1], constants))
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            for m in EXTRA_IN_TEXT.finditer(sub.value):
                out.extend(e.strip() for e in m.group(1).split(","))
    return out


def _is_missing_extra(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Name) and f.id == "missing_extra") or (
        isinstance(f, ast.Attribute) and f.attr == "missing_extra")


def _module_constants(tree: ast.Module) -> dict[str, str]:
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name)}


def _const(node: ast.AST, constants: dict[str, str]) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    raise AssertionError(f"cannot resolve {ast.unparse(node)} to a string at line {node.lineno}")


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = {ast.unparse(e) for e in (handler.type.elts if isinstance(handler.type, ast.Tuple)
                                      else [handler.type] if handler.type else [])}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


# --- the tests -----------------------------------------------------------------------------

def test_pyproject_parses_and_all_means_all():
    extras = _extras()
    assert {"detect", "lift", "blender", "estimators", "service", "ray", "avatar", "dev", "all"} <= set(extras)
    # `.[all]` is what scripts/setup.sh installs: every other extra but smpl (non-commercial)
    every = set().union(*(v for k, v in extras.items() if k not in ("all", "smpl")))
    assert every <= extras["all"], sorted(every - extras["all"])
    assert {"opencv-contrib-python", "matplotlib", "numpy", "scipy", "tqdm"} <= _core()


def test_every_third_party_import_is_declared():
    found = _all_third_party_imports()
    assert {top for *_, top in found} >= {"numpy", "cv2", "torch", "mediapipe"}  # the walk sees imports
    declared = _core().union(*_extras().values())
    undeclared = sorted({f"{path.relative_to(ROOT)}:{line}: import {top} (distribution {_dist(top)})"
                         for path, line, top in found if _dist(top) not in declared})
    assert not undeclared, "not in pyproject.toml's dependencies or any extra:\n" + "\n".join(undeclared)


def test_import_table_matches_installed_distributions():
    installed = importlib.metadata.packages_distributions()
    names = sorted({top for *_, top in _all_third_party_imports()})
    checked = [n for n in names if n in installed]
    assert "numpy" in checked
    wrong = [f"{n}: table says {_dist(n)}, installed from {installed[n]}" for n in checked
             if _dist(n) not in {_norm(d) for d in installed[n]}]
    assert not wrong, "fix IMPORT_TO_DIST:\n" + "\n".join(wrong)


def test_opencv_is_the_one_mediapipe_requires():
    """Declaring another OpenCV distribution than mediapipe's would install two over one cv2."""
    try:
        reqs = importlib.metadata.requires("mediapipe") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mediapipe is not installed (the detect extra)")
    opencv_of_mediapipe = {_requirement(r)[0] for r in reqs if "opencv" in r.lower()}
    opencv_declared = {d for d in _core().union(*_extras().values()) if "opencv" in d}
    assert opencv_of_mediapipe and opencv_declared == opencv_of_mediapipe


def test_install_messages_name_existing_extras():
    extras = _extras()
    bad, seen = [], 0
    for path in _py_files(MESSAGE_DIRS):
        tree = _tree(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named = [e.strip() for m in EXTRA_IN_TEXT.finditer(node.value) for e in m.group(1).split(",")]
                named += EXTRA_IN_DOC.findall(node.value)
                seen += len(named)
                bad += [f"{path.relative_to(ROOT)}:{node.lineno}: [{e}]" for e in named if e not in extras]
    assert seen >= 10  # the scan finds the messages
    assert not bad, f"extras not in pyproject.toml ({sorted(extras)}):\n" + "\n".join(bad)


def test_missing_extra_calls_name_the_extra_that_provides_the_package():
    extras = _extras()
    bad, calls = [], 0
    for path in _py_files(MESSAGE_DIRS):
        tree = _tree(path)
        constants = _module_constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_missing_extra(node) and len(node.args) == 2:
                calls += 1
                package = _norm(_const(node.args[0], constants).split()[0])
                extra = _const(node.args[1], constants)
                if package not in extras.get(extra, ()):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: missing_extra({package!r}, {extra!r}) "
                               f"but [{extra}] installs {sorted(extras.get(extra, ['<no such extra>']))}")
    assert calls >= 8
    assert not bad, "\n".join(bad)


def test_import_error_handlers_name_an_extra_that_provides_what_the_try_imports():
    """``try: import X ... except ImportError: <message naming [E]>``: E installs X (for X
    imported directly or at module level by the internal modules the try imports)."""
    extras = _extras()
    bad, checked = [], 0
    for module, path in _modules().items():
        tree = _tree(path)
        constants = _module_constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            handlers = [h for h in node.handlers if _catches_import_error(h)]
            named = {e for h in handlers for e in _extras_named(h, constants)}
            if not named:
                continue
            needed: set[str] = set()
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    names = _imported_names(sub, module, path)
                    needed |= {_dist(t) for t in map(_third_party, names[:1]) if t}
                    for target in filter(None, map(_internal_target, names)):
                        needed |= _import_time_dists(target)
            checked += 1
            provided = _core().union(*(extras.get(e, frozenset()) for e in named))
            if not needed <= provided:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: the try imports {sorted(needed - provided)}, "
                           f"the message names {sorted(named)}")
    assert checked >= 8
    assert not bad, "\n".join(bad)


def test_cli_passthrough_extras_provide_what_the_command_imports():
    """`mocap <command>` turns an ImportError of its module into "pip install 'mocap-lift[E]'"."""
    tree = _tree(ROOT / "mocap" / "cli.py")
    table = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "_PASSTHROUGH" for t in n.targets))
    extras = _extras()
    assert {"serve", "batch", "train-lifter"} <= set(table)
    for command, (module, _function, extra, _help) in table.items():
        assert extra in extras, f"mocap {command}: extra {extra!r} is not in pyproject.toml"
        assert module in _modules(), f"mocap {command}: no module {module}"
        missing = _import_time_dists(module) - _core() - extras[extra]
        assert not missing, f"mocap {command} needs {sorted(missing)} on import; [{extra}] does not install them"
