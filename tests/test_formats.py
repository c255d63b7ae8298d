import numpy as np
import pytest

from mocap.errors import MocapError
from mocap.formats import Keypoints2D, Motion, load_keypoints, load_motion, save_keypoints, save_motion


def _kp(t=5, layout="coco17", j=17):
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 100, size=(t, j, 2)).astype(np.float32)
    kp[2, 3] = np.nan
    conf = rng.uniform(size=(t, j)).astype(np.float32)
    conf[2, 3] = 0
    return Keypoints2D(keypoints=kp, confidence=conf, layout=layout, image_size=(640, 480), fps=30.0)


def test_keypoints_round_trip(tmp_path):
    k = _kp()
    save_keypoints(tmp_path / "k.npz", k)
    r = load_keypoints(tmp_path / "k.npz")
    np.testing.assert_array_equal(r.keypoints, k.keypoints)
    np.testing.assert_array_equal(r.confidence, k.confidence)
    assert (r.layout, r.image_size, r.fps, r.world_landmarks) == ("coco17", (640, 480), 30.0, None)
    assert r.detection_rate() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["k.npz"]  # no temporary left behind


def test_motion_round_trip(tmp_path):
    j = np.random.default_rng(2).normal(size=(3, 2, 3))
    m = Motion(joints=j, joint_names=("a", "b"), parents=(-1, 0), fps=60.0, root_translation=j[:, 0])
    save_motion(tmp_path / "m.npz", m)
    r = load_motion(tmp_path / "m.npz")
    np.testing.assert_allclose(r.joints, j, atol=1e-6)
    assert r.joint_names == ("a", "b") and r.parents == (-1, 0) and r.fps == 60.0
    assert r.local_quats_wxyz is None and r.root_translation.shape == (3, 3)
    assert r.start_frame == 0 and r.valid.tolist() == [True] * 3


def test_motion_start_frame_and_valid(tmp_path):
    j = np.random.default_rng(2).normal(size=(4, 2, 3))
    m = Motion(joints=j, joint_names=("a", "b"), parents=(-1, 0), fps=30.0, start_frame=17,
               valid=np.array([True, False, False, True]))
    save_motion(tmp_path / "m.npz", m)
    r = load_motion(tmp_path / "m.npz")
    assert r.start_frame == 17 and r.valid.tolist() == [True, False, False, True]
    # a file written before these keys existed: frame 0 of the video, every frame valid
    with np.load(tmp_path / "m.npz") as data:
        old = {k: data[k] for k in data.files if k not in ("start_frame", "valid")}
    np.savez(tmp_path / "old.npz", **old)
    r = load_motion(tmp_path / "old.npz")
    assert r.start_frame == 0 and r.valid.tolist() == [True] * 4 and r.valid_frames.all()
    with pytest.raises(MocapError, match="valid must be"):
        Motion(joints=j, joint_names=("a", "b"), parents=(-1, 0), fps=30.0, valid=np.ones(3, bool))
    with pytest.raises(MocapError, match="start_frame"):
        Motion(joints=j, joint_names=("a", "b"), parents=(-1, 0), fps=30.0, start_frame=-1)


@pytest.mark.parametrize("content,match", [
    (None, "not found"),
    (b"", "not a readable"),
    (b"hello, not a zip", "not a readable"),
])
def test_bad_keypoint_files(tmp_path, content, match):
    p = tmp_path / "k.npz"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(MocapError, match=match):
        load_keypoints(p)


def test_malformed_keypoint_arrays(tmp_path):
    p = tmp_path / "k.npz"
    np.savez(p, keypoints=np.zeros((3, 17, 2)))
    with pytest.raises(MocapError, match="missing confidence"):
        load_keypoints(p)
    np.savez(p, keypoints=np.zeros((3, 16, 2)), confidence=np.zeros((3, 16)), layout="coco17",
             image_size=[10, 10], fps=30.0)
    with pytest.raises(MocapError, match=r"shape \(T, 17, 2\)"):
        load_keypoints(p)
    np.savez(p, keypoints=np.zeros((0, 17, 2)), confidence=np.zeros((0, 17)), layout="coco17",
             image_size=[10, 10], fps=30.0)
    with pytest.raises(MocapError, match="no frames"):
        load_keypoints(p)
    np.savez(p, keypoints=np.zeros((3, 17, 2)), confidence=np.zeros((3, 17)), layout="motion21",
             image_size=[10, 10], fps=30.0)
    with pytest.raises(MocapError, match="layout"):
        load_keypoints(p)


def test_unwritable_folder_leaves_nothing(tmp_path):
    with pytest.raises(MocapError, match="does not exist"):
        save_keypoints(tmp_path / "missing" / "k.npz", _kp())


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(RuntimeError):
        save_keypoints(tmp_path / "k.npz", _kp())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_permissions_of_the_umask(tmp_path, umask, mode):
    """Written atomically through a temporary file, yet with the mode a plain open() would
    give (it was 0600 whatever the umask): motion.npz and a BVH, new and overwritten."""
    import os
    import stat

    from mocap.io.bvh import write_motion_bvh

    q = np.tile([1.0, 0, 0, 0], (3, 2, 1))
    m = Motion(joints=np.zeros((3, 2, 3)), joint_names=("a", "b"), parents=(-1, 0), fps=30.0, local_quats_wxyz=q,
               root_translation=np.zeros((3, 3)), rest_offsets=np.array([[0, 1.0, 0], [0, 0.5, 0]]))
    old = os.umask(umask)
    try:
        for _ in range(2):  # a new file, then one replaced
            save_motion(tmp_path / "motion.npz", m)
            write_motion_bvh(tmp_path / "motion.bvh", m)
            for name in ("motion.npz", "motion.bvh"):
                assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion.bvh", "motion.npz"]
