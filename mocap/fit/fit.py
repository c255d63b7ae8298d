"""The fitting stage for one person and one static camera: from the lifted pose in the camera
frame to a motion in a gravity-aligned world frame that reprojects onto the video.

:func:`fit_person` runs: gravity from where the body's weight rests
(:func:`mocap.fit.ground.estimate_up`), or from the room's vertical lines when the video
shows them clearly (:func:`mocap.fit.scene.vertical_up`) -> the world frame, the camera's height from the
planted feet and the support surfaces -> constant bones (scaled to ``height_m`` when given)
and IK -> the joint fit of the whole clip (:func:`mocap.fit.solve.solve_fit`) -> the lowest
support surface put on y = 0 -> knee and elbow limits -> a :class:`~mocap.formats.Motion`
and the solved :class:`~mocap.camera.Camera`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from mocap import bones
from mocap.camera import Camera, intrinsic_matrix
from mocap.cleanup.contact import CONTACT_POINTS, clamp_hinge_joints
from mocap.fit.ground import (camera_pitch_roll, estimate_up, pin_planted_feet, planted, quasi_static, support_surfaces,
                              world_from_camera)
from mocap.fit.quality import standing_height
from mocap.fit.scene import vertical_up
from mocap.fit.solve import FitWeights, solve_fit
from mocap.formats import Motion
from mocap.kinematics.ik import forward_kinematics, inverse_kinematics
from mocap.rotations import matrix_to_quat_wxyz, quat_continuous_wxyz, quat_wxyz_to_matrix
from mocap.skeletons import MOTION21, rest_offsets as default_offsets

@dataclass(frozen=True)
class FitResult:
    """One person's fitted clip.

    Attributes:
        motion: the motion (world frame, +Y up, the floor at y = 0), MOTION21.
        camera: the solved static camera (world -> camera; pitch, roll and height above the floor).
        contacts: (T, 4) bool, planted foot points (:data:`~mocap.cleanup.contact.CONTACT_POINTS`).
        surfaces: (S,) heights of the support surfaces, metres (the floor is 0).
        up_frames: frames that gravity was first read from (the scene: vertical lines); up_source:
            from what (``"scene"``: :func:`mocap.fit.scene.vertical_up`; ``"floor"``, ``"balance"`` or
            ``"level camera"``: :func:`mocap.fit.ground.estimate_up`).
        iterations: solver iterations; seconds: time of the fit.
        focal_from: where the focal length came from (``"given"``; ``"scene"``:
            :func:`mocap.fit.scene.focal_from_scene`; ``"default"``: a 55 degree field of view),
            set by the pipeline.
    """

    motion: Motion
    camera: Camera
    contacts: np.ndarray
    surfaces: np.ndarray
    up_frames: int
    up_source: str
    iterations: int
    seconds: float
    focal_from: str = "given"

    @property
    def pitch_roll_height(self) -> tuple[float, float, float]:
        """(pitch, roll) in degrees and the height (metres) of the camera above the floor."""
        pitch, roll = camera_pitch_roll(self.camera.R.T)
        return float(np.degrees(pitch)), float(np.degrees(roll)), float(self.camera.position[1])


def fit_person(rel_cam: np.ndarray, root_cam: np.ndarray, keypoints_px: np.ndarray, confidence: np.ndarray, *,
               fps: float, focal_px: float, image_size: tuple[int, int], height_m: float | None = None,
               min_confidence: float = 0.3, hold_feet: bool = True, weights: FitWeights = FitWeights(),
               max_iterations: int = 60, scene_lines: np.ndarray | None = None,
               camera: Camera | None = None) -> FitResult:
    """Fit one person's lifted clip to its 2D keypoints (see the module docstring).

    Args:
        rel_cam: (T, 21, 3) MOTION21 joints relative to the pelvis, camera axes (x right,
            y down, z forward), metres, NaN-free (the lift, gap-filled and smoothed).
        root_cam: (T, 3) the pelvis in the camera frame, metres, NaN-free.
        keypoints_px: (T, 21, 2) the 2D joints mapped to MOTION21, pixels; NaN where unseen.
        confidence: (T, 21) their confidences; under ``min_confidence`` they do not count.
        fps: frames per second. focal_px: focal length, pixels; the principal point is the
            image centre of ``image_size`` (width, height) pixels.
        height_m: the person's standing height when known (:func:`mocap.fit.quality.standing_height`).
        hold_feet: planted feet do not slide and rest on their surface (off: they are only
            kept above the floor; gravity is still read from them).
        scene_lines: (N, 4) straight segments of the static background, pixels
            (:func:`mocap.detect2d.lines.scene_segments`): when their vertical vanishing point is
            clear and within 20 degrees of the body's cue (40 when the feet are seen in fewer
            than :data:`MIN_FEET_SEEN` of the frames), gravity starts there and the fit keeps it
            within about its spread (at least 1 degree).
        camera: a static camera already solved for this video (:attr:`FitResult.camera` of
            another person in it; ``focal_px`` is then its own): its gravity, height above the
            floor and world are kept, so that the people of one video share one world. The
            person is first scaled (with their distance: the 2D is unchanged) so that their
            planted feet stand on its floor, unless ``height_m`` is given.
    Returns:
        :class:`FitResult`.
    """
    start = time.perf_counter()
    rel = np.asarray(rel_cam, dtype=np.float64)
    root = np.asarray(root_cam, dtype=np.float64)
    if rel.ndim != 3 or rel.shape[1:] != (MOTION21.num_joints, 3) or root.shape != (len(rel), 3):
        raise ValueError(f"rel_cam must be (T, 21, 3) and root_cam (T, 3), got {rel.shape} and {root.shape}")
    if not (np.isfinite(rel).all() and np.isfinite(root).all()):
        raise ValueError("fit_person needs NaN-free lifted joints; fill and smooth them first")
    parents = np.array(MOTION21.parents)
    offsets = bones.rest_offsets_with_lengths(default_offsets(), bones.estimate_bone_lengths(
        rel, parents, left_right=MOTION21.left_right))
    if height_m is not None:  # scale the body and its distance together: the 2D is unchanged
        s = float(height_m) / standing_height(offsets)
        rel, root, offsets = rel * s, root * s, offsets * s
    joints_cam = rel + root[:, None]

    feet_px, height_px = _feet_and_height(keypoints_px, confidence, min_confidence, focal_px)
    if camera is not None:  # a camera another person solved: its gravity, height and world
        to_world = camera.R.T
        k = np.asarray(camera.K, dtype=np.float64)
        world = joints_cam @ to_world.T  # camera at the origin
        if height_m is None:  # their size from the floor: planted feet stand on it
            s = floor_scale(world, feet_px, camera_height=float(camera.position[1]), fps=fps, height_px=height_px)
            rel, root, offsets, joints_cam, world = rel * s, root * s, offsets * s, joints_cam * s, world * s
        sol, contacts = _solve(rel, joints_cam, world, to_world, offsets, keypoints_px, confidence, feet_px, k,
                               fps=fps, height_px=height_px, camera_height=float(camera.position[1]),
                               min_confidence=min_confidence, hold_feet=hold_feet, weights=weights,
                               fix_scale=height_m is not None, fix_camera=True, max_iterations=max_iterations)
        return _finish(sol, to_world, np.asarray(camera.position, dtype=np.float64), contacts, k, image_size,
                       fps=fps, hold_feet=hold_feet, up_frames=0, up_source="shared camera", start=start)
    k = intrinsic_matrix(focal_px, (image_size[0] / 2.0, image_size[1] / 2.0))
    up, up_frames, up_source, scene = _first_gravity(joints_cam, feet_px, height_px, k, fps=fps,
                                                     scene_lines=scene_lines)
    if scene is not None:
        # the scene knows the roll too: no pull towards a level image
        weights = dataclasses.replace(weights, gravity_rad=max(2.0 * scene.spread_rad, float(np.radians(1.0))),
                                      roll_rad=float("inf"))
    to_world = world_from_camera(up)
    world = joints_cam @ to_world.T  # camera at the origin
    sol, contacts = _solve(rel, joints_cam, world, to_world, offsets, keypoints_px, confidence, feet_px, k, fps=fps,
                           height_px=height_px, camera_height=None, min_confidence=min_confidence,
                           hold_feet=hold_feet, weights=weights, fix_scale=height_m is not None, fix_camera=False,
                           max_iterations=max_iterations)
    # the world: solved gravity up, the lowest support surface (or the feet) at y = 0, the first root over the origin
    to_world = world_from_camera(sol.up_cam)
    world = sol.joints_cam @ to_world.T
    idx = [MOTION21.index(n) for n in CONTACT_POINTS]
    floor = float(sol.surfaces.min()) - sol.camera_height if len(sol.surfaces) else \
        float(np.percentile(world[:, idx, 1].min(1), 2.0))
    center = np.array([-world[0, 0, 0], -floor, -world[0, 0, 2]])  # the camera's centre in the world
    return _finish(sol, to_world, center, contacts, k, image_size, fps=fps, hold_feet=hold_feet,
                   up_frames=up_frames, up_source=up_source, start=start)


def _feet_and_height(keypoints_px: np.ndarray, confidence: np.ndarray, min_confidence: float,
                     focal_px: float) -> tuple[np.ndarray, float]:
    """The foot points' pixels (T, 4, 2) where seen (NaN elsewhere), and the person's 2D height:
    the median extent of the seen joints (``focal_px`` when never seen)."""
    idx = [MOTION21.index(n) for n in CONTACT_POINTS]
    kp = np.asarray(keypoints_px, dtype=np.float64)
    seen = np.isfinite(kp).all(-1) & (np.asarray(confidence) >= min_confidence)
    feet_px = np.where(seen[:, idx, None], kp[:, idx], np.nan)
    extents = [np.ptp(kp[i, seen[i], 1]) for i in range(len(kp)) if seen[i].sum() >= 4]
    return feet_px, float(np.median(extents)) if extents else float(focal_px)


def _first_gravity(joints_cam: np.ndarray, feet_px: np.ndarray, height_px: float, k: np.ndarray, *, fps: float,
                   scene_lines: np.ndarray | None):
    """Where the fit starts gravity: the body's cue (:func:`mocap.fit.ground.estimate_up`), or the
    room's vertical near it (:func:`mocap.fit.scene.vertical_up`): (up (3,) camera axes, frames or
    lines it rests on, its source, the :class:`mocap.fit.scene.SceneUp` or None)."""
    up, up_frames, up_source = estimate_up(joints_cam, fps=fps, feet_px=feet_px, height_px=height_px)
    turn = {} if feet_seen(feet_px) >= MIN_FEET_SEEN else {"max_turn": SCENE_TURN_FEET_UNSEEN}
    scene = None if scene_lines is None else vertical_up(scene_lines, k, up, **turn)
    if scene is not None:
        up, up_frames, up_source = scene.up, scene.lines, "scene"
    return up, up_frames, up_source, scene


def first_roll_deg(rel_cam: np.ndarray, root_cam: np.ndarray, keypoints_px: np.ndarray, confidence: np.ndarray, *,
                   fps: float, focal_px: float, image_size: tuple[int, int], min_confidence: float = 0.3,
                   scene_lines: np.ndarray | None = None) -> float:
    """The camera's roll (degrees, :func:`mocap.fit.ground.camera_pitch_roll`'s) where
    :func:`fit_person` with these arguments starts gravity: without fitting (a few degrees from
    the fit's, enough to turn a rolled camera's picture upright for the lift)."""
    feet_px, height_px = _feet_and_height(keypoints_px, confidence, min_confidence, focal_px)
    k = intrinsic_matrix(focal_px, (image_size[0] / 2.0, image_size[1] / 2.0))
    joints_cam = np.asarray(rel_cam, dtype=np.float64) + np.asarray(root_cam, dtype=np.float64)[:, None]
    up = _first_gravity(joints_cam, feet_px, height_px, k, fps=fps, scene_lines=scene_lines)[0]
    return float(np.degrees(camera_pitch_roll(world_from_camera(up))[1]))


#: :func:`floor_scale` keeps a person's size within these factors of the lift's
FLOOR_SCALE_RANGE = (0.6, 1.6)
#: The feet say where the floor is only when the video shows them in at least this share of the
#: frames; otherwise where they stand is the lift's guess: :func:`floor_scale` leaves the size
#: alone, and the room's vertical is looked for further from the body's cue
#: (:data:`SCENE_TURN_FEET_UNSEEN`)
MIN_FEET_SEEN = 0.25
#: How far (radians) the room's vertical may lie from the body's cue for gravity: as
#: :func:`mocap.fit.scene.vertical_up`'s default where the feet are seen; wider where they are
#: not (legs out of the picture or hidden), the cue then resting on the network's guessed legs
#: (a camera 25 degrees down with the legs hidden was read as level: 29 degrees off)
SCENE_TURN_FEET_UNSEEN = np.radians(40.0)


def feet_seen(feet_px: np.ndarray) -> float:
    """The share of frames in which any foot point is seen (``feet_px`` (T, 4, 2), NaN where not)."""
    f = np.asarray(feet_px, dtype=np.float64)
    return float(np.isfinite(f).all(-1).any(-1).mean()) if len(f) else 0.0


def floor_scale(world: np.ndarray, feet_px: np.ndarray, *, camera_height: float, fps: float,
                height_px: float) -> float:
    """The factor that puts a person's planted feet on the floor of a known camera.

    A person and their distance scaled together look the same to the camera, so one camera
    alone does not know a person's size; a camera whose height above the floor is known
    does, for a person standing on that floor.

    Args:
        world: (T, 21, 3) MOTION21 joints, metres, in world axes (+Y up) with the camera at the origin.
        feet_px: (T, 4, 2) the :data:`CONTACT_POINTS` in the image, pixels; NaN where unseen.
        camera_height: metres, the camera above the floor.
    Returns:
        The factor (within :data:`FLOOR_SCALE_RANGE`); 1 where the feet give nothing to go on
        (seen in fewer than :data:`MIN_FEET_SEEN` of the frames: where they stand is the lift's
        guess).
    """
    if feet_seen(feet_px) < MIN_FEET_SEEN:
        return 1.0
    idx = [MOTION21.index(n) for n in CONTACT_POINTS]
    level = _feet_level(world[:, idx, 1], planted(world, feet_px, fps=fps, height_px=height_px))
    if not np.isfinite(level) or level >= -1e-3:  # the feet at or above the camera: nothing to scale by
        return 1.0
    return float(np.clip(-camera_height / level, *FLOOR_SCALE_RANGE))


def _feet_level(feet_y: np.ndarray, contacts: np.ndarray) -> float:
    """Where the feet stand (metres, world y with the camera at 0): the planted foot points'
    median height, or without any, the 2nd percentile of each frame's lowest foot point."""
    if contacts.any():
        return float(np.median(feet_y[contacts]))
    return float(np.percentile(np.nanmin(feet_y, 1), 2.0))


