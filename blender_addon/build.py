"""Build the Blender extension zip: ``python blender_addon/build.py`` -> ``dist/mocap_lift_blender-<version>.zip``.

The zip holds the add-on (``blender_addon/mocap_lift/``, GPL-3.0-or-later) and, under
``mocap_lift/core/``, the pure-numpy modules of the ``mocap`` package it needs (Apache-2.0,
compatible with the GPL), found by following their ``mocap.*`` imports from
:data:`ROOTS`, flattened to one folder by module name (``mocap/io/bvh.py`` -> ``core/bvh.py``).
Their ``from mocap.x.y import`` lines become ``from .y import``, so the add-on
runs in a plain Blender without our package (nor torch, MediaPipe or OpenCV) installed.
The build fails, naming the module, if a vendored module imports at module level anything
but the standard library, numpy, bpy or another vendored module (imports inside functions
the add-on does not call are allowed).

Install the result in Blender with Edit > Preferences > Get Extensions > Install from Disk.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ADDON = HERE / "mocap_lift"
CORE = "core"  # the vendored package inside the add-on
#: The mocap modules the add-on imports; their mocap imports are followed.
ROOTS = ("formats", "io.bvh", "export.retarget", "export.fidelity", "export.blender", "export.face_keys", "skeletons",
         "errors")
ALLOWED_THIRD_PARTY = {"numpy", "bpy", "mathutils"}
_FROM_MOCAP = re.compile(r"^(\s*)from mocap((?:\.\w+)*) import ", re.MULTILINE)


def _mocap_imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(mocap modules imported anywhere, other packages imported at module level)."""
    ours, others = set(), set()
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top, _, rest = node.module.partition(".")
            if top == "mocap":
                ours.update([rest] if rest else [a.name for a in node.names])
            elif id(node) in top_level:
                others.add(top)
        elif isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                if top == "mocap":
                    raise SystemExit(f"build: 'import {a.name}' cannot be vendored; use 'from mocap.x import y'")
                if id(node) in top_level:
                    others.add(top)
    return ours, others


def vendor_sources(package: Path = REPO / "mocap", roots: tuple[str, ...] = ROOTS) -> dict[str, str]:
    """Vendored module name -> rewritten source of every mocap module the add-on needs.

    ``roots`` and the imports followed are dotted paths below ``mocap`` (``"io.bvh"``); each
    module is vendored under its last name (``bvh``), which must be unique among them.
    """
    todo, out, origin = list(roots), {}, {}
    while todo:
        dotted = todo.pop()
        name = dotted.rpartition(".")[2]
        if name in out:
            if origin[name] != dotted:
                raise SystemExit(f"build: mocap.{dotted} and mocap.{origin[name]} would both be vendored as {name}.py")
            continue
        origin[name] = dotted
        path = package.joinpath(*dotted.split(".")).with_suffix(".py")
        if not path.is_file():
            raise SystemExit(f"build: {path} not found (run from a checkout of mocap-lift)")
        text = path.read_text(encoding="utf-8")
        ours, others = _mocap_imports(ast.parse(text, filename=str(path)))
        bad = sorted(o for o in others - ALLOWED_THIRD_PARTY if o not in sys.stdlib_module_names and o != "__future__")
        if bad:
            raise SystemExit(f"build: mocap.{dotted} imports {', '.join(bad)}, which Blender does not ship; "
                             "move that import out of the modules the add-on needs")
        header = f"# Vendored from mocap-lift mocap.{dotted} (Apache-2.0) by blender_addon/build.py; edit the original.\n"
        out[name] = header + _FROM_MOCAP.sub(lambda m: f"{m.group(1)}from .{m.group(2).rpartition('.')[2]} import ", text)
        todo.extend(ours)
    return out


def manifest_version(addon: Path = ADDON) -> str:
    with open(addon / "blender_manifest.toml", "rb") as f:
        manifest = tomllib.load(f)
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type", "blender_version_min", "license"):
        if key not in manifest:
            raise SystemExit(f"build: blender_manifest.toml lacks {key!r}")
    return str(manifest["version"])


def build(out_dir: str | Path = REPO / "dist") -> Path:
    """Write ``<out_dir>/mocap_lift_blender-<version>.zip`` and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = manifest_version()
    target = out_dir / f"mocap_lift_blender-{version}.zip"
    tmp = target.with_name(f".{target.name}.tmp")
    vendored = vendor_sources()
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(ADDON.rglob("*")):
            rel = path.relative_to(ADDON)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix == ".pyc" or rel.parts[0] == CORE:
                continue
            z.write(path, rel.as_posix())
        z.writestr(f"{CORE}/__init__.py", '"""Pure-numpy modules vendored from mocap-lift (Apache-2.0) at build time."""\n')
        for name, text in sorted(vendored.items()):
            z.writestr(f"{CORE}/{name}.py", text)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default=str(REPO / "dist"), help="folder for the zip (default: dist/)")
    args = parser.parse_args(argv)
    path = build(args.output)
    print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
