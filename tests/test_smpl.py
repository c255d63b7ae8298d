"""SMPL loading without chumpy, fitting, AMASS files: checked against a synthetic model whose
file has SMPL's exact keys and pickle layout, and against smplx itself when installed."""
from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from mocap.errors import MocapError
from mocap.kinematics.smpl import (SMPL_JOINTS, fit_motion, fit_smpl, load_smpl_model, read_amass_npz, smpl_joints,
                        write_amass_npz)
from tests.smpl_synthetic import make_smpl_arrays, write_smpl_pkl

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("smpl")
    arrays = make_smpl_arrays(seed=3)
    write_smpl_pkl(d / "SMPL_NEUTRAL.pkl", arrays, protocol=2)
    write_smpl_pkl(d / "SMPL_P0.pkl", arrays, protocol=0)
    np.savez(d / "SMPL_NEUTRAL.npz", **{k: v for k, v in arrays.items() if isinstance(v, np.ndarray)})
    return d, arrays


def _random_pose(rng, t, scale=0.5):
    poses = rng.normal(0, scale, (t, 24, 3))
    poses[:, 0] = rng.normal(0, 1.0, (t, 3))
    return poses


@pytest.mark.parametrize("name", ["SMPL_NEUTRAL.pkl", "SMPL_P0.pkl", "SMPL_NEUTRAL.npz"])
def test_loads_official_layout_without_chumpy(model_files, name):
    d, arrays = model_files
    assert "chumpy" not in sys.modules
    m = load_smpl_model(d / name)
    assert "chumpy" not in sys.modules
    np.testing.assert_array_equal(m.shapedirs, arrays["shapedirs"])
    np.testing.assert_allclose(m.J_regressor, arrays["J_regressor"], atol=1e-15)
    assert m.parents[0] == -1 and m.parents[1:] == tuple(int(p) for p in arrays["kintree_table"][0, 1:])
    np.testing.assert_allclose(m.rest_joints(), arrays["J"], atol=1e-12)


