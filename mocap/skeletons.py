"""Skeletons as data tables, and mappings between them.

A :class:`Skeleton` is a table: joint names, ``parents`` (root = -1, parents before
children; ``None`` for 2D keypoint layouts that are not kinematic trees), left/right
pairs and drawing edges.

Layouts of 2D keypoints: ``MEDIAPIPE33`` (BlazePose), ``COCO17``, ``MPII16``; hands:
``HAND21`` (one hand, MediaPipe's 21 landmarks, a tree rooted at the wrist) and ``HANDS42``
(left hand then right hand).
The skeleton of 3D motion is ``MOTION21``: a kinematic tree rooted at the pelvis whose
joint names follow MediaPipe's landmark names wherever the joint exists there; with the hands
captured, ``MOTION61``: MOTION21 and each hand's 20 finger joints (named as in ``HANDS42``).

Mappings are tables too: each target joint is a weighted average of source joints
(``MAPPINGS[(src, dst)][target_name] = ((source_name, weight), ...)``).
:func:`map_joints` applies one to arrays ``(..., J_src, D)`` and yields NaN for a target
joint the source cannot provide.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A joint table.

    Attributes:
        name: layout id as stored in files (``"mediapipe33"``, ``"coco17"``, ...).
        joint_names: (J,) snake_case names.
        parents: (J,) parent index per joint, root = -1, parents before children;
            ``None`` for keypoint layouts that are not kinematic trees.
        edges: pairs of joint indices to draw.
        left_right: pairs (left index, right index) swapped by mirroring.
        fine_joints: joints drawn with thin lines (the hands: small next to the body).
    """

    name: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    parents: tuple[int, ...] | None = None
    left_right: tuple[tuple[int, int], ...] = field(default=())
    fine_joints: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        names = self.joint_names
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate joint names")
        if self.parents is not None:
            if len(self.parents) != len(names):
                raise ValueError(f"{self.name}: {len(self.parents)} parents for {len(names)} joints")
            for j, p in enumerate(self.parents):
                if not (p == -1 and j == 0) and not (0 <= p < j):
                    raise ValueError(f"{self.name}: joint {names[j]} has parent {p}; parents must come first")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of joint ``name``; ValueError naming the known joints if absent."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"{self.name} has no joint {name!r}; it has {', '.join(self.joint_names)}") from None

    def mirror_permutation(self) -> np.ndarray:
        """(J,) int: index permutation that swaps left and right joints."""
        perm = np.arange(self.num_joints)
        for left, right in self.left_right:
            perm[left], perm[right] = right, left
        return perm

    def children(self, j: int) -> list[int]:
        """Indices of the joints whose parent is ``j`` (needs ``parents``)."""
        if self.parents is None:
            raise ValueError(f"{self.name} is a keypoint layout, not a kinematic tree")
        return [c for c, p in enumerate(self.parents) if p == j]

    def descendants(self, j: int) -> list[int]:
        """Indices of every joint below ``j`` in the tree, ``j`` excluded (needs ``parents``)."""
        if self.parents is None:
            raise ValueError(f"{self.name} is a keypoint layout, not a kinematic tree")
        return descendants(self.parents, j)


def descendants(parents, root: int) -> list[int]:
    """Indices below ``root`` in a tree given as parent indices that come before their children."""
    below: set[int] = set()
    for c in range(root + 1, len(parents)):
        if parents[c] == root or parents[c] in below:
            below.add(c)
    return sorted(below)


