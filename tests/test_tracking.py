"""mocap.detect2d.tracking on synthetic scenes with known identities.

People are COCO-17 stick figures with their own proportions and size, walking (legs and
arms swing) along straight lines at 30 fps. Each frame's detections are shuffled into the
slots, get pixel noise and low-confidence joints, and some are dropped. The tracker must
give each true person one id (identity switches counted MOT-style).
"""
from __future__ import annotations

import numpy as np
import pytest

from mocap.skeletons import COCO17
from mocap.detect2d.choose import choose_track, select_person, split_tracks
from mocap.detect2d.tracking import TrackingConfig, identity_switches, track_people

J = COCO17.index
UNIT = np.array([[0, -1.6], [-.1, -1.7], [.1, -1.7], [-.2, -1.65], [.2, -1.65], [-.4, -1.2], [.4, -1.2],
                 [-.5, -.7], [.5, -.7], [-.55, -.2], [.55, -.2], [-.25, 0], [.25, 0], [-.25, .8], [.25, .8],
                 [-.25, 1.6], [.25, 1.6]])


def _walker(rng: np.random.Generator, start: tuple[float, float], velocity: tuple[float, float], scale: float,
            frames: int) -> np.ndarray:
    """(T, 17, 2) pixels of one person walking; body proportions drawn per person."""
    body = UNIT.copy()
    body[:, 0] *= rng.uniform(0.8, 1.3)  # width
    body[[13, 14, 15, 16], 1] *= rng.uniform(0.85, 1.2)  # leg length
    body[[7, 8, 9, 10], 1] *= rng.uniform(0.8, 1.2)  # arm drop
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(frames)
    swing = 0.25 * np.sin(2 * np.pi * t / 30.0 + phase)  # one stride a second
    pose = np.repeat(body[None], frames, axis=0)
    for idx, sign in ((J("left_knee"), .5), (J("left_ankle"), 1.), (J("right_knee"), -.5), (J("right_ankle"), -1.),
                      (J("left_wrist"), -.6), (J("right_wrist"), .6), (J("left_elbow"), -.3), (J("right_elbow"), .3)):
        pose[:, idx, 0] += sign * swing
    centre = np.asarray(start) + np.asarray(velocity) * t[:, None]
    return centre[:, None, :] + scale * pose


def _scene(people: list[np.ndarray], present: np.ndarray, rng: np.random.Generator, *, slots: int = 5,
           noise_px: float = 2.0, drop: float = 0.05):
    """Shuffle the visible people into slots with noise and dropped detections.

    Args:
        people: N arrays (T, 17, 2); present: (T, N) bool (False = occluded / out of view).

    Returns:
        keypoints (T, S, 17, 2), confidence (T, S, 17), scores (T, S), true ids (T, S).
    """
    t_len, n = present.shape
    kp = np.full((t_len, slots, 17, 2), np.nan)
    conf = np.zeros((t_len, slots, 17))
    scores = np.zeros((t_len, slots))
    true = np.full((t_len, slots), -1)
    for t in range(t_len):
        seen = [i for i in range(n) if present[t, i] and rng.random() >= drop]
        for s, i in zip(rng.permutation(slots)[:len(seen)], seen):
            kp[t, s] = people[i][t] + rng.normal(0, noise_px, (17, 2))
            conf[t, s] = rng.uniform(0.5, 1.0, 17)
            conf[t, s, rng.random(17) < 0.1] = 0.1  # some unreliable joints
            scores[t, s] = rng.uniform(0.5, 1.0)
            true[t, s] = i
    return kp, conf, scores, true