def _solve(rel, joints_cam, world, to_world, offsets, keypoints_px, confidence, feet_px, k, *, fps, height_px,
           camera_height, min_confidence, hold_feet, weights, fix_scale, fix_camera, max_iterations):
    """Contacts, the camera's height (unless given), support surfaces and the IK of the first guess,
    then :func:`solve_fit`; (its solution, the (T, 4) contacts)."""
    parents = np.array(MOTION21.parents)
    idx = [MOTION21.index(n) for n in CONTACT_POINTS]
    contacts = planted(world, feet_px, fps=fps, height_px=height_px)
    feet_y = world[:, idx, 1]
    if camera_height is None:
        camera_height = -_feet_level(feet_y, contacts)
    if not hold_feet:
        contacts = np.zeros_like(contacts)
    surfaces, surface_index = support_surfaces(feet_y + camera_height, contacts)
    if fix_camera and len(surfaces):  # the known floor is the lowest surface they stand on
        surfaces[0] = 0.0
    quats, _ = inverse_kinematics(world, parents=parents, rest_offsets=offsets, skeleton=MOTION21)
    local = quat_wxyz_to_matrix(quats)
    local[:, 0] = to_world.T @ local[:, 0]  # the root's rotation in camera axes

    conf = np.where(np.asarray(confidence) >= min_confidence, confidence, 0.0)
    sol = solve_fit(keypoints_px=keypoints_px, confidence=conf, K=k, rel_cam=rel, local_rotmats=local,
                    root_cam=joints_cam[:, 0] - offsets[0], rest_offsets=offsets, up_cam=to_world[1],
                    camera_height=camera_height, contacts=contacts, surface_index=surface_index, surfaces=surfaces,
                    still=quasi_static(world, contacts, fps=fps), fps=fps, weights=weights,
                    fix_scale=fix_scale, fix_camera=fix_camera, max_iterations=max_iterations)
    return sol, contacts


