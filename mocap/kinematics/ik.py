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
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mocap.rotations import (
    matrix_to_quat_wxyz,
    quat_apply_wxyz,
    quat_continuous_wxyz,
    quat_multiply_wxyz,
    quat_normalize_wxyz,
    quat_wxyz_to_matrix,
    rotation_between_vectors,
)
from mocap.skeletons import MOTION21, Skeleton

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


# --- inverse kinematics helpers (all (T, 3) vectors or (T, 3, 3) matrices) -------------------

def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 1e-12, n, 1.0), n[..., 0]


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    s = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def _basis(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal columns: primary, secondary made perpendicular, their cross."""
    e1, _ = _unit(primary)
    e2, _ = _unit(secondary - np.sum(secondary * e1, -1, keepdims=True) * e1)
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


def _swing(parent_rot: np.ndarray, rest_dir: np.ndarray, world_dir: np.ndarray) -> np.ndarray:
    """Global rotation = minimal rotation taking parent_rot @ rest_dir onto world_dir, times parent_rot."""
    carried = parent_rot @ rest_dir
    return quat_wxyz_to_matrix(rotation_between_vectors(carried, world_dir)) @ parent_rot


def _kabsch(rest_dirs: np.ndarray, world_dirs: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations R (T, 3, 3) minimising sum w |R r - d|^2 and whether they are determined (T,).

    rest_dirs (K, 3) and world_dirs (T, K, 3) unit vectors, weights (T, K).
    """
    h = np.einsum("tk,tki,kj->tij", weights, world_dirs, rest_dirs)
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    fix = np.ones((h.shape[0], 3))
    fix[:, 2] = d
    rot = (u * fix[:, None, :]) @ vt
    ok = s[:, 1] > 1e-6 * np.maximum(s[:, 0], 1e-300)
    return rot, ok


def _joint_roles(skeleton: Skeleton | None, n: int, parents: np.ndarray) -> dict[int, tuple]:
    """Per single-child joint, its rule for the second direction (MOTION21 names only)."""
    roles: dict[int, tuple] = {}
    if skeleton is None:
        return roles
    names = skeleton.joint_names
    kids = [[c for c in range(n) if parents[c] == j] for j in range(n)]
    for name, flex in HINGE_FLEX_DIRECTIONS.items():
        if name in names:
            j = names.index(name)
            if len(kids[j]) == 1 and len(kids[kids[j][0]]) == 1:
                roles[j] = ("hinge", kids[j][0], kids[kids[j][0]][0], np.array(flex))
    need = ("spine", "left_hip", "right_hip", "left_shoulder", "right_shoulder")
    if all(x in names for x in need) and len(kids[names.index("spine")]) == 1:
        roles[names.index("spine")] = ("spine", *(names.index(x) for x in need[1:]))
    if "head" in names and len(kids[names.index("head")]) == 1 and parents[names.index("head")] >= 0:
        roles[names.index("head")] = ("head",)
    return roles


def _rest_positions(rest_offsets: np.ndarray, parents: np.ndarray) -> np.ndarray:
    pos = np.zeros_like(rest_offsets)
    pos[0] = rest_offsets[0]
    for j in range(1, len(parents)):
        pos[j] = pos[parents[j]] + rest_offsets[j]
    return pos


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
    t, n = x.shape[:2]
    p = _check_tree(parents, n)
    off = np.asarray(rest_offsets, dtype=np.float64)
    if off.shape != (n, 3):
        raise ValueError(f"rest_offsets must have shape ({n}, 3), got {off.shape}")
    if skeleton is not None and (skeleton.parents is None or tuple(skeleton.parents) != tuple(int(v) for v in p)):
        raise ValueError(f"parents do not match skeleton {skeleton.name}; pass skeleton=None for a generic tree")
    roles = _joint_roles(skeleton, n, p)
    rest_pos = _rest_positions(off, p)
    kids = [[c for c in range(n) if p[c] == j] for j in range(n)]
    finite = np.isfinite(x).all(-1)  # (T, J)
    xz = np.where(finite[..., None], x, 0.0)
    eye = np.broadcast_to(np.eye(3), (t, 3, 3))
    glob = np.empty((t, n, 3, 3))

    for j in range(n):
        parent_rot = eye if p[j] < 0 else glob[:, p[j]]
        ch = kids[j]
        if not ch:
            glob[:, j] = parent_rot
        elif len(ch) >= 2:
            glob[:, j] = _solve_multi(j, ch, xz, finite, off, parent_rot)
        else:
            glob[:, j] = _solve_single(j, ch[0], roles.get(j), xz, finite, off, rest_pos, parent_rot, p)

    local = glob.copy()
    for j in range(1, n):
        local[:, j] = np.swapaxes(glob[:, p[j]], -1, -2) @ glob[:, j]
    quats = quat_continuous_wxyz(matrix_to_quat_wxyz(local), axis=0)
    root_translation = np.where(finite[:, :1], x[:, 0] - off[0], np.nan)
    return quats, root_translation


def _solve_multi(j, children, xz, finite, off, parent_rot):
    rest_dirs = np.stack([_unit(off[c])[0] for c in children])
    world = np.stack([xz[:, c] - xz[:, j] for c in children], 1)
    world_dirs, lengths = _unit(world)
    present = (finite[:, children] & finite[:, j:j + 1] & (lengths > 1e-12)).astype(np.float64)
    # Kabsch on the offset vectors, not the unit directions: weight |rest offset| x |observed
    # offset| minimises the children's position error, so a long bone (pelvis -> spine, 25 cm)
    # outweighs a short one (pelvis -> hip, 8 cm) when the trunk leans against the hips
    weights = present * np.linalg.norm(off[children], axis=-1) * lengths
    rot, ok = _kabsch(rest_dirs, world_dirs, weights)
    # Not determined by the present children: minimal swing to the first present child.
    fallback = parent_rot.copy()
    for k in reversed(range(len(children))):
        use = present[:, k] > 0
        if use.any():
            sw = _swing(parent_rot[use], rest_dirs[k], world_dirs[use, k])
            fallback[use] = sw
    return np.where(ok[:, None, None], rot, fallback)


def _solve_single(j, c, role, xz, finite, off, rest_pos, parent_rot, parents):
    valid = finite[:, j] & finite[:, c]
    bone = xz[:, c] - xz[:, j]
    d, blen = _unit(bone)
    valid &= blen > 1e-12
    rest_bone = off[c]
    swing = _swing(parent_rot, rest_bone, np.where(valid[:, None], d, parent_rot @ rest_bone))
    if role is None:
        return np.where(valid[:, None, None], swing, parent_rot)

    kind = role[0]
    if kind == "hinge":
        _, _, g, flex = role
        rest_second = np.cross(rest_bone, flex)
        distal = xz[:, g] - xz[:, c]
        normal = np.cross(d, _unit(distal)[0])
        sin_b = np.linalg.norm(normal, axis=-1)
        bend = np.arctan2(sin_b, np.sum(d * _unit(distal)[0], -1))
        have = finite[:, g]
    elif kind == "spine":
        lh, rh, ls, rs = role[1:]
        hip_line, shoulder_line = xz[:, lh] - xz[:, rh], xz[:, ls] - xz[:, rs]
        normal = _unit(hip_line)[0] + _unit(shoulder_line)[0]
        rest_second = _unit(rest_pos[lh] - rest_pos[rh])[0] + _unit(rest_pos[ls] - rest_pos[rs])[0]
        have = finite[:, [lh, rh, ls, rs]].all(-1)
    else:  # head: neck -> head direction
        normal = _unit(xz[:, j] - xz[:, parents[j]])[0]
        rest_second = off[j]
        have = finite[:, parents[j]]

    rest_perp = rest_second - np.dot(rest_second, _unit(rest_bone)[0]) * _unit(rest_bone)[0]
    fallback = np.einsum("tij,j->ti", swing, _unit(rest_perp)[0])
    perp = normal - np.sum(normal * d, -1, keepdims=True) * d
    perp_unit, perp_len = _unit(perp)
    if kind == "hinge":
        confidence = _smoothstep(np.minimum(np.degrees(bend), 180.0 - np.degrees(bend)), 0.0, _PLANE_SURE_DEG)
        # Below _FLEX_SURE_DEG a bend against the flex direction reads as hyperextension.
        agrees = np.sum(perp_unit * fallback, -1) >= 0
        trust = _smoothstep(np.degrees(bend), _PLANE_SURE_DEG, _FLEX_SURE_DEG)
        sign = np.where(agrees, 1.0, 2.0 * trust - 1.0)
    else:
        confidence = _smoothstep(perp_len, *_SECONDARY_RAMP)
        sign = np.ones(len(perp_len))
    confidence = np.where(have & valid, confidence, 0.0)
    second = (confidence * sign)[:, None] * perp_unit + (1.0 - confidence)[:, None] * fallback
    second = np.where(np.linalg.norm(second, axis=-1, keepdims=True) > 1e-9, second, fallback)
    rot = _basis(d, second) @ np.swapaxes(_basis(rest_bone[None], rest_perp[None]), -1, -2)
    return np.where(valid[:, None, None], rot, parent_rot)
