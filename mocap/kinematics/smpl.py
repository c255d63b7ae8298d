"""SMPL: load a user's model file without chumpy, fit pose, shape and translation to a motion,
write AMASS-style ``.npz``.

The SMPL model files cannot ship with mocap-lift (their licence forbids it): the user
downloads ``SMPL_NEUTRAL.pkl`` (or the male/female ones) from https://smpl.is.tue.mpg.de and
points us at it. Those ``.pkl`` files are Python-2 pickles holding chumpy arrays and a
scipy sparse matrix; :func:`load_smpl_model` reads them with a restricted unpickler that
only builds numpy arrays, scipy CSC matrices and a stand-in for chumpy's ``Ch`` (whose
pickled state keeps its value under ``"x"``), so neither chumpy nor arbitrary code is
ever loaded. ``.npz`` model files (the chumpy-free form) load too.

Model arrays (V = 6890 vertices, K = 24 joints, S shape components):
``v_template`` (V, 3) metres, ``shapedirs`` (V, 3, S), ``J_regressor`` (K, V),
``kintree_table`` (2, K) (row 0: parents, root = 2**32 - 1), ``weights`` (V, K),
``posedirs`` (V, 3, 207), ``f`` (F, 3).

Kinematics follow SMPL: rest joints ``J(betas) = J_regressor @ (v_template + shapedirs @ betas)``;
``joint[0] = J[0] + trans`` rotated about itself by the global orientation; every other
joint is its parent plus the parent's global rotation applied to ``J[k] - J[parent]``.
The frame is +Y up, facing +Z, the body's left at +X: the same as MOTION21, so no axis
change happens between a motion and its fit. AMASS files are Z-up; :func:`write_amass_npz`
rotates the global orientation and translation into that frame.

The fit (:func:`fit_smpl`) needs torch (``pip install 'mocap-lift[lift]'``); it solves the
betas from bone lengths, initialises the pose with our own inverse kinematics, then refines
pose and translation with L-BFGS on the joint positions.
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mocap.errors import MocapError
from mocap.formats import Motion, atomic_path

SMPL_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
SMPL_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

#: SMPL joint <- (MOTION21 joint, weight). SMPL's foot joint sits near the ball of the
#: foot and its head joint low in the skull, so those two count less.
MOTION21_TO_SMPL: dict[str, tuple[str, float]] = {
    "pelvis": ("pelvis", 1.0), "spine2": ("spine", 0.5), "neck": ("neck", 1.0), "head": ("head", 0.3),
    **{f"{s}_{j}": (f"{s}_{j}", 1.0) for s in ("left", "right")
       for j in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")},
    "left_foot": ("left_foot_index", 0.5), "right_foot": ("right_foot_index", 0.5),
}

WHERE_TO_GET = ("download SMPL from https://smpl.is.tue.mpg.de (register, accept the licence, "
                "'Download version 1.1.0 for Python') and pass the path of SMPL_NEUTRAL.pkl (or .npz)")
_REQUIRED = ("v_template", "shapedirs", "J_regressor", "kintree_table", "weights", "f")


@dataclass(frozen=True)
class SMPLModel:
    """The arrays of one SMPL model file (see the module docstring); numpy only."""

    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, S)
    J_regressor: np.ndarray  # (K, V) dense
    parents: tuple[int, ...]  # (K,)
    weights: np.ndarray  # (V, K)
    faces: np.ndarray  # (F, 3)
    posedirs: np.ndarray | None = None  # (V, 3, 207)

    @property
    def num_betas(self) -> int:
        return int(self.shapedirs.shape[2])

    def rest_joints(self, betas: np.ndarray | None = None) -> np.ndarray:
        """(K, 3) metres: rest joint positions for ``betas`` (S,) (zeros: the template)."""
        j0, jdirs = self.joint_shape_basis()
        if betas is None:
            return j0.copy()
        b = np.asarray(betas, np.float64)
        return j0 + jdirs[..., : b.shape[0]] @ b

    def joint_shape_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) template joints and (K, 3, S) their change per beta (both linear in the mesh)."""
        j0 = self.J_regressor @ self.v_template
        jdirs = np.einsum("kv,vcs->kcs", self.J_regressor, self.shapedirs)
        return j0, jdirs