def _pairs_by_name(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Left/right pairs found by the ``left_``/``right_`` prefixes (and ``mouth_left``)."""
    pairs = []
    for i, n in enumerate(names):
        if n.startswith("left_"):
            pairs.append((i, names.index("right_" + n[5:])))
        elif n.endswith("_left"):
            pairs.append((i, names.index(n[:-5] + "_right")))
    return tuple(pairs)


def _edges_by_name(names: tuple[str, ...], named: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in named)


def _make(name: str, names: list[str], edges: list[tuple[str, str]], parents: list[str | None] | None = None) -> Skeleton:
    t = tuple(names)
    par = None if parents is None else tuple(-1 if p is None else t.index(p) for p in parents)
    return Skeleton(name=name, joint_names=t, edges=_edges_by_name(t, edges), parents=par, left_right=_pairs_by_name(t))


# --- MediaPipe BlazePose, 33 landmarks, in the model's output order ---------------------
_MP_NAMES = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
]
_LIMBS = [(f"{s}_{a}", f"{s}_{b}") for s in ("left", "right") for a, b in
          [("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle")]]
MEDIAPIPE33 = _make("mediapipe33", _MP_NAMES, [
    ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"),
    ("left_eye_outer", "left_ear"), ("nose", "right_eye_inner"), ("right_eye_inner", "right_eye"),
    ("right_eye", "right_eye_outer"), ("right_eye_outer", "right_ear"), ("mouth_left", "mouth_right"),
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), *_LIMBS,
    *[(f"{s}_wrist", f"{s}_{f}") for s in ("left", "right") for f in ("pinky", "index", "thumb")],
    ("left_pinky", "left_index"), ("right_pinky", "right_index"),
    *[(f"{s}_ankle", f"{s}_heel") for s in ("left", "right")],
    *[(f"{s}_heel", f"{s}_foot_index") for s in ("left", "right")],
    *[(f"{s}_ankle", f"{s}_foot_index") for s in ("left", "right")],
])

# --- COCO, 17 keypoints -------------------------------------------------------------------
_COCO_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]
COCO17 = _make("coco17", _COCO_NAMES, [
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), *_LIMBS,
])

# --- MPII, 16 keypoints ---------------------------------------------------------------------
_MPII_NAMES = [
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
    "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
    "left_shoulder", "left_elbow", "left_wrist",
]
MPII16 = _make("mpii16", _MPII_NAMES, [
    ("pelvis", "left_hip"), ("pelvis", "right_hip"), ("pelvis", "thorax"), ("thorax", "upper_neck"),
    ("upper_neck", "head_top"), ("thorax", "left_shoulder"), ("thorax", "right_shoulder"), *_LIMBS,
])

# --- The skeleton of 3D motion ----------------------------------------------------------------
_MOTION = [  # (joint, parent)
    ("pelvis", None),
    ("left_hip", "pelvis"), ("left_knee", "left_hip"), ("left_ankle", "left_knee"),
    ("left_heel", "left_ankle"), ("left_foot_index", "left_ankle"),
    ("right_hip", "pelvis"), ("right_knee", "right_hip"), ("right_ankle", "right_knee"),
    ("right_heel", "right_ankle"), ("right_foot_index", "right_ankle"),
    ("spine", "pelvis"), ("neck", "spine"), ("head", "neck"), ("nose", "head"),
    ("left_shoulder", "neck"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow"),
    ("right_shoulder", "neck"), ("right_elbow", "right_shoulder"), ("right_wrist", "right_elbow"),
]
MOTION21 = _make(
    "motion21",
    [j for j, _ in _MOTION],
    [(p, j) for j, p in _MOTION if p is not None],
    [p for _, p in _MOTION],
)

#: Rest pose of MOTION21 (a T-pose): +Y up, the character faces +Z, its left is +X.
#: Per joint, the offset from its parent in metres for an adult of about 1.75 m.
REST_OFFSETS_M: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, 0.0, 0.0),
    "left_hip": (0.09, 0.0, 0.0), "left_knee": (0.0, -0.42, 0.0), "left_ankle": (0.0, -0.41, 0.0),
    "left_heel": (0.0, -0.05, -0.05), "left_foot_index": (0.0, -0.06, 0.14),
    "spine": (0.0, 0.25, 0.0), "neck": (0.0, 0.25, 0.0), "head": (0.0, 0.17, 0.0), "nose": (0.0, 0.0, 0.1),
    "left_shoulder": (0.18, 0.0, 0.0), "left_elbow": (0.28, 0.0, 0.0), "left_wrist": (0.25, 0.0, 0.0),
}
for _name, (_x, _y, _z) in list(REST_OFFSETS_M.items()):
    if _name.startswith("left_"):
        REST_OFFSETS_M["right_" + _name[5:]] = (-_x, _y, _z)


def rest_offsets(skeleton: Skeleton = MOTION21) -> np.ndarray:
    """(J, 3) float64 metres: default rest offsets (joint minus parent) of ``skeleton``."""
    return np.array([REST_OFFSETS_M[n] for n in skeleton.joint_names], dtype=np.float64)


def rest_positions(rest_offsets: np.ndarray, parents) -> np.ndarray:
    """(J, 3) float64 metres: joint positions of the rest pose, the root at ``rest_offsets[0]``.

    Args:
        rest_offsets: (J, 3) metres, offset of each joint from its parent (row 0: the root's position).
        parents: (J,) parent index per joint, parents before children; a root (-1) stands
            at its own offset.
    """
    off = np.asarray(rest_offsets, dtype=np.float64)
    if off.ndim != 2 or off.shape[1] != 3 or len(parents) != len(off):
        raise ValueError(f"rest_offsets must have shape (J, 3) with J = {len(parents)} parents, got {off.shape}")
    pos = off.copy()
    for j in range(1, len(off)):
        if parents[j] >= j:
            raise ValueError(f"parents[{j}] = {parents[j]}: parents must come before their children")
        if parents[j] >= 0:
            pos[j] = pos[parents[j]] + off[j]
    return pos


# --- Hands: MediaPipe's 21 hand landmarks, in the model's output order -----------------------
_FINGERS = {"thumb": ("cmc", "mcp", "ip", "tip"), "index_finger": ("mcp", "pip", "dip", "tip"),
            "middle_finger": ("mcp", "pip", "dip", "tip"), "ring_finger": ("mcp", "pip", "dip", "tip"),
            "pinky": ("mcp", "pip", "dip", "tip")}
_HAND = [("wrist", None)] + [(f"{f}_{j}", "wrist" if k == 0 else f"{f}_{joints[k - 1]}")
                             for f, joints in _FINGERS.items() for k, j in enumerate(joints)]
_PALM = [("index_finger_mcp", "middle_finger_mcp"), ("middle_finger_mcp", "ring_finger_mcp"),
         ("ring_finger_mcp", "pinky_mcp")]
#: one hand: a kinematic tree rooted at the wrist (joint 0); edges: the bones and the knuckle line
HAND21 = _make("hand21", [j for j, _ in _HAND], [(p, j) for j, p in _HAND if p is not None] + _PALM,
               [p for _, p in _HAND])
#: both hands, left (joints 0-20) then right (21-41), each in HAND21's order, named
#: ``left_hand_<joint>`` / ``right_hand_<joint>``; a keypoint layout (two roots, so no ``parents``)
HANDS42 = dataclasses.replace(
    _make("hands42", [f"{s}_hand_{j}" for s in ("left", "right") for j, _ in _HAND],
          [(f"{s}_hand_{a}", f"{s}_hand_{b}") for s in ("left", "right")
           for a, b in [(p, j) for j, p in _HAND if p is not None] + _PALM]),
    fine_joints=tuple(range(42)))


# --- The skeleton of 3D motion with fingers: MOTION21, then each hand's 20 finger joints --------
#: finger joints of one hand, HAND21's order without the wrist (their parents: the wrist or the
#: previous joint of the same finger)
FINGER_JOINTS = tuple(j for j, _ in _HAND[1:])
_MOTION_FINGERS = [(f"{s}_hand_{j}", f"{s}_wrist" if p == "wrist" else f"{s}_hand_{p}")
                   for s in ("left", "right") for j, p in _HAND[1:]]
#: MOTION21 and both hands' fingers (``left_hand_<joint>``, ``right_hand_<joint>``, HANDS42's names;
#: the wrists are MOTION21's): the motion skeleton when the hands were captured
MOTION61 = dataclasses.replace(
    _make("motion61", [j for j, _ in _MOTION + _MOTION_FINGERS],
          [(p, j) for j, p in _MOTION + _MOTION_FINGERS if p is not None], [p for _, p in _MOTION + _MOTION_FINGERS]),
    fine_joints=tuple(range(len(_MOTION), len(_MOTION) + len(_MOTION_FINGERS))))

#: Rest pose of the left hand's fingers (offset from the parent, metres, an adult hand of about
#: 19 cm): the arm's T-pose with the palm down (its normal -Y), fingers straight along +X, the
#: thumb in the palm's plane pointing forward and out (+X +Z). The right hand mirrors it (x negated).
_FINGER_REST_M = {
    "thumb_cmc": (0.025, -0.010, 0.020), "thumb_mcp": (0.030, 0.0, 0.024), "thumb_ip": (0.025, 0.0, 0.020),
    "thumb_tip": (0.022, 0.0, 0.018),
    "index_finger_mcp": (0.090, 0.0, 0.025), "index_finger_pip": (0.040, 0.0, 0.0),
    "index_finger_dip": (0.025, 0.0, 0.0), "index_finger_tip": (0.020, 0.0, 0.0),
    "middle_finger_mcp": (0.092, 0.0, 0.005), "middle_finger_pip": (0.045, 0.0, 0.0),
    "middle_finger_dip": (0.028, 0.0, 0.0), "middle_finger_tip": (0.022, 0.0, 0.0),
    "ring_finger_mcp": (0.087, 0.0, -0.014), "ring_finger_pip": (0.040, 0.0, 0.0),
    "ring_finger_dip": (0.027, 0.0, 0.0), "ring_finger_tip": (0.021, 0.0, 0.0),
    "pinky_mcp": (0.080, 0.0, -0.031), "pinky_pip": (0.032, 0.0, 0.0), "pinky_dip": (0.020, 0.0, 0.0),
    "pinky_tip": (0.019, 0.0, 0.0),
}
for _name, (_x, _y, _z) in _FINGER_REST_M.items():
    REST_OFFSETS_M["left_hand_" + _name] = (_x, _y, _z)
    REST_OFFSETS_M["right_hand_" + _name] = (-_x, _y, _z)


def combine_layouts(first: Skeleton, second: Skeleton) -> Skeleton:
    """One keypoint layout of ``first``'s joints followed by ``second``'s (e.g. the body and its
    hands, to draw them together); names must differ, edges and left/right pairs are kept."""
    j = first.num_joints
    return Skeleton(name=f"{first.name}+{second.name}", joint_names=first.joint_names + second.joint_names,
                    edges=first.edges + tuple((a + j, b + j) for a, b in second.edges),
                    left_right=first.left_right + tuple((a + j, b + j) for a, b in second.left_right),
                    fine_joints=first.fine_joints + tuple(a + j for a in second.fine_joints))


LAYOUTS: dict[str, Skeleton] = {s.name: s for s in (MEDIAPIPE33, COCO17, MPII16, MOTION21, MOTION61, HAND21, HANDS42)}


def get_layout(name: str) -> Skeleton:
    """The skeleton called ``name``; ValueError listing the known ones otherwise."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}") from None


def _mid(a: str, b: str) -> tuple[tuple[str, float], ...]:
    return ((a, 0.5), (b, 0.5))


_SIDES = ("left", "right")
_SAME_LIMBS = [f"{s}_{j}" for s in _SIDES for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]

# MOTION21 from the joints MediaPipe-33 and COCO-17 share (same names): the limbs and the nose
# as they are; pelvis, neck and spine from the hips and shoulders; the head between the ears.
_COCO_BODY_TO_MOTION21 = {
    **{n: ((n, 1.0),) for n in _SAME_LIMBS},
    "nose": (("nose", 1.0),),
    "pelvis": _mid("left_hip", "right_hip"),
    "neck": _mid("left_shoulder", "right_shoulder"),
    "spine": (("left_hip", 0.25), ("right_hip", 0.25), ("left_shoulder", 0.25), ("right_shoulder", 0.25)),
    "head": _mid("left_ear", "right_ear"),
}

#: Each entry maps (source layout, target layout) to {target joint: ((source joint, weight), ...)}.
#: A target joint missing from the table is not available from that source (NaN).
MAPPINGS: dict[tuple[str, str], dict[str, tuple[tuple[str, float], ...]]] = {
    ("mediapipe33", "motion21"): {
        **_COCO_BODY_TO_MOTION21,
        **{f"{s}_{j}": ((f"{s}_{j}", 1.0),) for s in _SIDES for j in ("heel", "foot_index")},
    },
    ("coco17", "motion21"): dict(_COCO_BODY_TO_MOTION21),
    ("mediapipe33", "coco17"): {n: ((n, 1.0),) for n in _COCO_NAMES},
    ("mpii16", "motion21"): {
        **{n: ((n, 1.0),) for n in _SAME_LIMBS},
        "pelvis": (("pelvis", 1.0),),
        "neck": (("thorax", 1.0),),
        "spine": _mid("pelvis", "thorax"),
        "head": _mid("upper_neck", "head_top"),
    },
    ("motion21", "coco17"): {
        **{n: ((n, 1.0),) for n in _SAME_LIMBS},
        "nose": (("nose", 1.0),),
    },
}


def mapping_matrix(src: Skeleton | str, dst: Skeleton | str) -> np.ndarray:
    """(J_dst, J_src) float64 weights; an all-zero row marks a joint ``src`` lacks."""
    src = get_layout(src) if isinstance(src, str) else src
    dst = get_layout(dst) if isinstance(dst, str) else dst
    if src.name == dst.name:
        return np.eye(src.num_joints)
    try:
        table = MAPPINGS[(src.name, dst.name)]
    except KeyError:
        known = ", ".join(f"{a}->{b}" for a, b in MAPPINGS)
        raise ValueError(f"no mapping from {src.name} to {dst.name}; known mappings: {known}") from None
    m = np.zeros((dst.num_joints, src.num_joints))
    for target, sources in table.items():
        for source, weight in sources:
            m[dst.index(target), src.index(source)] = weight
    return m


def map_joints(points: np.ndarray, src: Skeleton | str, dst: Skeleton | str) -> np.ndarray:
    """Map ``points`` (..., J_src, D) to (..., J_dst, D); NaN where a joint is unavailable.

    A target joint is NaN if any of its source joints is NaN.
    """
    m = mapping_matrix(src, dst)
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-2] != m.shape[1]:
        raise ValueError(f"expected {m.shape[1]} joints on axis -2, got shape {points.shape}")
    used = m != 0
    filled = np.nan_to_num(points)
    out = np.einsum("ds,...sk->...dk", m, filled)
    missing = np.einsum("ds,...s->...d", used.astype(np.float64), np.isnan(points).any(-1).astype(np.float64)) > 0
    missing |= ~used.any(1)
    out[missing] = np.nan
    return out


def map_confidence(confidence: np.ndarray, src: Skeleton | str, dst: Skeleton | str) -> np.ndarray:
    """Map ``confidence`` (..., J_src) to (..., J_dst): the minimum over the source joints used, 0 if unavailable."""
    m = mapping_matrix(src, dst)
    conf = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0)
    used = m != 0
    big = np.where(used, conf[..., None, :], np.inf)
    out = big.min(-1)
    out[..., ~used.any(1)] = 0.0
    return out
