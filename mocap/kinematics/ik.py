"""Forward and inverse kinematics on a kinematic tree (``parents``, root = -1, parents first).

Conventions (all frames world, metres, +Y up; rotations as (w, x, y, z) quaternions)::

    global_rot[root] = local[root]
    global_rot[j]    = global_rot[parent] * local[j]
    position[root]   = root_translation + rest_offsets[root]
    position[j]      = position[parent] + global_rot[parent] applied to rest_offsets[j]

so the identity rotation everywhere gives the rest pose (for MOTION21 a T-pose facing +Z).

Inverse kinematics solves each joint's *global* rotation from the directions to its
children (the rotation of a joint moves its children), then ``local = parent^-1 * global``.
Bone directions are matched exactly; bone lengths come from ``rest_offsets``, so
``forward_kinematics(*inverse_kinematics(x), ...)`` reproduces ``x`` exactly when its bone
lengths equal those of the rest offsets (and multi-child joints are rigid).

Rules per joint (MOTION21 names; any other tree uses the generic rules):

* two or more children (pelvis, ankles, neck): weighted Kabsch fit of the rest offsets of
  the children onto their observed directions, each weighted by its rest length times its
  observed length (the least-squares fit of the offset vectors: long bones dominate).
* hips and shoulders (one child each): the bone direction plus the normal of the limb
  plane (hip-knee-ankle, shoulder-elbow-wrist). The normal is the hinge axis of the knee /
  elbow: knees flex backwards (-Z in the rest pose), elbows forwards (+Z), by a positive
  angle about ``rest_bone x flex_direction``. Near-straight limbs (bend < 10 degrees) blend
  smoothly into the fallback below; up to 30 degrees a bend that looks like hyperextension
  is read as hyperextension, above it as flexion with the upper segment twisted.
* knees and elbows: the minimal swing from the parent's frame, so with the rules above a
  knee / elbow rotates about its hinge axis only.
* spine: its bone direction plus the left-right direction halfway between the hip line
  (right_hip -> left_hip) and the shoulder line (right_shoulder -> left_shoulder), so the
  spine and the neck share the twist of the torso.
* head: the head -> nose direction plus the neck -> head direction (no roll relative to
  the neck bone).
* any other single-child joint: the minimal swing from the parent's frame.
* leaves (wrists, heels, foot_index, nose): identity local rotation.

Fallback: when the second direction degenerates (straight limb, twisted torso, nose along
the neck) it blends smoothly into the twist given by the minimal swing from the parent's
frame, so no NaN and no jump appears there.

Missing data (NaN): a joint whose own position or whose child's position is NaN gets the
identity local rotation (it follows its parent); a multi-child joint uses the children
that are present (the minimal swing to the first present child if they do not fix a
rotation); a NaN grandchild or neighbour only removes the second direction (fallback
twist). Local rotations are therefore always finite; ``root_translation`` is NaN exactly
where the root joint is NaN.

One solver serves the whole clip and the live stream: :func:`plan_ik` computes once what a
skeleton and its rest pose fix (each joint's rule, children, rest directions and frames, the
order of solution), and :func:`solve_ik` solves one frame (J, 3) or many (T, J, 3) at once,
joints of one depth of the tree together. :func:`inverse_kinematics` is the clip path (plan,
solve, quaternion signs made continuous over time). Cost: ``python benchmarks/bench_ik.py``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mocap.rotations import (
    matrix_to_quat_wxyz,
    quat_apply_wxyz,
    quat_continuous_wxyz,
    quat_multiply_wxyz,
    quat_normalize_wxyz,
    rotation_matrix_between_vectors,
)
from mocap.skeletons import MOTION21, Skeleton, rest_positions

#: Flex direction of the distal segment in the rest pose, per hinge-plane joint.
HINGE_FLEX_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "left_hip": (0.0, 0.0, -1.0), "right_hip": (0.0, 0.0, -1.0),
    "left_shoulder": (0.0, 0.0, 1.0), "right_shoulder": (0.0, 0.0, 1.0),
}
_PLANE_SURE_DEG = 10.0  # below this bend the limb plane blends into the fallback twist
_FLEX_SURE_DEG = 30.0  # above this bend the anatomical bend direction is trusted
_SECONDARY_RAMP = (0.1, 0.3)  # perpendicular size of spine/head second directions: fallback .. trusted


def _check_tree(parents: Sequence[int], n: int) -> np.ndarray:
    p = np.asarray(parents, dtype=np.int64).reshape(-1)
    if p.shape[0] != n:
        raise ValueError(f"parents has {p.shape[0]} entries for {n} joints")
    for j, pj in enumerate(p):
        if not ((j == 0 and pj == -1) or 0 <= pj < j):
            raise ValueError(f"parents[{j}] = {pj}: the root must be joint 0 with parent -1 and parents must come first")
    return p


def forward_kinematics_with_rotations(local_quats_wxyz: np.ndarray, root_translation: np.ndarray,
                                      rest_offsets: np.ndarray, parents: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions and global rotations from local rotations.

    Args:
        local_quats_wxyz: (T, J, 4) local rotations (w, x, y, z); normalised here.
        root_translation: (T, 3) metres.
        rest_offsets: (J, 3) metres, offset of each joint from its parent in the rest pose
            (row 0 is added to the root); (T, J, 3) for per-frame offsets.
        parents: (J,) parent index per joint, root = -1 at index 0, parents first.
    Returns:
        joints (T, J, 3) float64 metres and global_quats_wxyz (T, J, 4) float64.
    """
    q = np.asarray(local_quats_wxyz, dtype=np.float64)
    if q.ndim != 3 or q.shape[2] != 4:
        raise ValueError(f"local_quats_wxyz must have shape (T, J, 4), got {q.shape}")
    t, n = q.shape[:2]
    root = np.asarray(root_translation, dtype=np.float64)
    if root.shape != (t, 3):
        raise ValueError(f"root_translation must have shape ({t}, 3), got {root.shape}")
    off = np.asarray(rest_offsets, dtype=np.float64)
    if off.shape not in ((n, 3), (t, n, 3)):
        raise ValueError(f"rest_offsets must have shape ({n}, 3) or ({t}, {n}, 3), got {off.shape}")
    off = np.broadcast_to(off, (t, n, 3))
    p = _check_tree(parents, n)
    q = quat_normalize_wxyz(q)
    glob = np.empty_like(q)
    pos = np.empty((t, n, 3))
    glob[:, 0] = q[:, 0]
    pos[:, 0] = root + off[:, 0]
    for j in range(1, n):
        glob[:, j] = quat_multiply_wxyz(glob[:, p[j]], q[:, j])
        pos[:, j] = pos[:, p[j]] + quat_apply_wxyz(glob[:, p[j]], off[:, j])
    return pos, glob