def _one_to_one(ids: np.ndarray, true: np.ndarray) -> bool:
    """Each true person has exactly one track id and no track holds two people."""
    pairs = {(int(a), int(b)) for a, b in zip(ids[true >= 0], true[true >= 0])}
    return len({a for a, _ in pairs}) == len(pairs) == len({b for _, b in pairs})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_walkers_with_noise_shuffle_and_drops(seed):
    rng = np.random.default_rng(seed)
    t_len = 150
    people = [_walker(rng, (100, 200), (2.0, 0.0), 60, t_len), _walker(rng, (900, 260), (-1.5, 0.2), 70, t_len),
              _walker(rng, (500, 330), (0.5, -0.3), 55, t_len)]
    kp, conf, scores, true = _scene(people, np.ones((t_len, 3), bool), rng)
    ids = track_people(kp, conf, scores)
    assert ((ids >= 0) == (true >= 0)).all()  # every detection is tracked, empty slots stay -1
    assert identity_switches(ids, true) == 0
    assert _one_to_one(ids, true) and ids.max() == 2


def test_reidentified_after_ten_frames_of_occlusion():
    rng = np.random.default_rng(5)
    t_len = 120
    people = [_walker(rng, (100, 220), (3.0, 0.0), 65, t_len), _walker(rng, (700, 240), (-1.0, 0.0), 60, t_len),
              _walker(rng, (300, 600), (1.0, -0.5), 50, t_len)]
    present = np.ones((t_len, 3), bool)
    present[50:60, 0] = False  # person 0 hidden for 10 frames, moving on meanwhile
    present[80:90, 2] = False
    kp, conf, scores, true = _scene(people, present, rng, drop=0.03)
    ids = track_people(kp, conf, scores, max_gap_frames=15)
    assert identity_switches(ids, true) == 0
    assert _one_to_one(ids, true) and ids.max() == 2
    # with a shorter memory the hidden people come back as new tracks (the gap is what re-identifies)
    short = track_people(kp, conf, scores, max_gap_frames=5)
    assert short.max() >= 4


def _crossing_scene(seed: int, hide: str, noise_px: float = 2.0, drop: float = 0.03):
    rng = np.random.default_rng(seed)
    t_len = 120
    # two people of similar size walk towards each other on nearly the same line and pass at t ~ 60
    a = _walker(rng, (200, 300), (4.0, 0.0), 62, t_len)
    b = _walker(rng, (680, 306), (-4.0, 0.0), 58, t_len)
    c = _walker(rng, (1100, 260), (-0.5, 0.0), 70, t_len)  # a bystander
    present = np.ones((t_len, 3), bool)
    if hide == "one":  # b is behind a while their boxes overlap most
        present[54:67, 1] = False
    elif hide == "both":  # both pass behind a pillar: they come out on the other side of each other
        present[53:65, :2] = False
    return _scene([a, b, c], present, rng, noise_px=noise_px, drop=drop)


def test_crossing_paths():
    """Reported, and bounded: constant-velocity prediction should keep ids through a crossing."""
    results = {}
    for noise_px, drop in ((2.0, 0.03), (10.0, 0.1)):
        for hide in ("none", "one", "both"):
            key = f"{hide} hidden, noise {noise_px:g} px, {drop:.0%} dropped"
            results[key] = []
            for seed in range(4):
                kp, conf, scores, true = _crossing_scene(seed, hide, noise_px, drop)
                ids = track_people(kp, conf, scores)
                results[key].append(identity_switches(ids, true))
    print("identity switches in crossing scenes (4 seeds each):")
    for key, value in results.items():
        print(f"  {key}: {value}")
    assert sum(map(sum, results.values())) <= 2


def test_four_people_two_crossings_with_entries():
    rng = np.random.default_rng(11)
    t_len = 150
    people = [_walker(rng, (100, 250), (5.0, 0.0), 60, t_len), _walker(rng, (850, 260), (-5.0, 0.0), 64, t_len),
              _walker(rng, (400, 100), (0.0, 3.0), 45, t_len), _walker(rng, (420, 600), (0.0, -3.0), 48, t_len)]
    present = np.ones((t_len, 4), bool)
    present[:20, 3] = False  # enters late
    present[130:, 2] = False  # leaves early
    kp, conf, scores, true = _scene(people, present, rng)
    ids = track_people(kp, conf, scores)
    switches = identity_switches(ids, true)
    print(f"four people, two crossings: {switches} identity switches, {ids.max() + 1} tracks")
    assert switches <= 1


