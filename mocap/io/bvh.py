"""BVH (Biovision hierarchy) reading and writing, pure Python/numpy.

Conventions of the files we write: +Y up, the root has six channels (``Xposition
Yposition Zposition`` then three rotations), every other joint three rotation channels,
each leaf joint an ``End Site`` a quarter of its bone long along its bone. Angles are in
degrees, lengths in ``units`` (centimetres by default), values printed with six decimals,
so a round trip is exact to about 1e-8 rad and 1e-8 m (5e-7 m with ``units="m"``).

Semantics when reading (the same as Blender's importer for the usual files):

* rotation channels of a joint are applied in the listed order as intrinsic rotations:
  ``Zrotation Xrotation Yrotation`` gives ``Rz @ Rx @ Ry``; any order and any subset;
* position channels *replace* the joint's OFFSET for that frame (an axis without a
  channel keeps its OFFSET component). For the root this gives its world position;
  for other joints the per-frame offsets are exposed as ``BvhMotion.joint_offsets``;
* the joints are listed in file order (depth first, parents before children), End Sites
  are not joints but their offsets are kept in ``BvhMotion.end_sites``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError
from mocap.formats import MAX_FPS, MAX_FRAMES, MAX_JOINTS, atomic_path
from mocap.rotations import (
    EULER_ORDERS,
    axis_rotation_matrix,
    matrix_to_euler,
    matrix_to_quat_wxyz,
    quat_continuous_wxyz,
    quat_wxyz_to_matrix,
)

#: Metres per file unit.
UNITS_M: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}
_CHANNEL = re.compile(r"^([XYZ])(position|rotation)$", re.IGNORECASE)
#: largest BVH file read, bytes (an hour of a 21-joint skeleton at 60 fps is about 170 MB)
MAX_BVH_BYTES = 1 << 30
_MAX_DEPTH = 256  # joints nested deeper than this are not a skeleton (and would exhaust the stack)


@dataclass(frozen=True)
class BvhMotion:
    """Motion read from a BVH file, in SI units and (w, x, y, z) quaternions.

    Attributes:
        joint_names: (J,) in file order (End Sites are not joints).
        parents: (J,) parent index per joint, root = -1, parents first.
        rest_offsets: (J, 3) float64 metres, each joint's OFFSET from its parent (row 0:
            the root's OFFSET).
        local_quats_wxyz: (T, J, 4) float64 local rotations, sign-continuous over time.
        root_translation: (T, 3) float64 metres; the root's position is
            ``root_translation + rest_offsets[0]``.
        fps: frames per second (1 / Frame Time).
        channels: per joint, its channel names as written (e.g. ``("Zrotation", ...)``).
        rotation_orders: per joint, the axes of its rotation channels in order (``"ZXY"``).
        end_sites: (J, 3) float64 metres, the End Site offset of each joint; NaN where a
            joint has none.
        joint_offsets: (T, J, 3) float64 metres, per-frame offsets when a joint other than
            the root has position channels (rows without them repeat ``rest_offsets``);
            ``None`` otherwise.
    """

    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_offsets: np.ndarray
    local_quats_wxyz: np.ndarray
    root_translation: np.ndarray
    fps: float
    channels: tuple[tuple[str, ...], ...]
    rotation_orders: tuple[str, ...]
    end_sites: np.ndarray
    joint_offsets: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.local_quats_wxyz.shape[0])


def _scale(units: str) -> float:
    try:
        return UNITS_M[units]
    except KeyError:
        raise ValueError(f"units must be one of {', '.join(UNITS_M)}, got {units!r}") from None


# --- writing ------------------------------------------------------------------------------------

def write_bvh(path: str | os.PathLike, *, joint_names: Sequence[str], parents: Sequence[int],
              rest_offsets: np.ndarray, local_quats_wxyz: np.ndarray, root_translation: np.ndarray,
              fps: float, rotation_order: str | Sequence[str] = "ZXY", units: str = "cm") -> None:
    """Write a BVH file atomically.

    Args:
        path: output file.
        joint_names: (J,) names without whitespace.
        parents: (J,) parent index per joint, root = -1 at index 0, parents first. Joints
            are written depth first with children in index order (MOTION21's own order).
        rest_offsets: (J, 3) metres.
        local_quats_wxyz: (T, J, 4) local rotations, finite.
        root_translation: (T, 3) metres, finite; the root channels hold
            ``root_translation + rest_offsets[0]``.
        fps: frames per second, > 0.
        rotation_order: one of ``EULER_ORDERS`` for all joints, or one per joint.
        units: length unit of the file: ``"cm"``, ``"m"``, ``"mm"`` or ``"in"``.
    """
    scale = _scale(units)
    names = [str(n) for n in joint_names]
    n = len(names)
    for name in names:
        if not name or re.search(r"[\s{}]", name):
            raise ValueError(f"joint name {name!r} must be non-empty without spaces or braces")
    if len(set(names)) != n:
        raise ValueError("joint names must be unique")
    par = [int(v) for v in parents]
    if len(par) != n or any(not ((j == 0 and pj == -1) or 0 <= pj < j) for j, pj in enumerate(par)):
        raise ValueError(f"parents must have {n} entries, root = -1 at index 0, parents first; got {par}")
    off = np.asarray(rest_offsets, dtype=np.float64)
    q = np.asarray(local_quats_wxyz, dtype=np.float64)
    root = np.asarray(root_translation, dtype=np.float64)
    if off.shape != (n, 3):
        raise ValueError(f"rest_offsets must have shape ({n}, 3), got {off.shape}")
    if q.ndim != 3 or q.shape[1:] != (n, 4):
        raise ValueError(f"local_quats_wxyz must have shape (T, {n}, 4), got {q.shape}")
    t = q.shape[0]
    if root.shape != (t, 3):
        raise ValueError(f"root_translation must have shape ({t}, 3), got {root.shape}")
    bad = ~(np.isfinite(q).all((1, 2)) & np.isfinite(root).all(1))
    if bad.any():
        raise ValueError(f"BVH cannot store missing values: frame {int(np.argmax(bad))} holds NaN or inf "
                         f"({int(bad.sum())} frames in all); fill or interpolate them first")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    orders = [rotation_order] * n if isinstance(rotation_order, str) else list(rotation_order)
    if len(orders) != n or any(not isinstance(o, str) or o.upper() not in EULER_ORDERS for o in orders):
        raise ValueError(f"rotation_order must be one of {', '.join(EULER_ORDERS)} or a list of {n} of them")
    orders = [o.upper() for o in orders]

    kids = [[c for c in range(n) if par[c] == j] for j in range(n)]
    lines = ["HIERARCHY"]
    order_written: list[int] = []

    def fmt(v: np.ndarray) -> str:
        return " ".join(f"{x:.6f}" for x in v / scale)

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        lines.append(f"{pad}{'ROOT' if j == 0 else 'JOINT'} {names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {fmt(off[j])}")
        rot = " ".join(f"{a}rotation" for a in orders[j])
        lines.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot}" if j == 0 else f"{pad}\tCHANNELS 3 {rot}")
        order_written.append(j)
        for c in kids[j]:
            emit(c, depth + 1)
        if not kids[j]:
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {fmt(0.25 * off[j])}", f"{pad}\t}}"])
        lines.append(pad + "}")

    emit(0, 0)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / fps:.10g}"]
    mats = quat_wxyz_to_matrix(q)
    cols = [(root + off[0]) / scale]
    for j in order_written:
        cols.append(np.degrees(matrix_to_euler(mats[:, j], orders[j])))
    data = np.concatenate(cols, axis=1)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
            if t:
                np.savetxt(f, data, fmt="%.6f", delimiter=" ")


# --- reading ------------------------------------------------------------------------------------

class _Tokens:
    """Hierarchy tokens with their 1-based line numbers."""

    def __init__(self, path: Path, items: list[tuple[str, int]], end_line: int):
        self.path, self.items, self.i, self.end_line = path, items, 0, end_line

    def error(self, message: str, line: int | None = None) -> MocapError:
        if line is None:
            line = self.items[self.i][1] if self.i < len(self.items) else self.end_line
        return MocapError(f"{self.path}, line {line}: {message}")

    def next(self, what: str) -> tuple[str, int]:
        if self.i >= len(self.items):
            raise self.error(f"the HIERARCHY ends early (unbalanced braces?), expected {what}")
        self.i += 1
        return self.items[self.i - 1]

    def expect(self, word: str) -> int:
        tok, line = self.next(repr(word))
        if tok.upper() != word.upper():
            raise self.error(f"expected {word!r}, found {tok!r}", line)
        return line

    def number(self, what: str) -> float:
        tok, line = self.next(what)
        try:
            value = float(tok)
        except ValueError:
            raise self.error(f"expected a number for {what}, found {tok[:40]!r}", line) from None
        if not np.isfinite(value):
            raise self.error(f"expected a finite number for {what}, found {tok[:40]!r}", line)
        return value

    def peek(self) -> str | None:
        return self.items[self.i][0] if self.i < len(self.items) else None


def _parse_joint(tk: _Tokens, parent: int, out: dict, depth: int = 0) -> None:
    kw, line = tk.items[tk.i - 1]
    if depth > _MAX_DEPTH or len(out["names"]) >= MAX_JOINTS:
        raise tk.error(f"more than {MAX_JOINTS} joints or joints nested more than {_MAX_DEPTH} deep", line)
    name_parts = []
    while tk.peek() is not None and tk.items[tk.i][1] == line and tk.peek() != "{":
        name_parts.append(tk.next("a joint name")[0])
    if not name_parts:
        raise tk.error(f"{kw} without a name", line)
    j = len(out["names"])
    out["names"].append(" ".join(name_parts))
    out["parents"].append(parent)
    out["offsets"].append(None)
    out["channels"].append(())
    out["end_sites"].append(None)
    tk.expect("{")
    while True:
        tok, line = tk.next("'}'")
        word = tok.upper()
        if word == "OFFSET":
            out["offsets"][j] = [tk.number("OFFSET") for _ in range(3)]
        elif word == "CHANNELS":
            count_tok, _ = tk.next("the channel count")
            if not count_tok.isdigit() or int(count_tok) > 6:
                raise tk.error(f"expected the channel count (0 to 6) after CHANNELS, found {count_tok[:40]!r}", line)
            names = []
            for _ in range(int(count_tok)):
                ch, ch_line = tk.next("a channel name")
                if not _CHANNEL.match(ch):
                    raise tk.error(f"unknown channel {ch!r} (expected Xposition ... Zrotation)", ch_line)
                names.append(ch)
            out["channels"][j] = tuple(names)
        elif word == "JOINT":
            _parse_joint(tk, j, out, depth + 1)
        elif word == "END":
            tk.expect("Site")
            tk.expect("{")
            tk.expect("OFFSET")
            out["end_sites"][j] = [tk.number("End Site OFFSET") for _ in range(3)]
            tk.expect("}")
        elif word == "}":
            break
        else:
            raise tk.error(f"unexpected {tok[:40]!r} in joint {out['names'][j][:40]!r}", line)
    if out["offsets"][j] is None:
        raise tk.error(f"joint {out['names'][j]!r} has no OFFSET", line)


def read_bvh(path: str | os.PathLike, *, units: str = "cm") -> BvhMotion:
    """Read a BVH file; MocapError naming the line for malformed files.

    Args:
        path: the .bvh file (LF or CRLF line ends, spaces or tabs).
        units: length unit of the file (``"cm"``, ``"m"``, ``"mm"``, ``"in"``).
    Returns:
        :class:`BvhMotion` in metres and (w, x, y, z) quaternions.
    """
    scale = _scale(units)
    path = Path(path)
    if not path.is_file():
        raise MocapError(f"BVH file not found: {path}")
    if path.stat().st_size > MAX_BVH_BYTES:
        raise MocapError(f"{path} is {path.stat().st_size / 1e6:.0f} MB, over the {MAX_BVH_BYTES / 1e6:.0f} MB "
                         f"a BVH file may take")
    with open(path, encoding="utf-8", errors="replace", newline=None) as f:
        text_lines = f.read().split("\n")

    items: list[tuple[str, int]] = []
    motion_line = None
    for k, raw in enumerate(text_lines):
        toks = raw.replace("{", " { ").replace("}", " } ").split()
        if toks and toks[0].upper() == "MOTION":
            motion_line = k
            break
        items.extend((tok, k + 1) for tok in toks)
    tk = _Tokens(path, items, len(text_lines) if motion_line is None else motion_line + 1)
    if not items or items[0][0].upper() != "HIERARCHY":
        raise tk.error("not a BVH file: it must start with HIERARCHY", items[0][1] if items else 1)
    tk.i = 1
    tk.expect("ROOT")
    out: dict = {"names": [], "parents": [], "offsets": [], "channels": [], "end_sites": []}
    _parse_joint(tk, -1, out)
    if tk.peek() is not None:
        tok, line = tk.next("MOTION")
        if tok.upper() == "ROOT":
            raise tk.error("files with more than one ROOT are not supported", line)
        raise tk.error(f"expected MOTION, found {tok!r}", line)
    if motion_line is None:
        raise tk.error("no MOTION section", len(text_lines))

    num_frames, frame_time, data_start = _read_motion_header(path, text_lines, motion_line)
    n_ch = sum(len(c) for c in out["channels"])
    rows = []
    last_line = data_start
    for k in range(data_start, len(text_lines)):
        toks = text_lines[k].split()
        if not toks:
            continue
        last_line = k + 1
        if len(rows) == num_frames:
            raise MocapError(f"{path}, line {k + 1}: more frame lines than the {num_frames} declared in 'Frames:'")
        if len(toks) != n_ch:
            raise MocapError(f"{path}, line {k + 1}: frame {len(rows)} has {len(toks)} values, "
                             f"the hierarchy declares {n_ch} channels")
        try:
            rows.append(np.array(toks, dtype=np.float64))
        except ValueError:
            bad = next(tok for tok in toks if not _is_float(tok))
            raise MocapError(f"{path}, line {k + 1}: {bad[:40]!r} is not a number") from None
        if not np.isfinite(rows[-1]).all():
            raise MocapError(f"{path}, line {k + 1}: frame {len(rows) - 1} holds NaN or infinite values")
    if len(rows) != num_frames:
        raise MocapError(f"{path}, line {last_line}: 'Frames:' declares {num_frames} frames but the file "
                         f"holds {len(rows)} (truncated file?)")
    data = np.stack(rows) if rows else np.zeros((0, n_ch))
    return _to_motion(out, data, scale, 1.0 / frame_time)


def _is_float(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _read_motion_header(path: Path, lines: list[str], motion_line: int) -> tuple[int, float, int]:
    values: dict = {}
    k = motion_line + 1
    for key in ("FRAMES:", "FRAME TIME:"):
        while k < len(lines) and not lines[k].strip():
            k += 1
        if k >= len(lines):
            raise MocapError(f"{path}, line {k}: file ends before '{key.title()}'")
        text = " ".join(lines[k].split())
        if not text.upper().startswith(key):
            raise MocapError(f"{path}, line {k + 1}: expected '{key.title()} ...', found {text[:40]!r}")
        values[key] = text[len(key):].strip()
        try:
            number = int(values[key]) if key == "FRAMES:" else float(values[key])
        except ValueError:
            number = -1
        if not (np.isfinite(number) and (number > 0 or (number == 0 and key == "FRAMES:"))):
            what = "a frame count >= 0" if key == "FRAMES:" else "a frame time in seconds > 0"
            raise MocapError(f"{path}, line {k + 1}: expected {what} after '{key.title()}', found {values[key][:40]!r}")
        if key == "FRAMES:" and number > MAX_FRAMES:
            raise MocapError(f"{path}, line {k + 1}: 'Frames: {number}' is over the limit of {MAX_FRAMES} frames")
        if key == "FRAME TIME:" and number < 1.0 / MAX_FPS:
            raise MocapError(f"{path}, line {k + 1}: 'Frame Time: {number:g}' is over {MAX_FPS:g} frames per second")
        values[key] = number
        k += 1
    return int(values["FRAMES:"]), float(values["FRAME TIME:"]), k


def _to_motion(out: dict, data: np.ndarray, scale: float, fps: float) -> BvhMotion:
    n, t = len(out["names"]), data.shape[0]
    offsets = np.array(out["offsets"], dtype=np.float64) * scale
    mats = np.broadcast_to(np.eye(3), (t, n, 3, 3)).copy()
    per_frame = np.broadcast_to(offsets, (t, n, 3)).copy()
    moved = np.zeros(n, dtype=bool)
    col = 0
    for j, chans in enumerate(out["channels"]):
        for ch in chans:
            axis, kind = _CHANNEL.match(ch).groups()  # type: ignore[union-attr]
            axis = axis.upper()
            if kind.lower() == "rotation":
                mats[:, j] = mats[:, j] @ axis_rotation_matrix(np.radians(data[:, col]), axis)
            else:
                per_frame[:, j, "XYZ".index(axis)] = data[:, col] * scale
                moved[j] = True
            col += 1
    quats = quat_continuous_wxyz(matrix_to_quat_wxyz(mats), axis=0)
    root_translation = per_frame[:, 0] - offsets[0]
    per_frame[:, 0] = offsets[0]
    end_sites = np.array([e if e is not None else [np.nan] * 3 for e in out["end_sites"]], dtype=np.float64) * scale
    orders = tuple("".join(c[0].upper() for c in chans if c[1:].lower() == "rotation") for chans in out["channels"])
    return BvhMotion(
        joint_names=tuple(out["names"]), parents=tuple(out["parents"]), rest_offsets=offsets,
        local_quats_wxyz=quats, root_translation=root_translation, fps=float(fps),
        channels=tuple(out["channels"]), rotation_orders=orders, end_sites=end_sites,
        joint_offsets=per_frame if moved[1:].any() else None,
    )



def write_motion_bvh(path, motion, **options) -> None:
    """Write a :class:`mocap.formats.Motion` that has IK results (local rotations, root
    translation, rest offsets) as BVH; ``options`` go to :func:`write_bvh`."""
    if motion.local_quats_wxyz is None or motion.root_translation is None or motion.rest_offsets is None:
        raise MocapError("this motion has no joint rotations: run IK first (mocap lift does)")
    write_bvh(path, joint_names=motion.joint_names, parents=motion.parents, rest_offsets=motion.rest_offsets,
              local_quats_wxyz=motion.local_quats_wxyz, root_translation=motion.root_translation, fps=motion.fps,
              **options)