def forward_kinematics(local_quats_wxyz: np.ndarray, root_translation: np.ndarray,
                       rest_offsets: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Joint positions (T, J, 3) metres; see :func:`forward_kinematics_with_rotations`."""
    return forward_kinematics_with_rotations(local_quats_wxyz, root_translation, rest_offsets, parents)[0]


_EYE = np.eye(3)[None, None]  # (1, 1, 3, 3): the parent rotation of the root
_EYE.flags.writeable = False


# --- inverse kinematics: the plan -------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class IKLevel:
    """The non-leaf joints at one depth of the tree; their parents are solved before them.

    ``singles`` (S,) have one child (those with a second-direction rule first, rows ``twist``
    of the plan's twist tables), with their parents (0 at the root), their children and the
    children's rest offsets (S, 3, 1); ``multis`` (m,) have several (rows ``multi`` of the
    plan's multi-child tables), with their parents.
    """

    root: bool
    singles: np.ndarray
    singles_parent: np.ndarray
    singles_child: np.ndarray
    singles_rest: np.ndarray
    twist: slice
    multis: np.ndarray
    multis_parent: np.ndarray
    multi: slice


@dataclass(frozen=True, eq=False)
class IKPlan:
    """What the inverse kinematics needs of a skeleton and its rest pose, computed once.

    Build it with :func:`plan_ik`; :func:`solve_ik` then solves one frame or a clip. Arrays are
    read-only. M joints have several children (K at most), R joints a second-direction rule
    (hinge, spine, head; see the module docstring); both tables are in the order of ``levels``.

    Attributes:
        parents: (J,) parent per joint (root -1 at index 0, parents first).
        rest_offsets, rest_positions: (J, 3) metres, the rest pose.
        children: the children of each joint.
        rules: per joint "leaf", "multi", "swing", "hinge", "spine" or "head".
        levels: the non-leaf joints by depth (:class:`IKLevel`); leaves: (L,) the others.
        multi_children: (M, K) (short rows padded with their first child);
            multi_rest_dirs (M, K, 3) unit; multi_rest_lengths (M, K) metres, 0 for padding.
        twist_child: (R,); twist_hinge: (R,) bool, the rule is a hinge.
        twist_lines: (R, 4) joints a, b, c, d; with u = unit(a - b), v = unit(c - d) the
            second direction is bone x u for a hinge (a, b = grandchild, child), else u + v
            (spine: the hip and shoulder lines; head: (head, neck) and v = 0).
        twist_have: (R, 4) joints that must be present for the second direction.
        twist_rest_perp: (R, 3, 1) unit rest second direction, perpendicular to the bone;
        twist_rest_basis_t: (R, 3, 3) the transposed rest frame (bone, second, their cross).
    """

    parents: np.ndarray
    rest_offsets: np.ndarray
    rest_positions: np.ndarray
    children: tuple[tuple[int, ...], ...]
    rules: tuple[str, ...]
    levels: tuple[IKLevel, ...]
    leaves: np.ndarray
    multi_children: np.ndarray
    multi_rest_dirs: np.ndarray
    multi_rest_lengths: np.ndarray
    twist_child: np.ndarray
    twist_hinge: np.ndarray
    twist_lines: np.ndarray
    twist_have: np.ndarray
    twist_rest_perp: np.ndarray
    twist_rest_basis_t: np.ndarray



def bvh_joint_positions(motion) -> np.ndarray:
    """(T, J, 3) float64 world joint positions in metres of a :class:`mocap.io.bvh.BvhMotion`
    (file axes, usually +Y up), by forward kinematics; per-frame joint offsets where the file
    animates them, else the rest offsets."""
    offsets = motion.joint_offsets if motion.joint_offsets is not None else motion.rest_offsets
    return forward_kinematics(motion.local_quats_wxyz, motion.root_translation, offsets, motion.parents)

def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.add.reduce(a * b, axis=-1)


_NEXT, _PREV = np.array([1, 2, 0]), np.array([2, 0, 1])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., _NEXT] * b[..., _PREV] - a[..., _PREV] * b[..., _NEXT]


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v / |v|, |v|) along the last axis; vectors shorter than 1e-12 stay as they are."""
    n = np.sqrt(np.add.reduce(v * v, axis=-1, keepdims=True))
    return v / np.where(n > 1e-12, n, 1.0), n[..., 0]


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    s = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _basis(e1: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal columns: unit e1, secondary made perpendicular, their cross."""
    e2, _ = _unit(secondary - _dot(secondary, e1)[..., None] * e1)
    return np.stack([e1, e2, _cross(e1, e2)], -1)


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False


def _joint_roles(skeleton: Skeleton | None, kids: Sequence[Sequence[int]], parents: np.ndarray) -> dict[int, tuple]:
    """Per single-child joint with a second-direction rule, that rule (MOTION21 names only)."""
    roles: dict[int, tuple] = {}
    if skeleton is None:
        return roles
    names = skeleton.joint_names
    for name, flex in HINGE_FLEX_DIRECTIONS.items():
        if name in names:
            j = names.index(name)
            if len(kids[j]) == 1 and len(kids[kids[j][0]]) == 1:
                roles[j] = ("hinge", flex)
    need = ("spine", "left_hip", "right_hip", "left_shoulder", "right_shoulder")
    if all(x in names for x in need) and len(kids[names.index("spine")]) == 1:
        roles[names.index("spine")] = ("spine", *(names.index(x) for x in need[1:]))
    if "head" in names and len(kids[names.index("head")]) == 1 and parents[names.index("head")] >= 0:
        roles[names.index("head")] = ("head",)
    return roles


def _twist_row(j: int, role: tuple, kids, parents, off: np.ndarray, rest_pos: np.ndarray) -> tuple:
    """(lines, have, rest second direction) of twist joint ``j`` (see :class:`IKPlan`)."""
    c = kids[j][0]
    if role[0] == "hinge":  # the limb plane's normal; its rest direction: the knee / elbow axis
        g = kids[c][0]
        return (g, c, g, g), (g,) * 4, _cross(off[c], np.array(role[1]))
    if role[0] == "spine":  # halfway between the hip line and the shoulder line
        lh, rh, ls, rs = role[1:]
        second = _unit(rest_pos[lh] - rest_pos[rh])[0] + _unit(rest_pos[ls] - rest_pos[rs])[0]
        return (lh, rh, ls, rs), (lh, rh, ls, rs), second
    return (j, parents[j], j, j), (parents[j],) * 4, off[j]  # head: the neck bone


def plan_ik(parents: Sequence[int], rest_offsets: np.ndarray, *, skeleton: Skeleton | None = MOTION21) -> IKPlan:
    """The :class:`IKPlan` of a tree and its rest pose: build it once, solve many frames.

    Args:
        parents: (J,) parent index per joint (root = -1 at index 0, parents first).
        rest_offsets: (J, 3) metres, rest pose offset of each joint from its parent.
        skeleton: names the joints so the MOTION21 twist rules apply (see the module
            docstring); its parents must equal ``parents``. ``None``: generic rules only.
    """
    off = np.array(rest_offsets, dtype=np.float64)
    if off.ndim != 2 or off.shape[1] != 3:
        raise ValueError(f"rest_offsets must have shape (J, 3), got {off.shape}")
    n = len(off)
    p = _check_tree(parents, n)
    if skeleton is not None and (skeleton.parents is None or tuple(skeleton.parents) != tuple(int(v) for v in p)):
        raise ValueError(f"parents do not match skeleton {skeleton.name}; pass skeleton=None for a generic tree")
    kids = tuple(tuple(c for c in range(n) if p[c] == j) for j in range(n))
    rest_pos = rest_positions(off, p)
    roles = _joint_roles(skeleton, kids, p)
    depth = np.zeros(n, dtype=np.int64)
    for j in range(1, n):
        depth[j] = depth[p[j]] + 1

    levels, multi, twist = [], [], []
    for d in range(int(depth.max()) + 1):
        at = [j for j in range(n) if depth[j] == d]
        singles = sorted((j for j in at if len(kids[j]) == 1), key=lambda j: j not in roles)  # twist joints first
        multis = [j for j in at if len(kids[j]) > 1]
        if not singles and not multis:
            continue
        child = np.array([kids[j][0] for j in singles], dtype=np.int64)
        levels.append(IKLevel(
            root=d == 0, singles=np.array(singles, dtype=np.int64), singles_parent=np.maximum(p[singles], 0),
            singles_child=child, singles_rest=off[child].reshape(-1, 3, 1),
            twist=slice(len(twist), len(twist) + sum(j in roles for j in singles)),
            multis=np.array(multis, dtype=np.int64), multis_parent=np.maximum(p[multis], 0),
            multi=slice(len(multi), len(multi) + len(multis))))
        twist += [j for j in singles if j in roles]
        multi += multis

    k = max((len(kids[j]) for j in multi), default=1)
    multi_children = np.array([list(kids[j]) + [kids[j][0]] * (k - len(kids[j])) for j in multi],
                              dtype=np.int64).reshape(len(multi), k)
    counts = np.array([len(kids[j]) for j in multi], dtype=np.int64).reshape(-1, 1)
    rows = [_twist_row(j, roles[j], kids, p, off, rest_pos) for j in twist]
    perps, bases = [], []
    for j, (_, _, second) in zip(twist, rows):
        bone = off[kids[j][0]]
        u = _unit(bone)[0]
        perp = second - np.dot(second, u) * u
        perps.append(_unit(perp)[0])
        bases.append(_basis(u, perp).T)
    plan = IKPlan(
        parents=p, rest_offsets=off, rest_positions=rest_pos, children=kids,
        rules=tuple("leaf" if not kids[j] else "multi" if len(kids[j]) > 1 else roles.get(j, ("swing",))[0]
                    for j in range(n)),
        levels=tuple(levels), leaves=np.array([j for j in range(n) if not kids[j]], dtype=np.int64),
        multi_children=multi_children, multi_rest_dirs=_unit(off[multi_children])[0],
        multi_rest_lengths=_unit(off[multi_children])[1] * (np.arange(k) < counts),
        twist_child=np.array([kids[j][0] for j in twist], dtype=np.int64),
        twist_hinge=np.array([roles[j][0] == "hinge" for j in twist], dtype=bool),
        twist_lines=np.array([r[0] for r in rows], dtype=np.int64).reshape(-1, 4),
        twist_have=np.array([r[1] for r in rows], dtype=np.int64).reshape(-1, 4),
        twist_rest_perp=np.array(perps).reshape(-1, 3, 1), twist_rest_basis_t=np.array(bases).reshape(-1, 3, 3))
    for level in (plan, *levels):
        _read_only(*vars(level).values())
    return plan


# --- inverse kinematics: the solution ----------------------------------------------------------

def inverse_kinematics(joints: np.ndarray, *, parents: Sequence[int], rest_offsets: np.ndarray,
                       skeleton: Skeleton | None = MOTION21) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations and root translation that reproduce the bone directions of ``joints``.

    Args:
        joints: (T, J, 3) world positions in metres, +Y up; NaN where missing.
        parents: (J,) parent index per joint (root = -1 at index 0, parents first).
        rest_offsets: (J, 3) metres, rest pose offset of each joint from its parent.
        skeleton: names the joints so the MOTION21 twist rules apply (see the module
            docstring); its parents must equal ``parents``. ``None``: generic rules only.
    Returns:
        local_quats_wxyz (T, J, 4) float64, finite, sign-continuous over time, and
        root_translation (T, 3) float64 metres (NaN where the root joint is NaN).
    """
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"joints must have shape (T, J, 3), got {x.shape}")
    off = np.asarray(rest_offsets, dtype=np.float64)
    if off.shape != (x.shape[1], 3):
        raise ValueError(f"rest_offsets must have shape ({x.shape[1]}, 3), got {off.shape}")
    quats = quat_continuous_wxyz(solve_ik(plan_ik(parents, off, skeleton=skeleton), x), axis=0)
    root_translation = np.where(np.isfinite(x[:, :1]).all(-1), x[:, 0] - off[0], np.nan)
    return quats, root_translation


def solve_ik(plan: IKPlan, joints: np.ndarray) -> np.ndarray:
    """Local rotations of one frame or of many, each frame on its own (the live path).

    Args:
        plan: :func:`plan_ik` of the skeleton and its rest pose.
        joints: (J, 3) or (T, J, 3) world positions in metres, +Y up; NaN where missing.
    Returns:
        (J, 4) or (T, J, 4) local rotations (w, x, y, z), float64, finite, w >= 0; over
        time, make them sign-continuous with :func:`mocap.rotations.quat_continuous_wxyz`.
    """
    x = np.asarray(joints, dtype=np.float64)
    n = len(plan.parents)
    if x.shape[-2:] != (n, 3) or x.ndim not in (2, 3):
        raise ValueError(f"joints must have shape ({n}, 3) or (T, {n}, 3), got {x.shape}")
    glob = _global_rotmats(plan, x.reshape(-1, n, 3))
    local = np.swapaxes(glob[:, np.maximum(plan.parents, 0)], -1, -2) @ glob
    local[:, 0] = glob[:, 0]
    return matrix_to_quat_wxyz(local).reshape(x.shape[:-1] + (4,))


def _global_rotmats(plan: IKPlan, x: np.ndarray) -> np.ndarray:
    """(T, J, 3) joints -> (T, J, 3, 3) global rotations (rest-relative, world axes)."""
    t, n = x.shape[:2]
    par = np.maximum(plan.parents, 0)
    finite = np.isfinite(x).all(-1)  # (T, J)
    xz = np.where(finite[..., None], x, 0.0)
    # Every joint's bone from its parent: direction, length, whether it is observed.
    dirs, lengths = _unit(xz - xz[:, par])
    present = finite & finite[:, par] & (lengths > 1e-12)
    present[:, 0] = False
    if len(plan.multi_children):  # Kabsch fit of the rest offsets onto the present children
        ch = plan.multi_children
        child_ok = present[:, ch]  # (T, M, K)
        # Weight |rest offset| x |observed offset|: the least-squares fit of the offset
        # vectors, so a long bone (pelvis -> spine, 25 cm) outweighs a short one (pelvis ->
        # hip, 8 cm) when the trunk leans against the hips.
        weights = child_ok * plan.multi_rest_lengths * lengths[:, ch]
        kabsch, determined = kabsch_rotations(plan.multi_rest_dirs, dirs[:, ch], weights)
    if len(plan.twist_child):
        twist = _twist_terms(plan, xz, finite, dirs, present)

    glob = np.empty((t, n, 3, 3))
    glob[:, 0] = np.eye(3)  # a root without children
    for level in plan.levels:
        if len(level.multis):
            m = level.multi
            rot = kabsch[:, m]
            if not determined[:, m].all():  # the minimal swing to the first present child
                parent_rot = _EYE if level.root else glob[:, level.multis_parent]
                first = np.argmax(child_ok[:, m], -1)  # (T, m)
                rows = np.arange(m.start, m.stop)[None]
                fallback = _swing(parent_rot, plan.multi_rest_dirs[rows, first][..., None],
                                  np.take_along_axis(dirs, ch[rows, first][..., None], 1), child_ok[:, m].any(-1))
                rot = np.where(determined[:, m, None, None], rot, fallback)
            glob[:, level.multis] = rot
        if len(level.singles):
            parent_rot = _EYE if level.root else glob[:, level.singles_parent]
            child = level.singles_child
            rot = _swing(parent_rot, level.singles_rest, dirs[:, child], present[:, child])
            if level.twist.stop > level.twist.start:
                r = level.twist.stop - level.twist.start
                rot[:, :r] = _twist(plan, twist, level.twist, rot[:, :r], parent_rot[:, :r])
            glob[:, level.singles] = rot
    glob[:, plan.leaves] = glob[:, par[plan.leaves]]
    return glob


def _swing(parent_rot: np.ndarray, rest: np.ndarray, seen: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Global rotations (T, n, 3, 3): the minimal swing from the parent's frame (T, n, 3, 3)
    turning the carried rest vector (n, 3, 1) onto the observed direction ``seen`` (T, n, 3);
    the parent's frame itself where the bone is not observed (``ok`` (T, n) False)."""
    carried = (parent_rot @ rest)[..., 0]
    swing = rotation_matrix_between_vectors(carried, np.where(ok[..., None], seen, carried)) @ parent_rot
    return np.where(ok[..., None, None], swing, parent_rot)


def kabsch_rotations(rest_dirs: np.ndarray, world_dirs: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations R (T, M, 3, 3) minimising sum_k w |R r_k - d_k|^2 and whether they are determined (T, M).

    rest_dirs (M, K, 3) and world_dirs (T, M, K, 3) unit vectors, weights (T, M, K).
    """
    h = np.einsum("tmk,tmki,mkj->tmij", weights, world_dirs, rest_dirs)
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    u[..., 2] *= np.where(d == 0, 1.0, d)[..., None]
    return u @ vt, s[..., 1] > 1e-6 * np.maximum(s[..., 0], 1e-300)


def _twist_terms(plan: IKPlan, xz: np.ndarray, finite: np.ndarray, dirs: np.ndarray,
                 present: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per twist joint (T, R): bone direction, observed, the unit second direction made
    perpendicular to the bone, how far it is trusted (0: the fallback twist), and the sign a
    hinge's plane normal takes when it disagrees with the flex direction."""
    d, valid = dirs[:, plan.twist_child], present[:, plan.twist_child]
    a, b, c, e = plan.twist_lines.T
    line1, line2 = _unit(xz[:, a] - xz[:, b])[0], _unit(xz[:, c] - xz[:, e])[0]
    hinge = plan.twist_hinge[:, None]  # (R, 1)
    normal = np.where(hinge, _cross(d, line1), line1 + line2)
    bend = np.degrees(np.arctan2(_unit(normal)[1], _dot(d, line1)))  # hinges: the knee / elbow angle
    perp_unit, perp_len = _unit(normal - _dot(normal, d)[..., None] * d)
    confidence = np.where(plan.twist_hinge, _smoothstep(np.minimum(bend, 180.0 - bend), 0.0, _PLANE_SURE_DEG),
                          _smoothstep(perp_len, *_SECONDARY_RAMP))
    confidence = np.where(finite[:, plan.twist_have].all(-1) & valid, confidence, 0.0)
    # Below _FLEX_SURE_DEG a bend against the flex direction reads as hyperextension.
    disagree_sign = np.where(plan.twist_hinge, 2.0 * _smoothstep(bend, _PLANE_SURE_DEG, _FLEX_SURE_DEG) - 1.0, 1.0)
    return d, valid, perp_unit, confidence, disagree_sign


def _twist(plan: IKPlan, terms: tuple[np.ndarray, ...], rows: slice, swing: np.ndarray,
           parent_rot: np.ndarray) -> np.ndarray:
    """Global rotations (T, r, 3, 3) of twist joints ``rows`` from their swings: the bone
    direction plus the second direction, blended into the swing's twist where it degenerates."""
    d, valid, perp_unit, confidence, disagree_sign = (v[:, rows] for v in terms)
    fallback = (swing @ plan.twist_rest_perp[rows])[..., 0]
    sign = np.where(_dot(perp_unit, fallback) >= 0, 1.0, disagree_sign)
    second = (confidence * sign)[..., None] * perp_unit + (1.0 - confidence)[..., None] * fallback
    second = np.where(_unit(second)[1][..., None] > 1e-9, second, fallback)
    rot = _basis(d, second) @ plan.twist_rest_basis_t[rows]
    return np.where(valid[..., None, None], rot, parent_rot)

