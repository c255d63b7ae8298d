import numpy as np
import pytest

from mocap.skeletons import (COCO17, HAND21, HANDS42, LAYOUTS, MEDIAPIPE33, MOTION21, MPII16, Skeleton, combine_layouts,
                             map_confidence, map_joints, mapping_matrix, rest_offsets, rest_positions)


def test_mediapipe_order_matches_blazepose():
    # Spot checks against the BlazePose landmark indices documented by MediaPipe.
    assert MEDIAPIPE33.index("nose") == 0
    assert MEDIAPIPE33.index("left_shoulder") == 11
    assert MEDIAPIPE33.index("right_wrist") == 16
    assert MEDIAPIPE33.index("left_hip") == 23
    assert MEDIAPIPE33.index("left_heel") == 29
    assert MEDIAPIPE33.index("right_foot_index") == 32
    assert COCO17.index("left_shoulder") == 5 and COCO17.index("right_ankle") == 16
    assert MPII16.index("right_ankle") == 0 and MPII16.index("head_top") == 9


def test_hand_layouts():
    """MediaPipe's hand landmark order (its documented indices), the tree, both hands."""
    assert HAND21.num_joints == 21 and HAND21.parents[0] == -1
    for name, k in (("wrist", 0), ("thumb_tip", 4), ("index_finger_mcp", 5), ("middle_finger_mcp", 9),
                    ("ring_finger_pip", 14), ("pinky_mcp", 17), ("pinky_tip", 20)):
        assert HAND21.index(name) == k
    assert [HAND21.joint_names[HAND21.parents[j]] for j in (1, 5, 8, 20)] == ["wrist", "wrist", "index_finger_dip",
                                                                              "pinky_dip"]
    assert len(HAND21.edges) == 23  # 20 bones and 3 knuckle links
    assert HANDS42.joint_names[:21] == tuple("left_hand_" + n for n in HAND21.joint_names)
    assert HANDS42.joint_names[21:] == tuple("right_hand_" + n for n in HAND21.joint_names)
    assert HANDS42.mirror_permutation()[:21].tolist() == list(range(21, 42)) and len(HANDS42.edges) == 46
    both = combine_layouts(MEDIAPIPE33, HANDS42)  # what the overlay draws: the body, then its hands (thin)
    assert both.num_joints == 75 and both.joint_names[33] == "left_hand_wrist"
    assert both.fine_joints == tuple(range(33, 75))
    assert len(both.edges) == len(MEDIAPIPE33.edges) + 46 and (both.mirror_permutation()[33:54] == range(54, 75)).all()


def _mirror_name(name: str) -> str:
    return "_".join({"left": "right", "right": "left"}.get(w, w) for w in name.split("_"))


# layout -> (left/right pairs, joints on the midline)
_SIDES = {
    "mediapipe33": (16, {"nose"}),
    "coco17": (8, {"nose"}),
    "mpii16": (6, {"pelvis", "thorax", "upper_neck", "head_top"}),
    "motion21": (8, {"pelvis", "spine", "neck", "head", "nose"}),
    "motion61": (28, {"pelvis", "spine", "neck", "head", "nose"}),  # motion21 and 20 finger joints a side
    "hand21": (0, set(HAND21.joint_names)),  # one hand: no sides
    "hands42": (21, set()),
}


def test_mirror_name_swaps_sides():
    assert _mirror_name("left_foot_index") == "right_foot_index"
    assert _mirror_name("mouth_right") == "mouth_left"
    assert _mirror_name("upper_neck") == "upper_neck"