def _finish(sol, to_world, center, contacts, k, image_size, *, fps, hold_feet, up_frames, up_source, start) -> FitResult:
    """The fitted clip in the world whose axes are ``to_world`` (camera -> world) and where the
    camera's centre is ``center``: IK with its planted feet pinned, nothing under the floor."""
    parents = np.array(MOTION21.parents)
    world = sol.joints_cam @ to_world.T
    local = sol.local_rotmats.copy()
    local[:, 0] = to_world @ local[:, 0]
    quats = clamp_hinge_joints(quat_continuous_wxyz(matrix_to_quat_wxyz(local), axis=0))
    root = world[:, 0] + center - sol.rest_offsets[0]
    joints = forward_kinematics(quats, root, sol.rest_offsets, parents)
    if hold_feet and contacts.any():  # the slide the smooth fit leaves, taken out by the legs
        pinned = pin_planted_feet(joints, contacts)
        quats, _ = inverse_kinematics(pinned, parents=parents, rest_offsets=sol.rest_offsets, skeleton=MOTION21)
        quats = clamp_hinge_joints(quats)
        joints = forward_kinematics(quats, root, sol.rest_offsets, parents)
    # nothing under the floor: frames whose lowest joint the fit left below it are lifted onto it
    below = np.clip(-joints[..., 1].min(1), 0.0, None)
    if below.max() > 0.0:
        lift_y = np.maximum.reduce([below, np.r_[below[1:], 0.0], np.r_[0.0, below[:-1]]])  # one frame either side
        root = root + lift_y[:, None] * np.array([0.0, 1.0, 0.0])
        joints[..., 1] += lift_y[:, None]
    camera = Camera(name="fitted", size=(int(image_size[0]), int(image_size[1])), K=k, R=to_world.T,
                    t=-to_world.T @ center, dist=np.zeros(5))
    motion = Motion(joints=joints, joint_names=MOTION21.joint_names, parents=MOTION21.parents, fps=fps,
                    local_quats_wxyz=quats, root_translation=root, rest_offsets=sol.rest_offsets)
    surfaces = sol.surfaces - (sol.surfaces.min() if len(sol.surfaces) else 0.0)
    return FitResult(motion=motion, camera=camera, contacts=contacts, surfaces=surfaces,
                     up_frames=up_frames, up_source=up_source, iterations=sol.iterations, seconds=time.perf_counter() - start)
