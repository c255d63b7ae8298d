"""BlazePose in PyTorch: MediaPipe's pose detector and full landmark model, batched, CPU or CUDA.

The two networks are MediaPipe's (the .tflite files of mediapipe 0.10.21, Apache-2.0),
converted once by ``scripts/convert_blazepose.py`` into ``weights/`` in this package (graph
as JSON, float16 weights as a torch state dict, exactly the values the .tflite stores) and
turned into torch modules at load time by :mod:`mocap.detect2d.estimators.tflite_torch`; the
pre- and post-processing (:mod:`mocap.detect2d.estimators.blazepose_anchors`) follows MediaPipe's
pose graph, whose options were read into ``weights/pose_graph.json``. Neither mediapipe nor
the ``tflite`` package is needed, nothing is downloaded (``models="mediapipe"`` reads the
installed mediapipe's files instead).

One frame, as MediaPipe does it:

1. the detector sees the frame letterboxed to 224x224 (values in [-1, 1]); SSD boxes with 4
   keypoints are decoded from 2254 anchors, merged by weighted non-max suppression;
2. each detection gives a square, rotated ROI: centred on the hip keypoint, side 2.5 times
   the hip -> "body scale" keypoint distance, turned so the body is upright;
3. the ROI is cropped to 256x256 (bilinear, edge pixels repeated, values in [0, 1]) and the
   landmark network gives 39 landmarks (33 body + auxiliary), visibility and presence
   logits (sigmoid), a pose presence score, a 64x64 heatmap per landmark (which refines x,
   y) and world coordinates (metres);
4. landmarks are projected back to image pixels; the auxiliary landmarks give the ROI for
   the next frame when tracking.

Three ways to run it:

- ``est(frames)``: independent images (detector + landmarks on each), the estimator
  interface of :mod:`mocap.detect2d.estimators.base`;
- :meth:`BlazePoseTorch.track`: a video in time order, MediaPipe's VIDEO-mode logic (ROI
  from the previous frame's landmarks, detector again when the pose is lost, and with
  ``max_people`` > 1 at a cadence and when a track weakens, to find new people:
  :mod:`mocap.detect2d.estimators.blazepose_tracking`); serial in time, batched over views
  (:meth:`BlazePoseTorch.tracker`);
- :meth:`BlazePoseTorch.video`: offline throughput. The video is cut into segments that
  advance side by side, so every network call holds one crop per segment: a segment's
  first frame goes through the detector and (``refine``) a second landmark pass in the ROI
  the first pass's auxiliary landmarks give for that same frame (what tracking would hand
  to the next frame, without the frame of lag); its later frames are tracked. ``span`` (the
  segment length) trades detector calls against frames held in memory: 1 means detector +
  landmarks on every frame, all batched.

Confidence of a joint is its visibility (as in :mod:`mocap.detect2d.mediapipe_pose`); a person's score is the
landmark network's pose presence score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from mocap.detect2d.estimators import blazepose_anchors as bp
from mocap.detect2d.estimators.base import Estimate, replace_rows, stack_people
from mocap.detect2d.estimators.blazepose_tracking import (PoseTracker, concat_estimates, detector_windows,
                                                         distinct_poses, distinct_rois, fine_window, limb_edges,
                                                         part_of_another, same_roi)
from mocap.detect2d.estimators.roi_crop import crop_rois, device_images
from mocap.detect2d.estimators.tflite_torch import run_batched
from mocap.errors import MocapError
from mocap.skeletons import MEDIAPIPE33

NUM_JOINTS = 33
#: the limbs and the torso (its diagonals too) on which a part of a person lies (:func:`part_of_another`)
LIMBS = limb_edges(MEDIAPIPE33)
#: with ``max_people`` > 1, a person the detector finds must stand at least this tall (their
#: seen landmarks' extent, times the frame's short side): the closer windows of the detector's
#: turns proposed a ceiling rig 67 px tall in pose2sim_two_people cam03 (1088 x 1920); the
#: smallest real bystander there is 357 px
MIN_NEW_HEIGHT = 0.1
#: the landmarks' left/right permutation (one person read facing the other way: :func:`distinct_poses`)
MIRROR = np.asarray(MEDIAPIPE33.mirror_permutation())
#: the shoulders and hips: two tracked poses are one person only if these agree (:func:`distinct_poses`)
TORSO = np.array([MEDIAPIPE33.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")])


@dataclass(frozen=True)
class PoseLandmarks:
    """Landmarks of N ROIs (one person each), in pixels of their frames.

    Attributes:
        frame: (N,) int, index of the frame in the batch.
        keypoints: (N, 33, 2) float32 pixels (x right, y down).
        z: (N, 33) float32 depth relative to the hips, pixels (MediaPipe's z times the ROI side).
        visibility: (N, 33) float32 in [0, 1].
        presence: (N, 33) float32 in [0, 1], per-landmark presence.
        score: (N,) float32 in [0, 1], pose presence score.
        world: (N, 33, 3) float32 metres, origin between the hips, camera axes.
        roi: (N, 5) ROI the landmarks were computed in (cx, cy, w, h pixels, rotation radians).
        next_roi: (N, 5) ROI from the auxiliary landmarks (what tracking uses next).
    """

    frame: np.ndarray
    keypoints: np.ndarray
    z: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    score: np.ndarray
    world: np.ndarray
    roi: np.ndarray
    next_roi: np.ndarray

    def take(self, mask: np.ndarray) -> PoseLandmarks:
        """The ROIs where ``mask`` (N,) bool is true."""
        return PoseLandmarks(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


# test-time augmentation: (width factor (negative: mirrored), size factor, shift x, shift y (fractions of the
# ROI side, in the ROI's axes), turn (radians)) per pass; row 0 is the plain pass
TTA_VARIANTS = np.array([
    [1, 1.00, 0, 0, 0], [-1, 1.00, 0, 0, 0],
    [1, 0.93, 0, 0, 0], [-1, 0.93, 0, 0, 0], [1, 1.07, 0, 0, 0], [-1, 1.07, 0, 0, 0],
    [1, 1.00, 0.03, 0, 0], [1, 1.00, -0.03, 0, 0], [1, 1.00, 0, 0.03, 0], [1, 1.00, 0, -0.03, 0],
    [1, 1.00, 0, 0, 0.08], [1, 1.00, 0, 0, -0.08],
], dtype=np.float64)


def tta_rois(rois: np.ndarray) -> np.ndarray:
    """(N, 5) ROIs -> (N * V, 5): the :data:`TTA_VARIANTS` of each ROI, ROI-major.

    A negative width mirrors the crop (:func:`~mocap.detect2d.estimators.blazepose_anchors.roi_to_crop_matrix`
    and ``project_from_roi`` both scale by it, so pixels map back unmirrored).
    """
    rois = np.asarray(rois, np.float64).reshape(-1, 1, 5)
    var = TTA_VARIANTS[None]
    cx, cy, w, h, r = (rois[..., i] for i in range(5))
    c, s = np.cos(r), np.sin(r)
    dx, dy = var[..., 2] * w, var[..., 3] * h
    out = np.stack([cx + c * dx - s * dy, cy + s * dx + c * dy, w * var[..., 0] * var[..., 1], h * var[..., 1],
                    r + var[..., 4]], -1)
    return out.reshape(-1, 5)


class BlazePoseTorch:
    """MediaPipe BlazePose (full) in PyTorch; see the module docstring.

    Args:
        device: torch device, "cpu" or "cuda[:i]".
        max_people: most people per frame (detections kept after non-max suppression).
        min_confidence: threshold on the detector score and on the pose presence score.
        min_tracking_confidence: presence below it ends a track (:meth:`track`); default
            ``min_confidence``.
        batch_size: crops per network call (default 256 on CUDA; 8 on CPU, where larger
            batches ran slower per frame with glibc's malloc, which maps and zeroes
            activations over 32 MB afresh on every call, and smaller ones too until
            :func:`~mocap.detect2d.estimators.tflite_torch.steady_heap`, which
            :func:`~mocap.detect2d.estimators.tflite_torch.run_batched` calls on the CPU; see
            benchmarks/bench_blazepose.py).
        half: float16 networks (CUDA only).
        warp: "cv2" (crops on the CPU with OpenCV, as MediaPipe does) or "torch"
            (``grid_sample`` on ``device``); default "cv2" on CPU, "torch" on CUDA.
        threads: if given, ``torch.set_num_threads(threads)`` (process-wide).
        tta: test-time augmentation: every ROI also goes through the landmark network
            mirrored, scaled, shifted and turned (:data:`TTA_VARIANTS`, 12 passes in all) and
            each keypoint is the per-coordinate median of the passes (mirrored passes with
            left and right swapped). Steadier keypoints for offline work, at 12 times the
            landmark cost; confidence is the median visibility; the ROI for the next frame,
            depth, world landmarks and score come from the plain pass.
        models: where the networks and the graph options come from: ``"package"`` (the
            converted files shipped in ``weights/``; no mediapipe) or ``"mediapipe"`` (the
            .tflite files of the installed mediapipe 0.10.21, read with the ``tflite`` package);
            see :func:`mocap.detect2d.estimators.blazepose_models.load_graphs`.
    """

    name = "blazepose-torch"
    layout = "mediapipe33"
    num_joints = NUM_JOINTS
    #: with ``max_people`` > 1, a tracked stream re-runs the detector this often (frames) to find new people
    detect_every = 8
    #: a tracked pose scoring under this counts as weakening: the detector runs on the next frame
    weak_score = 0.8
    #: with ``max_people`` > 1, the detector score that proposes a person (at most ``min_confidence``): the
    #: landmark network's presence score still has to reach ``min_confidence``. The detector keys on the face,
    #: so a person seen from behind, far off or with a blurred face scores low.
    new_person_score = 0.3

    def __init__(self, device: str = "cpu", max_people: int = 1, min_confidence: float = 0.5, *,
                 min_tracking_confidence: float | None = None, batch_size: int | None = None, half: bool = False,
                 warp: str | None = None, threads: int | None = None, tta: bool = False,
                 models: str = "package") -> None:
        try:
            import torch
        except ImportError:
            from mocap.errors import missing_extra
            raise missing_extra("torch", "lift") from None
        from mocap.detect2d.estimators.blazepose_models import load_graphs
        from mocap.detect2d.estimators.tflite_torch import load_tflite

        if int(max_people) < 1:
            raise ValueError(f"max_people must be at least 1, got {max_people}")
        for label, v in (("min_confidence", min_confidence), ("min_tracking_confidence", min_tracking_confidence)):
            if v is not None and not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{label} must lie in [0, 1], got {v}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for but torch sees no CUDA GPU; use device='cpu'")
        if half and self.device.type != "cuda":
            raise ValueError("half=True needs a CUDA device (float16 convolutions are slow or missing on CPU)")
        self.warp = warp or ("torch" if self.device.type == "cuda" else "cv2")
        if self.warp not in ("cv2", "torch"):
            raise ValueError(f"warp must be 'cv2' or 'torch', got {warp!r}")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.max_people = int(max_people)
        self.tta = bool(tta)
        self.min_confidence = float(min_confidence)
        self.min_tracking_confidence = float(min_confidence if min_tracking_confidence is None
                                             else min_tracking_confidence)
        self.batch_size = int(batch_size or (256 if self.device.type == "cuda" else 8))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dtype = torch.float16 if half else torch.float32
        self.graph = bp.read_pose_graph(models)
        g = self.graph
        self.anchors = bp.ssd_anchors(g.anchors)

        det_graph, lm_graph = load_graphs(models)
        want = (1, g.detector_size[1], g.detector_size[0], 3)
        if det_graph.tensors[det_graph.inputs[0]].shape != want:
            raise MocapError(f"{det_graph.path.name} takes {det_graph.tensors[det_graph.inputs[0]].shape}, "
                             f"expected {want}")
        shapes = [det_graph.tensors[i].shape for i in det_graph.outputs]
        self._det_order = (shapes.index((1, g.decode.num_boxes, g.decode.num_coords)),
                           shapes.index((1, g.decode.num_boxes, 1)))
        j = g.num_landmarks
        shapes = [lm_graph.tensors[i].shape for i in lm_graph.outputs]
        heat = [k for k, s in enumerate(shapes) if len(s) == 4 and s[-1] == j]
        lm_outputs = [shapes.index((1, j * 5)), shapes.index((1, 1)), heat[0], shapes.index((1, j * 3))]
        self.detector = load_tflite(det_graph).to(self.device, self.dtype)
        self.landmarker = load_tflite(lm_graph, outputs=lm_outputs).to(self.device, self.dtype)  # no segmentation

    # ------------------------------------------------------------ crops

    def _crops(self, images: Sequence[np.ndarray], frame: np.ndarray, rois: np.ndarray, size: tuple[int, int],
               value_range: tuple[float, float], zero_border: bool):
        """(N, H, W, 3) torch tensor on the device: ROI crops scaled to ``value_range`` (:func:`crop_rois`)."""
        return crop_rois(images, frame, rois, size, value_range, zero_border, warp=self.warp, device=self.device,
                         dtype=self.dtype)

    def _images(self, frames) -> list:
        """Frames -> list of (H, W, 3) uint8 RGB images (:func:`device_images`)."""
        return device_images(frames, self.warp, self.device)

    def _run(self, net, x) -> list[np.ndarray]:
        """Run ``net`` over ``x`` (N, ...) in chunks of batch_size (:func:`run_batched`) -> its
        outputs as float32 numpy."""
        return [y.float().cpu().numpy() for y in run_batched(net, x, self.batch_size)]

    # ------------------------------------------------------------ stages

    def detect(self, images: Sequence[np.ndarray], turns: Sequence[int | None] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pose detector on (H, W, 3) uint8 RGB images (in the windows of
        :func:`~mocap.detect2d.estimators.blazepose_tracking.detector_windows`). ``turns``: per
        image, None for every window, or n for the whole image and only the (n mod count)-th of
        the closer squares along its long side (a tracker looking for newcomers takes them in
        turn).

        Returns:
            frame: (N,) int frame index of each detection (at most ``max_people`` per frame).
            rois: (N, 5) landmark ROIs (cx, cy, w, h pixels, rotation radians).
            scores: (N,) float32 detector scores, best first within a frame.
        """
        g = self.graph
        n = len(images)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros((0, 5)), np.zeros(0, np.float32)
        turns = [None] * n if turns is None else list(turns)
        windows = [(f, *win) for f, im in enumerate(images)
                   for win in detector_windows(im.shape[1], im.shape[0], g.detector_size, self.max_people > 1,
                                               turn=turns[f])]
        x = self._crops(images, np.array([v[0] for v in windows]), np.stack([v[1] for v in windows]),
                        g.detector_size, g.detector_range, g.detector_border_zero)
        out = self._run(self.detector, x)
        raw_boxes, raw_scores = out[self._det_order[0]], out[self._det_order[1]]
        min_score = self.min_confidence if self.max_people == 1 else min(self.min_confidence, self.new_person_score)
        decoded = bp.decode_detections(raw_boxes, raw_scores, self.anchors, g.decode, min_score=min_score)
        frames, rois, scores = [], [], []
        for (f, _, padding, origin, size), (box, kp, score) in zip(windows, decoded):
            if fine_window(size, images[f].shape[1], images[f].shape[0]):  # a close look: only clear detections
                box, kp, score = box[score >= self.min_confidence], kp[score >= self.min_confidence], \
                    score[score >= self.min_confidence]
            box, kp, score = bp.weighted_nms(box, kp, score, threshold=g.nms_threshold, weighted=g.nms_weighted,
                                             max_detections=self.max_people)
            if not len(score):
                continue
            kp_px = bp.remove_letterbox(kp, padding) * size + origin
            rois.append(bp.rois_from_keypoints(kp_px, g.detection_roi))
            frames.append(np.full(len(score), f))
            scores.append(score)
        if not frames:
            return np.zeros(0, np.int64), np.zeros((0, 5)), np.zeros(0, np.float32)
        frame, roi, score = np.concatenate(frames), np.concatenate(rois), np.concatenate(scores)
        keep = distinct_rois(roi, score, frame)  # one person seen in two windows is one detection
        order = np.lexsort((-score, frame))
        order = order[keep[order]]
        rank = np.concatenate([np.arange(c) for c in np.bincount(frame[order], minlength=n)]) if len(order) else order
        order = order[rank < self.max_people]
        return frame[order], roi[order], score[order]

    def landmarks(self, images: Sequence[np.ndarray], frame: np.ndarray, rois: np.ndarray) -> PoseLandmarks:
        """Landmark network on the ROIs ``rois`` (N, 5) of ``images[frame[n]]`` (all N in batches);
        with ``tta``, the median over the ROI variants of :data:`TTA_VARIANTS`."""
        if not self.tta:
            return self._landmarks_once(images, frame, rois)
        frame = np.asarray(frame, np.int64)
        rois = np.asarray(rois, np.float64).reshape(-1, 5)
        n, v = len(frame), len(TTA_VARIANTS)
        if n == 0:
            return self._landmarks_once(images, frame, rois)
        lm = self._landmarks_once(images, np.repeat(frame, v), tta_rois(rois))
        mirrored = np.tile(TTA_VARIANTS[:, 0] < 0, n).reshape(n, v)
        perm = MIRROR
        kp = lm.keypoints.reshape(n, v, NUM_JOINTS, 2)
        vis = lm.visibility.reshape(n, v, NUM_JOINTS)
        kp = np.where(mirrored[..., None, None], kp[:, :, perm], kp)
        vis = np.where(mirrored[..., None], vis[:, :, perm], vis)
        plain = lm.take(np.arange(n * v) % v == 0)
        return PoseLandmarks(plain.frame, np.median(kp, axis=1).astype(np.float32), plain.z,
                             np.median(vis, axis=1).astype(np.float32), plain.presence, plain.score, plain.world,
                             plain.roi, plain.next_roi)

    def _landmarks_once(self, images: Sequence[np.ndarray], frame: np.ndarray, rois: np.ndarray) -> PoseLandmarks:
        """One landmark-network pass on the ROIs ``rois`` (N, 5) of ``images[frame[n]]``."""
        import torch

        g = self.graph
        frame = np.asarray(frame, np.int64)
        rois = np.asarray(rois, np.float64).reshape(-1, 5)
        n, j = len(frame), g.num_landmarks
        if n == 0:
            z = np.zeros((0, NUM_JOINTS), np.float32)
            return PoseLandmarks(frame, np.zeros((0, NUM_JOINTS, 2), np.float32), z, z, z, np.zeros(0, np.float32),
                                 np.zeros((0, NUM_JOINTS, 3), np.float32), rois, rois)
        x = self._crops(images, frame, rois, g.landmark_size, g.landmark_range, g.landmark_border_zero)
        lm, pres, heat, wld = run_batched(self.landmarker, x, self.batch_size)
        with torch.inference_mode():
            lm = lm.float().view(-1, j, 5)
            xy = lm[..., :2] / torch.tensor(g.landmark_size, device=lm.device, dtype=torch.float32)
            xy = _refine_torch(xy, heat.float(), g.refine_kernel, g.refine_min_confidence).cpu().numpy()
            raw, flag = lm.cpu().numpy(), pres.float().cpu().numpy()[:, 0]
            world = wld.float().view(-1, j, 3).cpu().numpy()
        px = bp.project_from_roi(xy.astype(np.float64), rois)
        from scipy.special import expit as sig  # the logistic function, without overflow warnings

        vis = sig(raw[..., 3]) if g.visibility_sigmoid else raw[..., 3]
        pres = sig(raw[..., 4]) if g.presence_sigmoid else raw[..., 4]
        b0, b1 = g.body_landmarks
        a0, a1 = g.aux_landmarks
        c, s = np.cos(rois[:, 4])[:, None], np.sin(rois[:, 4])[:, None]
        wx, wy = world[:, b0:b1, 0], world[:, b0:b1, 1]
        world_rot = np.stack([c * wx - s * wy, s * wx + c * wy, world[:, b0:b1, 2]], -1)
        next_roi = bp.rois_from_keypoints(px[:, a0:a1], g.landmark_roi)
        return PoseLandmarks(frame, px[:, b0:b1].astype(np.float32),
                             (raw[:, b0:b1, 2] / g.landmark_size[0] * rois[:, 2:3]).astype(np.float32),
                             np.clip(vis[:, b0:b1], 0, 1).astype(np.float32),
                             np.clip(pres[:, b0:b1], 0, 1).astype(np.float32), flag.astype(np.float32),
                             world_rot.astype(np.float32), rois, next_roi)

    def _to_estimate(self, n_frames: int, lm: PoseLandmarks) -> Estimate:
        per_frame = []
        for f in range(n_frames):
            m = lm.frame == f
            per_frame.append((lm.keypoints[m], lm.visibility[m], lm.score[m]))
        return stack_people(per_frame, NUM_JOINTS, self.layout)

    def _needs_detector(self, rois: np.ndarray, weak: bool, since: int, wait: int = 1) -> bool:
        """Whether a stream runs the detector this frame: nobody tracked; or, with room for
        more people (``max_people`` > tracks), a track weakened or ended on the previous
        frame and the detector last ran at least ``wait`` frames ago (``since``: frames since
        it ran, 1 = the previous frame), or ``detect_every`` frames have passed since the
        last detection (new people)."""
        if len(rois) == 0:
            return True
        return len(rois) < self.max_people and ((weak and since >= wait) or since >= self.detect_every)

    def next_wait(self, wait: int, weak: bool, detected: bool) -> int:
        """The ``wait`` of :meth:`_needs_detector` for the next frame: back to 1 once no track is
        weak; doubled (at most ``detect_every``) each time the detector ran and a track is
        still weak (or what it found was lost at once), so that a person the landmark
        network keeps losing (a half-hidden bystander) is looked for again after 1, 2, 4, 8
        frames rather than on every frame."""
        if not weak:
            return 1
        return min(2 * wait, self.detect_every) if detected else wait

    def _step(self, images: Sequence[np.ndarray], slots: Sequence[int], rois: list[np.ndarray],
              refine: bool, detect: Sequence[bool] | None = None, turns: Sequence[int | None] | None = None
              ) -> tuple[PoseLandmarks, list[np.ndarray], list[bool]]:
        """One tracking step for S slots (a slot is one stream: a view, or a segment of a video).

        Args:
            slots: (S,) index into ``images`` of each slot's current frame.
            rois: per slot, (P_s, 5) ROIs from its previous frame's landmarks (P_s may be 0).
            refine: ROIs that come from the detector get a second landmark pass in the ROI
                from their first pass's auxiliary landmarks.
            detect: per slot, run the detector (default: where fewer than ``max_people`` are tracked).
            turns: per slot, which of the detector's closer windows to look in (:meth:`detect`;
                default: all).

        Returns:
            the landmarks of the people found (score >= min_confidence; ``frame`` indexes
            ``images``), per slot the ROIs for its next frame (tracks below
            ``min_tracking_confidence`` end; of two ROIs that converged on one person, the
            better-scored is kept), and per slot whether a track weakened (scored under
            ``weak_score``) or ended.
        """
        rois = [r.copy() for r in rois]
        fresh = [np.zeros(len(r), bool) for r in rois]
        if detect is None:
            detect = [len(r) < self.max_people for r in rois]
        lost = [k for k in range(len(slots)) if detect[k]]
        if lost:
            f, r, _ = self.detect([images[slots[k]] for k in lost], None if turns is None else [turns[k] for k in lost])
            for j, k in enumerate(lost):
                new = [roi for roi in r[f == j] if not any(same_roi(roi, old) for old in rois[k])]
                new = new[:self.max_people - len(rois[k])]
                if new:
                    rois[k] = np.concatenate([rois[k], np.asarray(new)])
                    fresh[k] = np.concatenate([fresh[k], np.ones(len(new), bool)])
        slot = np.concatenate([np.full(len(r), k) for k, r in enumerate(rois)]).astype(np.int64)
        frame = np.asarray(slots, np.int64)[slot]
        lm = self.landmarks(images, frame, np.concatenate(rois))
        fresh = np.concatenate(fresh)
        if refine and fresh.any():
            second = self.landmarks(images, frame[fresh], lm.next_roi[fresh])
            use = np.zeros(len(fresh), bool)
            use[np.nonzero(fresh)[0][second.score >= self.min_confidence]] = True
            lm = replace_rows(lm, use, second.take(second.score >= self.min_confidence))
        distinct = np.ones(len(slot), bool)
        if self.max_people > 1:
            distinct = distinct_poses(lm.keypoints, lm.roi, lm.score, slot, mirror=MIRROR, visibility=lm.visibility,
                                      fresh=fresh, torso=TORSO)
            found = np.nonzero(distinct & (lm.score >= self.min_confidence))[0]
            distinct[found[part_of_another(lm.keypoints[found], lm.visibility[found], slot[found], fresh[found],
                                           LIMBS)]] = False
            shorts = np.array([min(images[f].shape[:2]) for f in frame], np.float64)
            distinct[fresh & (_pose_height(lm.keypoints, lm.visibility) < MIN_NEW_HEIGHT * shorts)] = False
        keep = (lm.score >= self.min_tracking_confidence) & distinct
        nxt, weak = [], []
        for k in range(len(slots)):
            mine = slot == k
            nxt.append(lm.next_roi[keep & mine])
            ended = mine & ~keep & ~(fresh & ~distinct)  # a fresh duplicate of a tracked person ends no track
            weak.append(bool(ended.any() or (lm.score[mine & keep] < self.weak_score).any()))
        return lm.take((lm.score >= self.min_confidence) & distinct), nxt, weak

    # ------------------------------------------------------------ public API

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> Estimate:
        """Independent images (B, H, W, 3) or a list (see :func:`mocap.detect2d.estimators.base.as_rgb`)
        -> :class:`Estimate` (B, P, 33, ...); detector + landmarks on every image, as MediaPipe's
        IMAGE mode."""
        images = self._images(frames)
        lm = self.landmarks(images, *self.detect(images)[:2])
        return self._to_estimate(len(images), lm.take(lm.score >= self.min_confidence))

    def tracker(self, views: int = 1, *, refine: bool = False) -> PoseTracker:
        """A :class:`PoseTracker` following people in ``views`` synchronised videos."""
        return PoseTracker(self, views, refine=refine)

    def track(self, frames: Iterable[np.ndarray], *, refine: bool = False, tracker: PoseTracker | None = None) -> Estimate:
        """One video, frames in time order -> :class:`Estimate` (T, P, 33, ...), as MediaPipe's
        VIDEO mode (without its smoothing): ROI from the previous frame's landmarks, the
        detector when a pose is lost (and, with ``max_people`` > 1, every ``detect_every``
        frames and when a track weakens). Serial: one frame per network call. To go on with
        the same people over a video read block by block, pass the same ``tracker`` (one
        view, from :meth:`tracker`) with every block."""
        tracker = self.tracker(1, refine=refine) if tracker is None else tracker
        return concat_estimates([tracker.step([f]) for f in frames], NUM_JOINTS, self.layout)

    def video(self, frames: Iterable[np.ndarray], *, batch: int | None = None, span: int | None = None,
              refine: bool = True) -> Estimate:
        """Offline video (frames in time order) -> :class:`Estimate` (T, P, 33, ...), batched.

        Frames are read ``batch * span`` at a time and cut into ``batch`` segments of
        ``span`` consecutive frames, which advance together: each segment's first frame
        goes through the detector (and, with ``refine``, a second landmark pass in the ROI
        its first pass's auxiliary landmarks give), its later frames are tracked from the
        previous frame (detector again when the pose is lost). Every network call thus
        holds up to ``batch`` crops, and the detector runs on one frame in ``span``.
        ``span=1`` is "detector and landmarks on every frame". Frames buffered:
        ``batch * span`` (a 1080p frame is 6 MB).

        Defaults: ``batch`` = the network batch size; ``span`` = 8 on CPU (where the
        networks are the cost, so skipping the detector pays), 1 on CUDA (where the
        networks are cheap and memory for buffered frames is the limit).
        """
        batch = int(self.batch_size if batch is None else batch)
        span = int((1 if self.device.type == "cuda" else 8) if span is None else span)
        if batch < 1 or span < 1:
            raise ValueError(f"batch and span must be at least 1, got batch={batch}, span={span}")
        parts, chunk = [], []
        for f in frames:
            chunk.append(f)
            if len(chunk) == batch * span:
                parts.append(self._video_chunk(chunk, span, refine))
                chunk = []
        if chunk:
            parts.append(self._video_chunk(chunk, span, refine))
        return concat_estimates(parts, NUM_JOINTS, self.layout)

    def _video_chunk(self, frames: list[np.ndarray], span: int, refine: bool) -> Estimate:
        images = self._images(frames)
        starts = list(range(0, len(images), span))
        rois = [np.zeros((0, 5)) for _ in starts]
        weak = [False for _ in starts]
        found = []
        for t in range(span):
            active = [k for k, s in enumerate(starts) if s + t < min(s + span, len(images))]
            due = self.detect_every if t and t % self.detect_every == 0 else 0  # frames since a detection
            detect = [self._needs_detector(rois[k], weak[k], due) for k in active]
            lm, nxt, now_weak = self._step(images, [starts[k] + t for k in active], [rois[k] for k in active],
                                           refine, detect)
            found.append(lm)
            for k, r, w in zip(active, nxt, now_weak):
                rois[k], weak[k] = r, w
        lm = PoseLandmarks(*(np.concatenate([getattr(x, k) for x in found])
                             for k in PoseLandmarks.__dataclass_fields__))
        return self._to_estimate(len(images), lm)


def _pose_height(keypoints: np.ndarray, visibility: np.ndarray, min_visibility: float = 0.5) -> np.ndarray:
    """(N,) the extent in pixels of each pose's landmarks seen (visibility >= ``min_visibility``)
    along the image's y axis (0 with fewer than 2 seen)."""
    y = np.where(np.asarray(visibility) >= min_visibility, keypoints[..., 1], np.nan)
    ok = np.isfinite(y).sum(1) >= 2
    out = np.zeros(len(y))
    out[ok] = np.nanmax(y[ok], 1) - np.nanmin(y[ok], 1)
    return out


def _refine_torch(xy, heat, kernel: int, min_confidence: float):
    """Torch version of :func:`blazepose_anchors.refine_from_heatmap`: xy (N, J, 2) crop-normalised,
    heat (N, Hm, Wm, J) logits -> refined xy (N, J, 2) (same rules, computed on the device)."""
    import torch

    n, hm_h, hm_w, j = heat.shape
    col = torch.trunc(xy[..., 0] * hm_w).long()
    row = torch.trunc(xy[..., 1] * hm_h).long()
    inside = (col >= 0) & (col < hm_w) & (row >= 0) & (col < hm_h)
    half = (kernel - 1) // 2
    offs = torch.arange(-half, half + 1, device=xy.device)
    rows = row[..., None] + offs  # (N, J, k)
    cols = col[..., None] + offs
    valid = ((rows >= 0) & (rows < hm_h))[..., :, None] & ((cols >= 0) & (cols < hm_w))[..., None, :]
    flat = heat.permute(0, 3, 1, 2).reshape(n, j, hm_h * hm_w)
    idx = rows.clamp(0, hm_h - 1)[..., :, None] * hm_w + cols.clamp(0, hm_w - 1)[..., None, :]
    conf = torch.sigmoid(torch.gather(flat, 2, idx.reshape(n, j, -1))).reshape(idx.shape) * valid
    total = conf.sum((-1, -2))
    best = conf.amax((-1, -2))
    wx = (conf * cols[..., None, :]).sum((-1, -2))
    wy = (conf * rows[..., :, None]).sum((-1, -2))
    ok = inside & (best >= min_confidence) & (total > 0)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.stack([torch.where(ok, wx / hm_w / safe, xy[..., 0]),
                        torch.where(ok, wy / hm_h / safe, xy[..., 1])], -1)


class BlazePoseTorchTTA(BlazePoseTorch):
    """:class:`BlazePoseTorch` with test-time augmentation on (``tta=True``), for offline work."""

    name = "blazepose-tta"

    def __init__(self, device: str = "cpu", max_people: int = 1, min_confidence: float = 0.5, **kwargs) -> None:
        kwargs.setdefault("tta", True)
        super().__init__(device, max_people, min_confidence, **kwargs)