def test_select_and_split():
    rng = np.random.default_rng(2)
    t_len = 60
    big = _walker(rng, (300, 300), (1.0, 0.0), 90, t_len)
    small = _walker(rng, (800, 300), (-1.0, 0.0), 40, t_len)
    present = np.ones((t_len, 2), bool)
    present[:25, 0] = False  # the big one is present in fewer frames
    kp, conf, scores, true = _scene([big, small], present, rng, slots=3, drop=0.0)
    ids = track_people(kp, conf, scores)
    assert identity_switches(ids, true) == 0
    big_id = int(ids[true == 0][0])
    small_id = int(ids[true == 1][0])

    xy, c = select_person(kp, conf, ids, person="largest")
    assert xy.shape == (t_len, 17, 2) and c.shape == (t_len, 17)
    assert np.isnan(xy[:25]).all() and (c[:25] == 0).all()
    np.testing.assert_allclose(xy[30:], big[30:], atol=12)  # the noise is 2 px
    xy, _ = select_person(kp, conf, ids, person="most-present")
    np.testing.assert_allclose(xy, small, atol=12)
    xy, _ = select_person(kp, conf, ids, person=big_id)
    assert np.isfinite(xy[30:]).all()
    with pytest.raises(ValueError, match="no track with id 7"):
        select_person(kp, conf, ids, person=7)
    with pytest.raises(ValueError, match="largest"):  # the message lists the choices
        select_person(kp, conf, ids, person="tallest")

    parts = split_tracks(kp, conf, ids)
    assert sorted(parts) == sorted([big_id, small_id])
    np.testing.assert_allclose(parts[small_id][0], small, atol=12)
    assert (parts[big_id][1][:25] == 0).all()


def test_config_and_bad_input():
    rng = np.random.default_rng(0)
    kp, conf, scores, true = _scene([_walker(rng, (100, 100), (1, 0), 50, 10)], np.ones((10, 1), bool), rng, slots=2)
    assert (track_people(kp, conf, scores, **TrackingConfig().kwargs()) == track_people(kp, conf, scores)).all()
    empty = track_people(np.zeros((4, 0, 17, 2)), np.zeros((4, 0, 17)), np.zeros((4, 0)))
    assert empty.shape == (4, 0)
    with pytest.raises(ValueError, match="expected keypoints"):
        track_people(kp[0], conf, scores)
    with pytest.raises(ValueError, match="no tracked person"):
        select_person(kp, conf, np.full(scores.shape, -1))
    # a short track is dropped by min_track_frames
    ids = track_people(kp[:1], conf[:1], scores[:1], min_track_frames=2)
    assert (ids == -1).all()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 5])
def test_appearance_keeps_ids_through_crossings_occlusion_and_leaving(seed):
    """Three people (one camera): they cross, one is hidden behind another, one walks out of
    the picture for over two seconds and comes back; 2 px noise, 10 % missed detections,
    5 % left/right swaps. With the torso colour cue: one id per person, 0 switches. (Seed 5:
    a person hidden for a frame behind another comes back on the frame where the other's own
    detection is missed; the track seen on the frame before took them while the one lost a
    frame earlier fitted far better: ``LOST_FITS_BETTER``.)"""
    from tests.people_scene import people_scene

    s = people_scene(seed)
    away = ~s.visible[:, 2]
    assert away.sum() > 2 * 30 and s.visible[-1, 2]  # person 2 leaves for longer than max_gap_frames, returns
    ids = track_people(s.keypoints, s.confidence, s.scores, appearance=s.appearance)
    assert ((ids >= 0) == (s.true_ids >= 0)).all()
    assert identity_switches(ids, s.true_ids) == 0
    assert _one_to_one(ids, s.true_ids) and ids.max() == 2
    # without it, the one who came back gets a new id (what the appearance cue is for)
    plain = track_people(s.keypoints, s.confidence, s.scores)
    assert plain.max() >= 3