def test_refuses_code_in_pickle_and_explains_missing_file(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    with pytest.raises(MocapError, match="refusing to load"):
        load_smpl_model(bad)
    with pytest.raises(MocapError, match="smpl.is.tue.mpg.de"):
        load_smpl_model(tmp_path / "nope.pkl")
    np.savez(tmp_path / "partial.npz", v_template=np.zeros((3, 3)))
    with pytest.raises(MocapError, match="missing shapedirs"):
        load_smpl_model(tmp_path / "partial.npz")


def test_joints_match_smplx(model_files):
    smplx = pytest.importorskip("smplx")
    from smplx.utils import Struct

    d, arrays = model_files
    m = load_smpl_model(d / "SMPL_NEUTRAL.pkl")
    rng = np.random.default_rng(1)
    t = 5
    betas, poses, trans = rng.normal(0, 1, 10), _random_pose(rng, t), rng.normal(0, 0.5, (t, 3))
    ours = smpl_joints(m, betas, poses, trans)
    struct = Struct(**{k: v for k, v in arrays.items()})
    body = smplx.SMPL(str(d), data_struct=struct, batch_size=t, dtype=torch.float64)
    out = body(betas=torch.tensor(np.tile(betas, (t, 1))), global_orient=torch.tensor(poses[:, 0]),
               body_pose=torch.tensor(poses[:, 1:].reshape(t, -1)), transl=torch.tensor(trans))
    np.testing.assert_allclose(ours, out.joints[:, :24].detach().numpy(), atol=1e-6)  # smplx adds 1e-8 to angles


def test_fit_recovers_synthetic_targets_within_1cm(model_files):
    d, _ = model_files
    m = load_smpl_model(d / "SMPL_NEUTRAL.pkl")
    rng = np.random.default_rng(7)
    t = 40
    betas = rng.normal(0, 1.0, 10)
    poses = _random_pose(rng, t, scale=0.35)
    trans = rng.normal(0, 0.3, (t, 3))
    targets = smpl_joints(m, betas, poses, trans)
    fit = fit_smpl(m, targets, fps=30.0)
    err = np.linalg.norm(fit.joints - targets, axis=-1)
    assert err.mean() < 0.01, err.mean()
    assert fit.error_m == pytest.approx(err.mean(), rel=1e-6)
    # the fitted joints are the model's own joints for the returned parameters
    np.testing.assert_allclose(smpl_joints(m, fit.betas, fit.poses, fit.trans), fit.joints, atol=1e-9)
    # bone lengths fixed the shape: rest bones within 5 mm of the truth
    rest_true, rest_fit = m.rest_joints(betas), m.rest_joints(fit.betas)
    p = np.array(m.parents[1:])
    bone = lambda r: np.linalg.norm(r[1:] - r[p], axis=-1)  # noqa: E731
    assert np.abs(bone(rest_true) - bone(rest_fit)).max() < 0.005


def test_fit_motion_and_amass_round_trip(model_files, tmp_path):
    from mocap.formats import Motion
    from mocap.skeletons import MOTION21

    d, _ = model_files
    m = load_smpl_model(d / "SMPL_NEUTRAL.pkl")
    rng = np.random.default_rng(2)
    t = 20
    truth = smpl_joints(m, rng.normal(0, 0.5, 10), _random_pose(rng, t, 0.25), rng.normal(0, 0.2, (t, 3)))
    # a MOTION21 motion whose mapped joints are SMPL's joints (the others made up)
    names = MOTION21.joint_names
    j = np.zeros((t, len(names), 3))
    pairs = {"pelvis": "pelvis", "spine": "spine2", "neck": "neck", "head": "head",
             **{f"{s}_{x}": f"{s}_{x}" for s in ("left", "right") for x in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")},
             "left_foot_index": "left_foot", "right_foot_index": "right_foot"}
    for ours, smpl_name in pairs.items():
        j[:, names.index(ours)] = truth[:, SMPL_JOINTS.index(smpl_name)]
    for leaf, parent in (("left_heel", "left_ankle"), ("right_heel", "right_ankle"), ("nose", "head")):
        j[:, names.index(leaf)] = j[:, names.index(parent)] + [0, -0.05, 0.05]
    motion = Motion(joints=j, joint_names=names, parents=MOTION21.parents, fps=25.0)
    fit = fit_motion(m, motion)
    mapped = [SMPL_JOINTS.index(s) for s in pairs.values()]
    # spine1/3, collars and hands unobserved, head and feet down-weighted: a looser bound
    assert np.linalg.norm(fit.joints[:, mapped] - truth[:, mapped], axis=-1).mean() < 0.015

    out = tmp_path / "take.npz"
    write_amass_npz(out, fit, rest_pelvis=m.rest_joints(fit.betas)[0])
    z = read_amass_npz(out)
    assert z["poses"].shape == (t, 72) and z["trans"].shape == (t, 3) and float(z["mocap_framerate"]) == 25.0
    zup = smpl_joints(m, z["betas"], z["poses"], z["trans"])
    expect = fit.joints @ np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]).T  # Y-up -> Z-up
    np.testing.assert_allclose(zup, expect, atol=1e-9)


def test_cli_writes_amass_and_explains_missing_model(model_files, tmp_path, capsys):
    from mocap.cli import main
    from mocap.formats import Motion, save_motion
    from mocap.skeletons import MOTION21
    from tests.synthetic import waving_walker

    d, _ = model_files
    save_motion(tmp_path / "motion.npz", Motion(joints=waving_walker(t=12), joint_names=MOTION21.joint_names,
                                                parents=MOTION21.parents, fps=30.0))
    assert main(["smpl", str(tmp_path / "motion.npz"), "--model", str(d / "SMPL_NEUTRAL.pkl"),
                 "-o", str(tmp_path / "amass.npz")]) == 0
    z = read_amass_npz(tmp_path / "amass.npz")
    assert z["poses"].shape == (12, 72) and np.isfinite(z["poses"]).all()
    assert "mm" in capsys.readouterr().out
    assert main(["smpl", str(tmp_path / "motion.npz"), "--model", str(tmp_path / "none.pkl"), "-o", "x.npz"]) == 1
    assert "smpl.is.tue.mpg.de" in capsys.readouterr().err
