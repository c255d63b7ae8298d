"""The cameras of a multi-view capture: a calibration file matched to the videos, refined to
the person, or calibrated from the person alone."""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, ContextManager, Sequence

import numpy as np

from mocap.camera import Camera
from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.rotations import nearest_axis

Stage = Callable[[str], ContextManager]


def _no_timer(name: str) -> ContextManager:
    return contextlib.nullcontext()


def check_cameras(cameras: Sequence[Camera], views: Sequence[Keypoints2D], names: Sequence[str]) -> list[Camera]:
    """Cameras matched to the views, with intrinsics scaled to the views' image size.

    MocapError if the counts differ or an image size cannot come from the calibrated
    camera (aspect ratio changed); a warning when sizes differ by a crop of under 2 %.
    """
    if len(cameras) != len(views):
        raise MocapError(f"the calibration has {len(cameras)} cameras but {len(views)} videos were given; "
                         "give one video per calibrated camera, in the calibration's order")
    out = []
    for cam, view, name in zip(cameras, views, names):
        (cw, ch), (vw, vh) = cam.size, view.image_size
        if (cw, ch) == (vw, vh):
            out.append(cam)
            continue
        sx, sy = vw / cw, vh / ch
        if abs(sx - sy) < 0.01 * max(sx, sy) and abs(sx - 1) >= 0.02:
            k = np.diag([sx, sy, 1.0]) @ cam.K
            out.append(Camera(name=cam.name, size=(vw, vh), K=k, R=cam.R, t=cam.t, dist=cam.dist))
        elif abs(sx - 1) < 0.02 and abs(sy - 1) < 0.02:
            warnings.warn(f"{name}: calibrated for {cw}x{ch} pixels, the video is {vw}x{vh}; "
                          "using the calibration as it is (a crop at the right/bottom edge is harmless)")
            out.append(cam)
        else:
            raise MocapError(f"{name}: the calibration's camera {cam.name} is {cw}x{ch} pixels but the video is "
                             f"{vw}x{vh}; check the order of the videos against the calibration")
    return out


def match_cameras(cameras: Sequence[Camera], views: Sequence[Keypoints2D],
                  names: Sequence[str]) -> tuple[list[Camera], list[str]]:
    """The file's cameras in the order of the views (by name when the calibration names them
    like the videos, else as they are), checked by :func:`check_cameras`; and its warnings."""
    by_name = {c.name: c for c in cameras}
    if set(by_name) == set(names):
        cameras = [by_name[n] for n in names]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cameras = check_cameras(cameras, views, names)
    return cameras, [str(w.message) for w in caught]


def fit_rig(views: Sequence[Keypoints2D], names: Sequence[str], cameras: Sequence[Camera] | None,
            calibration: str, *, auto: bool, refine: bool, body_height_m: float | None, focal_px: float | None,
            stage: Stage = _no_timer) -> tuple[list[Camera], str]:
    """The cameras for synchronised ``views``: from the person (``auto``), the file's
    ``cameras`` refined to the person (``refine``), or the file's as they are; and a line
    saying where they come from.

    Args:
        views: C synchronised Keypoints2D (same T), distorted pixels.
        cameras: the file's C cameras matched to the views (:func:`match_cameras`); None with ``auto``.
        calibration: the file's name, for the line.
        body_height_m: the person's standing height, metres (the scale of ``auto``).
        focal_px: the cameras' focal length, pixels (``auto``); None: a 55 degree field of
            view, which the adjustment then corrects.
    """
    kp = np.stack([v.keypoints for v in views]).astype(np.float64)
    cf = np.stack([v.confidence for v in views]).astype(np.float64)
    if auto:
        from mocap.multiview.calibration import calibrate_from_people, guess_intrinsics

        with stage("calibrate from people"):
            intr = [guess_intrinsics(v.image_size, focal_px=focal_px, name=n) for n, v in zip(names, views)]
            # a guessed field of view is corrected by the adjustment; a stated focal length is kept
            cams, people = calibrate_from_people(kp, cf, intr, body_height_m=body_height_m, layout=views[0].layout,
                                                 refine_focal=focal_px is None)
        return cams, (f"from the person (body height {body_height_m:.2f} m, focal length "
                      f"{cams[0].K[0, 0]:.0f} px, bundle adjustment median "
                      f"{', '.join(f'{e:.1f}' for e in people.reprojection_px)} px)")
    if not refine:
        return list(cameras), str(calibration)
    from mocap.multiview.calibration import compare_rigs, refine_extrinsics

    with stage("refine calibration"):
        refined, _ = refine_extrinsics(cameras, kp, cf, layout=views[0].layout)
        turned, _ = compare_rigs(refined, cameras)
        moved = [float(np.linalg.norm(a.position - b.position)) for a, b in zip(refined, cameras)]
    return refined, (f"{calibration} refined from the person (poses moved by up to "
                     f"{max(turned):.1f} deg, {1000 * max(moved):.0f} mm)")


def world_holds_gravity(cameras: Sequence[Camera], *, auto: bool = False, tol: float = 1e-3) -> bool:
    """Whether the rig's world axes may be taken to hold gravity (one of them vertical): not for
    a rig calibrated from people (``auto``: its world is its first camera's), nor for a file
    whose world is one of its cameras' own frame (a camera at the origin, unrotated, within
    ``tol``: as calibrations that fix the first camera write them), which is as tilted as that
    camera. A world set by a mocap system or by a board laid on the floor holds it."""
    if auto:
        return False
    return not any(np.abs(c.R - np.eye(3)).max() < tol and np.abs(c.t).max() < tol for c in cameras)


#: how far (degrees) the rooms' vertical may lie from the nearest axis of a calibration whose world
#: holds gravity before the rooms' vertical is taken instead (:func:`gravity_in_world`)
AXIS_TRUST_DEG = 2.0


def gravity_in_world(scene_up: np.ndarray | None, holds_gravity: bool, *, tolerance_deg: float = AXIS_TRUST_DEG
                     ) -> tuple[np.ndarray | None, str | None]:
    """Gravity's up in a rig's world from the rooms' vertical lines (``scene_up``, unit (3,) or
    None: :func:`mocap.fit.scene.rig_up`), and a note for the summary.

    A world that holds gravity (:func:`world_holds_gravity`) keeps its nearest axis when the
    lines agree with it within ``tolerance_deg`` (a mocap system's or a level board's world);
    farther off (a board laid on a slope or held at a slant) the lines win, and the note says
    by how much. A world that does not hold gravity takes the lines'. None: no lines, so the
    axis or the torso decides, as before.
    """
    if scene_up is None:
        return None, None
    up = np.asarray(scene_up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    if not holds_gravity:
        return up, "gravity from the vertical lines of the room in the views (the rig's world is not level)"
    axis, off = nearest_axis(up)
    if off <= tolerance_deg:
        return axis, None
    return up, (f"the calibration's world is {off:.1f} deg off the vertical lines of the room in the views "
                "(a board on a slope or held at a slant?): gravity from the lines")