def test_live_tracker_gives_the_offline_ids_frame_by_frame():
    """PeopleTracker (a live stream) on the crossing/occlusion/leaving scene: the ids of
    track_people, each known as its frame arrives; and pick_track on the stats so far picks
    the offline choice once every frame is in."""
    from mocap.detect2d.choose import person_size, pick_track, track_stats
    from mocap.detect2d.tracking import PeopleTracker
    from tests.people_scene import people_scene

    s = people_scene(1)
    offline = track_people(s.keypoints, s.confidence, s.scores, appearance=s.appearance)
    live = PeopleTracker(33, layout="mediapipe33", appearance=True)
    sizes: dict[int, list[float]] = {}
    frames: dict[int, int] = {}
    for t in range(len(s.keypoints)):
        ids = live.step(s.keypoints[t], s.confidence[t], s.scores[t], s.appearance[t])
        np.testing.assert_array_equal(ids, offline[t])
        for p in np.nonzero(ids >= 0)[0]:
            frames[ids[p]] = frames.get(ids[p], 0) + 1
            size = person_size(s.keypoints[t, p], s.confidence[t, p])
            sizes.setdefault(ids[p], []).extend([] if size is None else [size])
    for person in ("auto", "largest", "most-present"):
        assert pick_track({i: track_stats(sizes[i], n) for i, n in frames.items()}, person) == \
            choose_track(s.keypoints, s.confidence, offline, person=person)
    with pytest.raises(ValueError, match="expected keypoints"):
        live.step(s.keypoints[0, :, :17], s.confidence[0], s.scores[0])


def test_appearance_input_checked_and_unknown_rows_ignored():
    rng = np.random.default_rng(0)
    kp, conf, scores, true = _scene([_walker(rng, (100, 100), (1, 0), 50, 20)], np.ones((20, 1), bool), rng, slots=2)
    with pytest.raises(ValueError, match="appearance must be"):
        track_people(kp, conf, scores, appearance=np.ones((20, 3, 4)))
    unknown = np.full((20, 2, 8), np.nan)  # no descriptor anywhere: the same as none
    assert (track_people(kp, conf, scores, appearance=unknown) == track_people(kp, conf, scores)).all()


def test_auto_picks_present_longest_weighted_by_size_and_never_switches():
    rng = np.random.default_rng(3)
    t_len = 90
    main = _walker(rng, (300, 300), (1.0, 0.0), 70, t_len)  # present 60 frames, big
    brief = _walker(rng, (800, 300), (-1.0, 0.0), 110, t_len)  # bigger, but only 20 frames
    small = _walker(rng, (600, 600), (0.5, 0.0), 30, t_len)  # always there, small
    present = np.ones((t_len, 3), bool)
    present[60:, 0] = False
    present[20:, 1] = False
    kp, conf, scores, true = _scene([main, brief, small], present, rng, slots=4, drop=0.0)
    ids = track_people(kp, conf, scores)
    main_id = int(ids[true == 0][0])
    xy, c = select_person(kp, conf, ids, person="auto")
    np.testing.assert_allclose(xy[:60], main[:60], atol=12)
    assert np.isnan(xy[60:]).all() and (c[60:] == 0).all()  # gone: missing, not someone else
    assert choose_track(kp, conf, ids, person="auto") == main_id
    assert choose_track(kp, conf, ids, person="largest") == int(ids[true == 1][0])
    assert choose_track(kp, conf, ids, person="most-present") == int(ids[true == 2][0])


def test_implausible_jumps_flag_a_switch_to_someone_else():
    from mocap.detect2d.tracking import implausible_jumps

    rng = np.random.default_rng(4)
    t_len = 60
    a = _walker(rng, (200, 300), (3.0, 0.0), 60, t_len)  # 3 px a frame: a brisk walk
    b = _walker(rng, (700, 320), (-3.0, 0.0), 60, t_len)
    conf = np.full((t_len, 17), 0.9)
    assert implausible_jumps(a, conf, "coco17", 30.0) == []
    switched = a.copy()
    switched[20:30] = b[20:30]  # the keypoints follow someone else for ten frames
    switched[40:45] = np.nan  # and a gap, which is not a jump
    assert implausible_jumps(switched, conf, "coco17", 30.0) == [(19, 20), (29, 30)]