@pytest.mark.parametrize("skel", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_left_right_pairs_are_mirror_names(skel):
    num_pairs, midline = _SIDES[skel.name]
    names = list(skel.joint_names)
    perm = skel.mirror_permutation()
    assert sorted(perm) == list(range(skel.num_joints))
    # each sided joint goes to the joint of the same name on the other side; midline joints stay
    assert [names[j] for j in perm] == [_mirror_name(n) for n in names]
    assert {names[i] for i in range(skel.num_joints) if perm[i] == i} == midline
    assert len(skel.left_right) == num_pairs and np.count_nonzero(perm != np.arange(skel.num_joints)) == 2 * num_pairs
    for left, right in skel.left_right:
        assert "left" in names[left].split("_") and names[right] == _mirror_name(names[left])
    np.testing.assert_array_equal(perm[perm], np.arange(skel.num_joints))  # mirroring twice is the identity
    if skel.name == "mediapipe33":  # known indices (BlazePose): 11 <-> 12 shoulders, 9 <-> 10 mouth
        assert perm[11] == 12 and perm[12] == 11 and perm[9] == 10 and perm[0] == 0
    for a, b in skel.edges:
        assert 0 <= a < skel.num_joints and 0 <= b < skel.num_joints


def test_motion_tree_and_rest_pose():
    parents = MOTION21.parents
    assert parents[0] == -1 and all(0 <= p < j for j, p in enumerate(parents) if j)
    off = rest_offsets()
    # mirrored: right offsets are left offsets with x negated
    for left, right in MOTION21.left_right:
        np.testing.assert_allclose(off[right], off[left] * [-1, 1, 1])
    # T-pose, +Y up: head above pelvis, ankles below, left wrist at +X
    pos = rest_positions(off, parents)
    assert pos[MOTION21.index("head")][1] > 0.6 > -0.7 > pos[MOTION21.index("left_ankle")][1]
    assert pos[MOTION21.index("left_wrist")][0] > 0.6
    assert pos[MOTION21.index("left_foot_index")][2] > 0 > pos[MOTION21.index("left_heel")][2]
    # known values: wrist = shoulder 18 + upper arm 28 + forearm 25 cm out, at the neck's 50 cm
    np.testing.assert_allclose(pos[MOTION21.index("left_wrist")], [0.71, 0.5, 0.0], atol=1e-15)
    np.testing.assert_allclose(pos[MOTION21.index("right_heel")], [-0.09, -0.88, -0.05], atol=1e-15)


def test_rest_positions_of_any_tree():
    off = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    np.testing.assert_array_equal(rest_positions(off, [-1, 0, 1, -1]),
                                  [[1.0, 2.0, 3.0], [1.0, 3.0, 3.0], [2.0, 3.0, 3.0], [0.0, 0.0, 5.0]])
    with pytest.raises(ValueError, match="before their children"):
        rest_positions(off, [-1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"\(J, 3\)"):
        rest_positions(off[:, :2], [-1, 0, 1, 2])


def test_bad_tables_rejected():
    with pytest.raises(ValueError, match="parents must come first"):
        Skeleton(name="x", joint_names=("a", "b"), edges=(), parents=(1, 0))
    with pytest.raises(ValueError, match="has no joint"):
        MOTION21.index("tail")


def test_map_joints_weights_and_missing():
    rng = np.random.default_rng(0)
    mp = rng.normal(size=(4, 33, 3))
    m = map_joints(mp, MEDIAPIPE33, MOTION21)
    li, ri = MEDIAPIPE33.index("left_hip"), MEDIAPIPE33.index("right_hip")
    np.testing.assert_allclose(m[:, MOTION21.index("pelvis")], 0.5 * (mp[:, li] + mp[:, ri]))
    np.testing.assert_allclose(m[:, MOTION21.index("left_heel")], mp[:, MEDIAPIPE33.index("left_heel")])
    # COCO has no heel: NaN; a NaN source joint makes its targets NaN
    coco = rng.normal(size=(2, 17, 2))
    coco[1, COCO17.index("left_ear")] = np.nan
    m = map_joints(coco, "coco17", "motion21")
    assert np.isnan(m[:, MOTION21.index("left_heel")]).all()
    assert np.isnan(m[1, MOTION21.index("head")]).all() and np.isfinite(m[0, MOTION21.index("head")]).all()
    conf = map_confidence(np.full((1, 17), 0.8), "coco17", "motion21")
    assert conf[0, MOTION21.index("left_heel")] == 0 and conf[0, MOTION21.index("pelvis")] == pytest.approx(0.8)
    # the mediapipe->coco mapping is a pure selection
    sel = mapping_matrix("mediapipe33", "coco17")
    assert (sel.sum(1) == 1).all()
    with pytest.raises(ValueError, match="no mapping"):
        mapping_matrix("coco17", "mediapipe33")


def test_descendants_of_a_joint():
    names = MOTION21.joint_names
    assert [names[j] for j in MOTION21.descendants(MOTION21.index("left_hip"))] == [
        "left_knee", "left_ankle", "left_heel", "left_foot_index"]
    assert [names[j] for j in MOTION21.descendants(MOTION21.index("right_elbow"))] == ["right_wrist"]
    assert MOTION21.descendants(MOTION21.index("right_wrist")) == []
    assert MOTION21.descendants(0) == list(range(1, 21))  # everything hangs from the pelvis
    with pytest.raises(ValueError, match="not a kinematic tree"):
        COCO17.descendants(0)