class _ChStandIn:
    """What a pickled ``chumpy.ch.Ch`` becomes: its value, from the pickled state's ``"x"``."""

    def __setstate__(self, state: object) -> None:
        value = state.get("x") if isinstance(state, dict) else None
        self.value = None if value is None else np.asarray(value)


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds numpy arrays, scipy CSC matrices and chumpy stand-ins; refuses everything else."""

    def find_class(self, module: str, name: str):
        import codecs
        import copyreg

        import numpy.core.multiarray as multiarray

        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy.core.multiarray", "scalar"): multiarray.scalar,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("copy_reg", "_reconstructor"): copyreg._reconstructor,
            ("copyreg", "_reconstructor"): copyreg._reconstructor,
            ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
        }
        safe_builtins = {"object": object, "set": set, "frozenset": frozenset, "list": list, "dict": dict,
                         "tuple": tuple, "slice": slice}  # containers inside chumpy's pickled state
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module in ("__builtin__", "builtins") and name in safe_builtins:
            return safe_builtins[name]
        if module.startswith("chumpy"):
            return _ChStandIn
        if module.startswith("scipy.sparse") and name == "csc_matrix":
            from scipy.sparse import csc_matrix

            return csc_matrix
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an SMPL model file")


def _plain(value: object) -> object:
    """Chumpy stand-ins -> arrays, sparse -> dense arrays, everything else unchanged."""
    if isinstance(value, _ChStandIn):
        return value.value
    if hasattr(value, "toarray") and callable(value.toarray):
        return np.asarray(value.toarray())
    return value


def load_smpl_model(path: str | os.PathLike) -> SMPLModel:
    """Read an SMPL model from ``.pkl`` (official, chumpy inside; no chumpy needed) or ``.npz``.

    Raises MocapError naming where to get the file when it is missing, and the missing
    keys when it is not an SMPL model.
    """
    p = Path(path)
    if not p.is_file():
        raise MocapError(f"SMPL model file not found: {p}; {WHERE_TO_GET}")
    try:
        if p.suffix.lower() == ".npz":
            with np.load(p, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        else:
            raw = _RestrictedUnpickler(io.BytesIO(p.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, ValueError, EOFError, OSError) as e:
        raise MocapError(f"{p} is not a readable SMPL model ({e}); {WHERE_TO_GET}") from None
    if not isinstance(raw, dict) or any(k not in raw for k in _REQUIRED):
        missing = [k for k in _REQUIRED if not isinstance(raw, dict) or k not in raw]
        raise MocapError(f"{p} is not an SMPL model: missing {', '.join(missing)}; {WHERE_TO_GET}")
    a = {k: _plain(v) for k, v in raw.items()}
    kintree = np.asarray(a["kintree_table"]).astype(np.int64)
    parents = tuple(-1 if (v < 0 or v >= kintree.shape[1]) else int(v) for v in kintree[0])
    shapedirs = np.asarray(a["shapedirs"], np.float64)
    model = SMPLModel(
        v_template=np.asarray(a["v_template"], np.float64), shapedirs=shapedirs,
        J_regressor=np.asarray(a["J_regressor"], np.float64), parents=parents,
        weights=np.asarray(a["weights"], np.float64), faces=np.asarray(a["f"], np.int64),
        posedirs=None if a.get("posedirs") is None else np.asarray(a["posedirs"], np.float64))
    v, k = model.v_template.shape[0], len(parents)
    if model.shapedirs.shape[:2] != (v, 3) or model.J_regressor.shape != (k, v) or model.weights.shape != (v, k):
        raise MocapError(f"{p}: inconsistent SMPL arrays (v_template {model.v_template.shape}, shapedirs "
                         f"{model.shapedirs.shape}, J_regressor {model.J_regressor.shape})")
    return model


# --- kinematics (torch) ------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        from mocap.errors import missing_extra

        raise missing_extra("torch", "lift") from None
    return torch


def _rodrigues(aa):
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (torch, differentiable at 0)."""
    torch = _torch()
    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-16)
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / (theta2 + 1e-16))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def smpl_joints_torch(rest_joints, poses, trans, parents: Sequence[int]):
    """Posed SMPL joints.

    Args:
        rest_joints: (K, 3) or (T, K, 3) rest joint positions, metres.
        poses: (T, K, 3) axis-angle local rotations (row 0: global orientation).
        trans: (T, 3) metres.
    Returns:
        (T, K, 3) joint positions, metres (torch tensor).
    """
    torch = _torch()
    rot = _rodrigues(poses)
    t = poses.shape[0]
    rest = rest_joints.expand(t, -1, -1) if rest_joints.dim() == 2 else rest_joints
    glob = [rot[:, 0]]
    pos = [rest[:, 0] + trans]
    for k in range(1, len(parents)):
        p = parents[k]
        glob.append(glob[p] @ rot[:, k])
        pos.append(pos[p] + (glob[p] @ (rest[:, k] - rest[:, p])[..., None])[..., 0])
    return torch.stack(pos, 1)