def test_a_track_drawn_on_another_persons_limbs_is_dropped_and_a_real_crossing_kept():
    """A "person" lying along another's limbs for 15 frames (what the pose detector proposes
    when it takes a knee for a face: a small body drawn inside the man) is no person: its
    track goes, the others keep their ids; two real people crossing (one passes behind the
    other, both seen before and after) and a bystander keep their tracks."""
    from mocap.detect2d.parts import drop_parts

    rng = np.random.default_rng(7)
    kp, conf, scores, true = _crossing_scene(0, "none")
    t_len = len(kp)
    host = 0
    edges = np.array(COCO17.edges)
    along = rng.integers(0, len(edges), 17), rng.uniform(0.1, 0.9, 17)
    for t in range(30, 45):  # the part: each of its points on one of the host's limbs
        (s,) = np.nonzero(true[t] == host)[0]
        free = np.nonzero(true[t] < 0)[0][0]
        a, b = kp[t, s, edges[along[0], 0]], kp[t, s, edges[along[0], 1]]
        kp[t, free] = a + along[1][:, None] * (b - a) + rng.normal(0, 2, (17, 2))
        conf[t, free], scores[t, free], true[t, free] = 0.9, 0.8, 9
    ids = track_people(kp, conf, scores)
    assert len(np.unique(ids[true == 9])) == 1 and ids[true == 9][0] >= 0  # tracked as someone, ...
    out = drop_parts(kp, conf, ids, layout="coco17")
    assert (out[true == 9] == -1).all()  # ... and dropped
    real = true >= 0
    real[true == 9] = False
    assert (out[real] >= 0).all() and identity_switches(out[:t_len], np.where(true == 9, -1, true)) == 0
    part = ids[true == 9][0]
    assert sorted(np.unique(out[out >= 0])) == sorted(set(range(4)) - {part})  # the other ids unchanged
    np.testing.assert_array_equal(out[real], ids[real])
    # the real people, crossing at t ~ 60, lie on each other in a few frames only: all kept
    assert (drop_parts(kp, conf, np.where(true == 9, -1, ids), layout="coco17") >= 0).sum() == real.sum()


def test_arms_read_out_and_in_on_alternate_frames_keep_one_id():
    """The landmark network can read a person's arms spread on one frame and by their sides on
    the next (pose2sim_two_people cam02, frames 81-85): the keypoint box's area halves and
    doubles, its longer side (the height) stays. With the box's area as the size that the
    tracker checks, the person got a new id on every other frame."""
    rng = np.random.default_rng(3)
    t_len = 40
    person = _walker(rng, (500, 150), (1.0, 0.0), 200, t_len)
    out = np.arange(t_len) % 2 == 1
    for side, sign in (("left", -1.0), ("right", 1.0)):  # spread: elbows and wrists far to the sides
        for joint, reach in (("elbow", 1.1), ("wrist", 1.9)):
            j = J(f"{side}_{joint}")
            person[out, j, 0] = person[out, J(f"{side}_shoulder"), 0] + sign * reach * 200
            person[out, j, 1] = person[out, J(f"{side}_shoulder"), 1] + 0.1 * 200
    other = _walker(rng, (1400, 170), (-1.0, 0.0), 190, t_len)
    kp, conf, scores, true = _scene([person, other], np.ones((t_len, 2), bool), rng, drop=0.0)
    width = np.ptp(person[:, :, 0], axis=1)
    assert width[out].min() > 2.5 * width[~out].max()  # the box's area more than doubles and halves
    ids = track_people(kp, conf, scores)
    assert identity_switches(ids, true) == 0
    assert ids.max() == 1

