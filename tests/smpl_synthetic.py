"""A synthetic SMPL model file with SMPL's exact keys, shapes and pickle layout (chumpy arrays,
a scipy CSC joint regressor, a uint32 kintree table), for tests. Not a body: vertices are
clustered around a plausible rest skeleton so that the joint regressor recovers it."""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np

from mocap.kinematics.smpl import SMPL_PARENTS

# Rest joints of a ~1.7 m adult, SMPL-like layout (+Y up, facing +Z, left = +X), metres.
REST = np.array([
    [0.0, 0.93, 0.0], [0.06, 0.84, 0.0], [-0.06, 0.84, 0.0], [0.0, 1.04, -0.02], [0.1, 0.46, 0.0],
    [-0.1, 0.46, 0.0], [0.0, 1.17, 0.0], [0.09, 0.06, -0.03], [-0.09, 0.06, -0.03], [0.0, 1.22, 0.02],
    [0.11, 0.0, 0.1], [-0.11, 0.0, 0.1], [0.0, 1.44, 0.0], [0.08, 1.35, 0.0], [-0.08, 1.35, 0.0],
    [0.0, 1.52, 0.04], [0.18, 1.38, -0.01], [-0.18, 1.38, -0.01], [0.44, 1.37, -0.03], [-0.44, 1.37, -0.03],
    [0.69, 1.38, -0.02], [-0.69, 1.38, -0.02], [0.77, 1.37, -0.02], [-0.77, 1.37, -0.02],
])


def make_smpl_arrays(seed: int = 0, num_betas: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    v, k = 6890, 24
    owner = np.arange(v) % k
    v_template = REST[owner] + rng.normal(0, 0.03, (v, 3))
    shape_per_joint = rng.normal(0, 0.015, (k, 3, num_betas))
    shapedirs = shape_per_joint[owner] + rng.normal(0, 0.002, (v, 3, num_betas))
    reg = np.zeros((k, v))
    reg[owner, np.arange(v)] = 1.0
    reg /= reg.sum(1, keepdims=True)
    weights = np.zeros((v, k))
    weights[np.arange(v), owner] = 1.0
    kintree = np.array([[2**32 - 1] + list(SMPL_PARENTS[1:]), list(range(k))], dtype=np.uint32)
    return {"v_template": v_template, "shapedirs": shapedirs, "J_regressor": reg, "kintree_table": kintree,
            "weights": weights, "posedirs": np.zeros((v, 3, 207)), "f": rng.integers(0, v, (13776, 3)).astype(np.uint32),
            "J": reg @ v_template, "bs_type": "lrotmin", "bs_style": "lbs"}


def write_smpl_pkl(path: Path, arrays: dict, protocol: int = 2) -> None:
    """Pickle like the official files: shapedirs as a chumpy ``Ch``, the regressor as CSC."""
    from scipy.sparse import csc_matrix

    ch_mod = types.ModuleType("chumpy.ch")

    class Ch:  # pickles as chumpy.ch.Ch with its value under "x", like chumpy's
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch_mod.Ch = Ch
    saved = {n: sys.modules.get(n) for n in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = types.ModuleType("chumpy"), ch_mod
    try:
        data = dict(arrays)
        sd = Ch()
        sd.__dict__.update({"x": arrays["shapedirs"], "_dirty_vars": set()})
        data["shapedirs"] = sd
        data["J_regressor"] = csc_matrix(arrays["J_regressor"])
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m