def smpl_joints(model: SMPLModel, betas: np.ndarray, poses: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(T, 24, 3) metres: posed joints of ``model`` for betas (S,), poses (T, 72) or (T, 24, 3), trans (T, 3)."""
    torch = _torch()
    poses = np.asarray(poses, np.float64).reshape(len(poses), -1, 3)
    rest = torch.from_numpy(model.rest_joints(betas))
    with torch.no_grad():
        return smpl_joints_torch(rest, torch.from_numpy(poses), torch.from_numpy(np.asarray(trans, np.float64)),
                                 model.parents).numpy()


# --- fitting -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SMPLFit:
    """SMPL parameters for a motion (AMASS conventions except the frame: +Y up here)."""

    poses: np.ndarray  # (T, 72) axis-angle radians; [:, :3] global orientation
    trans: np.ndarray  # (T, 3) metres
    betas: np.ndarray  # (S,)
    fps: float
    joints: np.ndarray  # (T, 24, 3) metres, the fitted model's joints
    error_m: float  # weighted mean distance to the targets, metres


def targets_from_motion(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """MOTION21 joints -> SMPL targets (T, 24, 3) metres (NaN where SMPL has no counterpart)
    and weights (24,)."""
    names = list(motion.joint_names)
    t = motion.num_frames
    targets = np.full((t, len(SMPL_JOINTS), 3), np.nan)
    weights = np.zeros(len(SMPL_JOINTS))
    for k, smpl_name in enumerate(SMPL_JOINTS):
        if smpl_name in MOTION21_TO_SMPL and MOTION21_TO_SMPL[smpl_name][0] in names:
            src, w = MOTION21_TO_SMPL[smpl_name]
            targets[:, k] = motion.joints[:, names.index(src)]
            weights[k] = w
    if weights.sum() == 0:
        raise MocapError(f"the motion's joints ({', '.join(names[:5])}, ...) have no SMPL counterpart")
    return targets, weights


def _fit_betas(model: SMPLModel, targets: np.ndarray, weights: np.ndarray, *, num_betas: int,
               prior: float) -> np.ndarray:
    """Betas whose rest bone lengths match the targets' median distances between adjacent targets."""
    torch = _torch()
    j0, jdirs = model.joint_shape_basis()
    pairs = []
    for k, p in enumerate(model.parents):  # nearest weighted ancestor of each weighted joint
        if weights[k] == 0:
            continue
        while p >= 0 and weights[p] == 0:
            p = model.parents[p]
        if p >= 0:
            pairs.append((p, k))
    pairs += [(1, 2), (16, 17)]  # hip width and shoulder width
    a, b = np.array(pairs).T
    d = np.linalg.norm(targets[:, a] - targets[:, b], axis=-1)
    lengths = np.nanmedian(np.where(np.isfinite(d), d, np.nan), axis=0)
    ok = np.isfinite(lengths)
    if not ok.any():
        return np.zeros(num_betas)
    a, b, lengths = a[ok], b[ok], torch.from_numpy(lengths[ok])
    j0t, jd = torch.from_numpy(j0), torch.from_numpy(jdirs[..., :num_betas])
    betas = torch.zeros(num_betas, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([betas], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        rest = j0t + jd @ betas
        loss = ((torch.linalg.norm(rest[a] - rest[b], dim=-1) - lengths) ** 2).sum() + prior * (betas ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return betas.detach().numpy()


def fit_smpl(model: SMPLModel, targets: np.ndarray, weights: np.ndarray | None = None, *, fps: float,
             num_betas: int = 10, betas: np.ndarray | None = None, shape_prior: float = 1e-4,
             pose_prior: float = 1e-4, iterations: int = 60) -> SMPLFit:
    """Fit SMPL to joint positions.

    Args:
        targets: (T, 24, 3) metres, +Y up, in SMPL joint order, NaN where not observed.
        weights: (24,) per-joint weights (default: 1 where any frame is observed).
        fps: frames per second of the motion.
        betas: (S,) fixed shape; default: solved from the targets' bone lengths.
        shape_prior, pose_prior: weights of the squared-norm priors on betas and on the
            local rotations (keeps unobserved joints such as collars and hands at rest).
    Returns:
        :class:`SMPLFit`.
    """
    torch = _torch()
    x = np.asarray(targets, np.float64)
    if x.ndim != 3 or x.shape[1:] != (len(model.parents), 3) or x.shape[0] == 0:
        raise ValueError(f"targets must have shape (T, {len(model.parents)}, 3) with T > 0, got {x.shape}")
    finite = np.isfinite(x).all(-1)
    w = (finite.any(0).astype(np.float64) if weights is None else np.asarray(weights, np.float64))
    num_betas = min(num_betas, model.num_betas)
    b = _fit_betas(model, x, w, num_betas=num_betas, prior=shape_prior) if betas is None else np.asarray(betas, np.float64)
    rest = model.rest_joints(b)

    from mocap.kinematics.ik import inverse_kinematics
    from mocap.rotations import quat_wxyz_to_axis_angle

    offsets = rest.copy()
    offsets[1:] -= rest[np.array(model.parents[1:])]
    init_x = np.where(finite[..., None] & (w[None, :, None] > 0), x, np.nan)
    quats, root = inverse_kinematics(init_x, parents=model.parents, rest_offsets=offsets, skeleton=None)
    aa0 = quat_wxyz_to_axis_angle(quats)
    root = np.where(np.isfinite(root), root, np.nanmean(root, axis=0) if np.isfinite(root).any() else 0.0)

    tx = torch.from_numpy(np.nan_to_num(x))
    tw = torch.from_numpy(finite * w[None, :])
    rest_t = torch.from_numpy(rest)
    poses = torch.tensor(aa0, dtype=torch.float64, requires_grad=True)
    trans = torch.tensor(np.nan_to_num(root), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([poses, trans], max_iter=iterations, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)
    norm = tw.sum().clamp(min=1.0)

    def closure():
        opt.zero_grad()
        j = smpl_joints_torch(rest_t, poses, trans, model.parents)
        loss = (tw[..., None] * (j - tx) ** 2).sum() / norm + pose_prior * (poses[:, 1:] ** 2).sum() / len(poses)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        joints = smpl_joints_torch(rest_t, poses, trans, model.parents).numpy()
    err = np.linalg.norm(np.nan_to_num(joints - x), axis=-1)
    error_m = float((err * tw.numpy()).sum() / max(float(tw.sum()), 1.0))
    return SMPLFit(poses=poses.detach().numpy().reshape(len(x), -1), trans=trans.detach().numpy(), betas=b,
                   fps=float(fps), joints=joints, error_m=error_m)


def fit_motion(model: SMPLModel, motion: Motion, **kwargs) -> SMPLFit:
    """Fit SMPL to a MOTION21 motion (see :func:`fit_smpl`)."""
    targets, weights = targets_from_motion(motion)
    return fit_smpl(model, targets, weights, fps=motion.fps, **kwargs)


# --- AMASS files -----------------------------------------------------------------------------------

_Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # +90 deg about X


def write_amass_npz(path: str | os.PathLike, fit: SMPLFit, *, gender: str = "neutral",
                    rest_pelvis: np.ndarray | None = None) -> None:
    """Write ``fit`` as an AMASS-style npz: ``poses`` (T, 72), ``trans`` (T, 3), ``betas`` (S,),
    ``mocap_framerate``, ``gender``, Z-up like AMASS.

    The frame change rotates the global orientation and the translation. SMPL rotates about
    the rest pelvis ``J0`` (not the origin), so ``trans`` gets ``(R - I) J0`` added; pass
    ``rest_pelvis`` (``model.rest_joints(betas)[0]``) for exact world joints in Z-up.
    """
    from mocap.rotations import axis_angle_to_quat_wxyz, matrix_to_quat_wxyz, quat_wxyz_to_axis_angle, quat_wxyz_to_matrix

    r = _Y_UP_TO_Z_UP
    poses = fit.poses.copy()
    glob = quat_wxyz_to_matrix(axis_angle_to_quat_wxyz(poses[:, :3]))
    poses[:, :3] = quat_wxyz_to_axis_angle(matrix_to_quat_wxyz(r @ glob))
    j0 = np.zeros(3) if rest_pelvis is None else np.asarray(rest_pelvis, np.float64)
    trans = (r @ (fit.trans + j0).T).T - j0
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, poses=poses, trans=trans, betas=fit.betas, mocap_framerate=np.float64(fit.fps),
                 gender=np.array(gender), surface_model_type=np.array("smpl"))


def read_amass_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an AMASS-style npz (``poses``, ``trans``, ``betas``, ``mocap_framerate``)."""
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    for key in ("poses", "trans", "betas", "mocap_framerate"):
        if key not in out:
            raise MocapError(f"{path} is not an AMASS npz: no {key!r}")
    return out
