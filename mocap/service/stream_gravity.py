"""Gravity for a live stream (:mod:`mocap.service.stream_session`): from the client's motion
sensor, or from the straight segments of one of its camera images (the room's vertical lines)."""
from __future__ import annotations

import math

import numpy as np

#: most segments a hello's ``scene_lines`` may hold
MAX_SCENE_LINES = 5000


def hello_gravity(msg: dict, size: tuple[int, int], coords: str
                  ) -> tuple[tuple[float, float, float] | None, str, float | None]:
    """Gravity's up in camera axes from a hello: ``gravity`` (the direction things fall, camera
    axes x right, y down, z forward, any length: a phone's motion sensor), else ``scene_lines``
    ([[x1, y1, x2, y2], ...] straight segments of one camera image, pixels or normalised as
    ``coords``; ``focal_px`` optional) through :func:`mocap.fit.scene.vertical_up`; else none.

    Returns:
        (up or None, ``"client"`` / ``"scene"`` / ``"none"``, the focal length in pixels: the
        hello's ``focal_px``, else the lines' (:func:`mocap.fit.scene.focal_from_scene`), else None).
    """
    focal = msg.get("focal_px")
    if focal is not None and (isinstance(focal, bool) or not isinstance(focal, (int, float))
                              or not (math.isfinite(focal) and 0 < focal <= 1e6)):
        raise ValueError(f"focal_px must be a number of pixels in (0, 1e6], got {str(focal)[:40]}")
    focal = None if focal is None else float(focal)
    gravity = msg.get("gravity")
    if gravity is not None:
        if (not isinstance(gravity, (list, tuple)) or len(gravity) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in gravity)):
            raise ValueError(f"gravity must be [x, y, z] in camera axes (x right, y down, z forward), got {gravity!r}")
        g = np.array(gravity, dtype=np.float64)
        if not np.isfinite(g).all() or np.linalg.norm(g) < 1e-9:
            raise ValueError("gravity must be finite and not [0, 0, 0]")
        return tuple(float(v) for v in -g / np.linalg.norm(g)), "client", focal
    lines = msg.get("scene_lines")
    if lines is None:
        return None, "none", focal
    try:
        seg = np.array(lines, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        seg = np.zeros((0, 0))
    if seg.ndim != 2 or seg.shape[1:] != (4,) or len(seg) > MAX_SCENE_LINES or not np.isfinite(seg).all():
        raise ValueError(f"scene_lines must be [[x1, y1, x2, y2], ...] (at most {MAX_SCENE_LINES}), finite numbers")
    if coords == "normalized":
        seg = seg * np.array([size[0], size[1], size[0], size[1]], np.float64)
    from mocap.camera import intrinsic_matrix
    from mocap.fit.scene import focal_from_scene, vertical_up
    from mocap.lift.lifters import default_focal_px

    if focal is None:
        focal = focal_from_scene(seg, size)
    found = vertical_up(seg, intrinsic_matrix(focal or default_focal_px(size), (size[0] / 2, size[1] / 2)),
                        np.array([0.0, -1.0, 0.0]), max_turn=np.radians(45.0))
    return (None, "none", focal) if found is None else (tuple(float(v) for v in found.up), "scene", focal)


def world_rotation(up: tuple[float, float, float] | None) -> np.ndarray:
    """(3, 3) rotation from camera axes to a stream's world: +Y gravity's ``up`` (camera axes),
    the camera looking along -Z (:func:`mocap.fit.ground.world_from_camera`); without it the
    camera's own axes with y and z flipped."""
    from mocap.cleanup.world import CAMERA_TO_WORLD
    from mocap.fit.ground import world_from_camera

    return CAMERA_TO_WORLD.copy() if up is None else world_from_camera(np.asarray(up, dtype=np.float64))


def picture_turn_for(up: tuple[float, float, float] | None) -> np.ndarray | None:
    """(3, 3) :func:`mocap.lift.trajectory.picture_turn` that stands a camera's picture upright
    when gravity (``up``, camera axes) shows it rolled by more than
    :data:`mocap.lift.trajectory.UPRIGHT_ROLL_DEG`; None otherwise (or without gravity)."""
    if up is None:
        return None
    from mocap.fit.ground import camera_pitch_roll
    from mocap.lift.trajectory import UPRIGHT_ROLL_DEG, picture_turn

    roll = camera_pitch_roll(world_rotation(up))[1]
    return picture_turn(-roll) if abs(math.degrees(roll)) > UPRIGHT_ROLL_DEG else None


def camera_angles(up: tuple[float, float, float] | None) -> dict:
    """The camera's pitch and roll in degrees for the server's hello ({} without gravity)."""
    if up is None:
        return {}
    from mocap.fit.ground import camera_pitch_roll

    pitch, roll = camera_pitch_roll(world_rotation(up))
    return {"camera_pitch_deg": round(math.degrees(pitch), 3), "camera_roll_deg": round(math.degrees(roll), 3)}


def world_joints(rel_cam: np.ndarray, keypoints: np.ndarray, layout: str, *, up, focal_px: float,
                 size: tuple[int, int], last_px: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """One frame of the network (root-relative, in the axes of a camera aimed at the person,
    (21, 3) metres) -> the stream's world (:func:`world_rotation`), and the hips' pixel used.

    With gravity the joints are first turned from the person's ray into the camera's axes
    (:func:`mocap.lift.trajectory.ray_to_camera`, at the hips' pixel of ``keypoints`` (J, 2),
    else ``last_px``), as the offline pipeline does; without it they stay in the ray's axes,
    flipped, as before (a person seen from above then leans by the ray's angle, not the camera's).
    """
    if up is None:
        return rel_cam @ world_rotation(None).T, last_px
    from mocap.lift.trajectory import ray_to_camera
    from mocap.skeletons import MOTION21, map_joints

    hips = map_joints(np.asarray(keypoints, dtype=np.float64)[None], layout, MOTION21)[0, MOTION21.index("pelvis")]
    px = hips if np.isfinite(hips).all() else last_px
    if px is None:
        px = np.array([size[0] / 2.0, size[1] / 2.0])
    turn = ray_to_camera(px[None], focal_px=focal_px, principal_px=(size[0] / 2.0, size[1] / 2.0))[0]
    return rel_cam @ (world_rotation(up) @ turn).T, px
