"""lifting.data_extra: our ASF/AMC reader against hand-computed FK, the same take in two formats,
and physical sanity checks of every extra take (units, floor, left/right, frame rate)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lifting import data as base
from lifting import data_extra as dx
from tests.conftest import shared_path

K = {n: i for i, n in enumerate(base.KEYPOINT_NAMES)}
FEET = [K[n] for n in ("left_heel", "left_foot_index", "right_heel", "right_foot_index", "left_ankle", "right_ankle")]
HELD_OUT_SUBJECTS = {"02", "10", "12", "03", "11"}

_ASF = """# tiny hand-made skeleton
:version 1.10
:name tiny
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 0 2 0
     length 4.5
     axis 0 0 0  XYZ
    dof rx ry rz
  end
  begin
     id 2
     name b
     direction 1 0 0
     length 2.25
     axis 0 0 90  XYZ
    dof rx
  end
:hierarchy
  begin
    root a
    a b
  end
"""
_AMC = """#!OML:ASF tiny.asf
:FULLY-SPECIFIED
:DEGREES
1
root 0 0 0 0 0 0
a 0 0 0
b 0
2
root 4.5 0 0 0 90 0
a 0 0 90
b 90
3
root 0 0 0 0 0 0
a 90 90 0
b 0
"""


def test_asf_amc_forward_kinematics_hand_made(tmp_path):
    (tmp_path / "tiny.asf").write_text(_ASF)
    (tmp_path / "tiny.amc").write_text(_AMC)
    skel = dx.read_asf(tmp_path / "tiny.asf")
    assert skel.bone_names == ("a", "b") and skel.parents == (-1, 0)
    inch = 0.0254 / 0.45  # one CMU length unit in metres
    np.testing.assert_allclose(skel.lengths, [4.5 * inch, 2.25 * inch])  # 10 and 5 inches
    starts, ends, rots = dx.asf_forward_kinematics(skel, dx.read_amc(tmp_path / "tiny.amc", skel))
    la, lb = 0.254, 0.127
    # frame 1: rest pose, a straight up, b along +X
    np.testing.assert_allclose(ends[0], [[0, la, 0], [lb, la, 0]], atol=1e-12)
    # frame 2 (by hand): root at x=0.254 turned 90 deg about Y; a: Rz(90) -> points +Z in the world;
    # b: axis Rz(90) turns its rx into a rotation about Y, so b ends up along -X
    np.testing.assert_allclose(ends[1], [[la, 0, la], [la - lb, 0, la]], atol=1e-12)
    np.testing.assert_allclose(starts[1, 1], ends[1, 0], atol=1e-12)
    # frame 3: dof order "rx ry rz" is Rz @ Ry @ Rx (fixed axes): +Y -> Rx(90) -> +Z -> Ry(90) -> +X
    np.testing.assert_allclose(ends[2, 0], [la, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rots[2, 0] @ rots[2, 0].transpose(), np.eye(3), atol=1e-12)


def test_amc_errors_name_the_problem(tmp_path):
    (tmp_path / "tiny.asf").write_text(_ASF)
    (tmp_path / "bad.amc").write_text(_AMC.replace("b 90\n", "b 90 1\n"))
    skel = dx.read_asf(tmp_path / "tiny.asf")
    with pytest.raises(Exception, match="b has 2 values"):
        dx.read_amc(tmp_path / "bad.amc", skel)
    (tmp_path / "short.amc").write_text(_AMC.rsplit("b 0", 1)[0])  # truncated last frame: dropped
    assert dx.read_amc(tmp_path / "short.amc", skel)["root"].shape == (2, 6)


@pytest.fixture(scope="module")
def extra_root():
    shared_path("mocap", dx.EXTRA_ARCHIVE)
    return dx.ensure_extra_unpacked()


@pytest.fixture(scope="module")
def extra_takes(extra_root):
    takes = dx.list_extra_takes(extra_root)
    return {t.take_id: (t, dx.load_extra_take(t)) for t in takes}


def test_same_take_in_two_formats_agrees(extra_root):
    """zombie.amc (ASF/AMC) and leonardo-ono 104_41.bvh (cgspeed MB BVH) are one CMU take."""
    g = extra_root / "gsimchoni_mocap" / "inst" / "extdata"
    amc, _ = dx.amc_keypoints(g / "zombie.asf", g / "zombie.amc")
    bvh_path = extra_root / "leonardo-ono_RollCharacterAnimationTest" / "104_41.bvh"
    bvh, fps = dx.bvh_asf_keypoints(bvh_path, dx.MB_NAMES)
    assert fps == pytest.approx(120.0, rel=1e-3)
    bvh = bvh[dx.MB_DROP_FRAMES:]  # the BVH starts with one T-pose frame
    assert bvh.shape == amc.shape
    err = np.linalg.norm(bvh - amc, axis=-1)  # (T, K) metres
    lower = [K[n] for n in ("pelvis", "left_hip", "left_knee", "left_ankle", "left_heel", "right_foot_index", "spine")]
    assert err[:, lower].max() < 1e-3  # same FK and units: exact to the BVH's 5 decimals
    assert err.max() < 0.015  # upper body: the restored thorax is approximated by the upperback bone
    raw, _ = dx.bvh_asf_keypoints(bvh_path, dx.MB_NAMES, restore_thorax=False)
    assert np.linalg.norm(raw[1:, K["neck"]] - amc[:, K["neck"]], axis=-1).mean() > 0.10  # what it repairs


def test_take_list_excludes_duplicates_and_held_out(extra_takes):
    ids = set(extra_takes)
    assert len(ids) == 51  # README.md of the archive: 51 new unique takes
    assert not any(i in ids for i in ("01_06", "02_08", "02_09", "zombie", "pirouette", "dancing", "walk_03"))
    assert not any(t.subject in HELD_OUT_SUBJECTS or (t.subject.isdigit() and int(t.subject) <= 14)
                   for t, _ in extra_takes.values())
    split = json.loads(base.SPLIT_PATH.read_text())
    assert set(split["train_extra"]) == ids
    assert not set(split["train_extra"]) & set(split["train"] + split["val"] + split["test"])


def test_bone_lengths_rigid(extra_root):
    """Rigid readers keep every bone within 1 mm over a take (raw frames, no resampling)."""
    pairs = [("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_shoulder", "right_elbow"),
             ("right_elbow", "right_wrist"), ("left_ankle", "left_foot_index"), ("left_hip", "right_hip"),
             ("left_ankle", "left_heel"), ("left_ear", "nose")]
    m = extra_root / "motion-out"
    cases = [dx.amc_keypoints(m / "martialwalk" / "martialwalk.asf", m / "martialwalk" / "135_08.amc")[0],
             dx.bvh_asf_keypoints(extra_root / "leonardo-ono_RollCharacterAnimationTest" / "90_05.bvh", dx.MB_NAMES)[0],
             dx.bvh_asf_keypoints(extra_root / "Przestr_motion-capture" / "16_01.bvh")[0]]
    for kp in cases:
        for a, b in pairs:
            d = np.linalg.norm(kp[:, K[a]] - kp[:, K[b]], axis=-1)
            assert d.max() - d.min() < 1e-3, (a, b, d.min(), d.max())


def test_units_height_and_floor(extra_root, extra_takes):
    # rest pose of every ASF: the head bone's end above the lowest toe end (measured 1.41-1.60 m;
    # joint centres, so ~0.1-0.15 m under stature), and stature from the femur (~0.245 of it)
    for asf in sorted(extra_root.rglob("*.asf")):
        skel = dx.read_asf(asf)
        zero = {"root": np.zeros((1, 6))} | {n: np.zeros((1, len(d))) for n, d in zip(skel.bone_names, skel.dofs) if d}
        _, ends, _ = dx.asf_forward_kinematics(skel, zero)
        height = ends[0, :, 1].max() - ends[0, :, 1].min()
        assert 1.35 < height < 1.85, (asf.name, height)  # a wrong unit (x0.45 or /0.45 twice) is off by 2x
        stature = skel.lengths[skel.bone_names.index("lfemur")] / 0.245
        assert 1.45 < stature < 1.95, (asf.name, stature)
    for take_id, (take, kp) in extra_takes.items():
        feet_y = kp[:, FEET, 1].min(axis=1)
        assert -0.05 < np.percentile(feet_y, 2) < 0.06, take_id  # floor at y = 0, +Y up
        assert 1.2 < np.percentile(kp[:, K["head"], 1] - feet_y, 99) < 1.8, take_id
        leg = np.median(np.linalg.norm(kp[:, K["left_hip"]] - kp[:, K["left_knee"]], axis=-1)
                        + np.linalg.norm(kp[:, K["left_knee"]] - kp[:, K["left_ankle"]], axis=-1))
        assert 0.7 < leg < 0.95, (take_id, leg)
        assert not np.isnan(kp).any()


def test_left_right_not_swapped(extra_takes):
    """With forward = (left_hip - right_hip) x up, the toes and the nose point forward."""
    share = []
    for take_id, (_, kp) in extra_takes.items():
        fwd = np.cross(kp[:, K["left_hip"]] - kp[:, K["right_hip"]], [0.0, 1.0, 0.0])
        toes = np.einsum("ti,ti->t", kp[:, K["left_foot_index"]] - kp[:, K["left_heel"]], fwd)
        nose = np.einsum("ti,ti->t", kp[:, K["nose"]] - kp[:, K["head"]], fwd)
        assert np.mean(toes > 0) > 0.75 and np.mean(nose > 0) > 0.45, take_id  # a swap gives ~0
        share.append(np.mean(toes > 0))
    assert np.median(share) > 0.98


def _free_fall_acceleration(kp: np.ndarray, fps: float) -> list[float]:
    """Vertical acceleration (m/s^2) of a rough centre of mass over each airborne stretch."""
    def p(n):
        return kp[:, K[n]]
    segs = [(0.50, 0.5 * (p("pelvis") + p("neck"))), (0.08, p("head"))]
    for s in ("left", "right"):
        segs += [(0.028, 0.5 * (p(s + "_shoulder") + p(s + "_elbow"))), (0.022, 0.5 * (p(s + "_elbow") + p(s + "_wrist"))),
                 (0.10, 0.5 * (p(s + "_hip") + p(s + "_knee"))), (0.06, 0.5 * (p(s + "_knee") + p(s + "_ankle")))]
    com_y = sum(w * x for w, x in segs)[:, 1] / sum(w for w, _ in segs)
    air = kp[:, :, 1].min(axis=1) > np.percentile(kp[:, FEET, 1].min(axis=1), 5) + 0.08
    out, i = [], 0
    while i < len(air):
        j = i
        while j < len(air) and air[j]:
            j += 1
        if j - i >= 0.15 * fps:
            t = np.arange(i, j) / fps
            out.append(2.0 * np.polyfit(t, com_y[i:j], 2)[0])
        i = j + 1
    return out


def test_frame_rates_by_gravity(extra_takes):
    """Jumps fall at g only at the right frame rate (Przestr's header says 30 fps: it is 120)."""
    for take_id in ("16_01", "16_02", "90_05", "backflip"):
        take, kp = extra_takes[take_id]  # at CACHE_FPS
        acc = _free_fall_acceleration(kp, base.CACHE_FPS)
        assert acc, take_id
        tol = 2.5 if take_id == "backflip" else 1.0  # a spinning body's CoM estimate is rougher
        assert all(abs(a + 9.81) < tol for a in acc), (take_id, acc)
    assert extra_takes["backflip"][0].content_fps == 60.0


def test_no_interpolated_60fps_content(extra_root):
    """120 fps files whose content was 60 fps upsampled show zero acceleration on every other frame."""
    for take in dx.list_extra_takes(extra_root):
        if take.content_fps != 120.0 or dx.source_of(take.path) == "bvh_native":
            continue
        kp = dx.load_extra_take(take)  # 120 -> 120: no resampling
        acc = np.linalg.norm(np.diff(kp[:, K["pelvis"]], 2, axis=0), axis=-1)
        even, odd = acc[0::2].mean(), acc[1::2].mean()
        assert min(even, odd) > 0.5 * max(even, odd), take.take_id


def test_load_dataset_extra_hook(tmp_path, monkeypatch):
    """load_dataset and its cache stay as they were; load_with_extra appends the extra part."""
    monkeypatch.setenv("MOCAP_CACHE_DIR", str(tmp_path))
    take = base.Take("01_01", tmp_path / "01_01.bvh", "01", 0.0, "walk", "walk")
    arr = np.zeros((5, len(base.KEYPOINT_NAMES), 3), np.float32)
    with open(tmp_path / f"keypoints_v{base.CACHE_VERSION}.npz", "wb") as f:
        np.savez(f, **{"01_01": arr})
    before = (tmp_path / f"keypoints_v{base.CACHE_VERSION}.npz").read_bytes()
    monkeypatch.setattr(base, "load_split", lambda: {"train": ["01_01"], "val": [], "test": []})
    extra_take = base.Take("131_01", tmp_path / "131_01.amc", "131", 120.0, "walk", "x")
    monkeypatch.setattr(dx, "load_extra", lambda part: [(extra_take, arr)] if part == "train" else [])
    plain = base.load_dataset("train", takes=[take])
    assert [t.take_id for t, _ in plain] == ["01_01"]
    assert [t.take_id for t, _ in dx.load_with_extra("train", takes=[take])] == ["01_01", "131_01"]
    assert (tmp_path / f"keypoints_v{base.CACHE_VERSION}.npz").read_bytes() == before
