"""Synchronisation: view checks and frame offsets from keypoint motion, against known shifts."""
import numpy as np
import pytest

from mocap.errors import MocapError
from mocap.formats import Keypoints2D
from mocap.multiview.sync import apply_offsets, check_views, common_span, estimate_frame_offsets
from tests.multiview_helpers import observe, ring_rig
from tests.synthetic import waving_walker

SHIFTS = [0, 3, -2, 5]  # view c starts SHIFTS[c] frames later into the action than view 0


def _shifted_views(noise_px=1.0, t=90):
    cams = ring_rig(4)
    px, conf = observe(cams, waving_walker(t + 20), noise_px=noise_px, seed=7)
    kp = [px[c, 10 + s:10 + s + t] for c, s in enumerate(SHIFTS)]
    cf = [conf[c, 10 + s:10 + s + t] for c, s in enumerate(SHIFTS)]
    return cams, kp, cf


@pytest.mark.parametrize("with_cameras", [True, False])
def test_offsets_recovered(with_cameras):
    cams, kp, cf = _shifted_views()
    offsets = estimate_frame_offsets(kp, cf, cameras=cams if with_cameras else None, max_offset=8)
    # what view 0 shows at frame f, view c shows at f - SHIFTS[c]
    np.testing.assert_array_equal(offsets, -np.array(SHIFTS))


def test_apply_offsets_aligns_the_views():
    cams, kp, cf = _shifted_views(noise_px=0.0)
    views = [Keypoints2D(keypoints=k.astype(np.float32), confidence=c.astype(np.float32), layout="mediapipe33",
                         image_size=cams[0].size, fps=30.0)
             for k, c in zip(_pad33(kp), _pad33c(cf))]
    offsets = -np.array(SHIFTS)
    starts, t = common_span([v.num_frames for v in views], offsets)
    assert t == 90 - (max(SHIFTS) - min(SHIFTS))
    aligned = apply_offsets(views, offsets)
    assert {v.num_frames for v in aligned} == {t}
    truth = observe(cams, waving_walker(110))[0]  # (C, T, J, 2) on the common timeline
    first = 10 + max(SHIFTS)  # global frame of the first shared frame
    for c, v in enumerate(aligned):
        np.testing.assert_allclose(v.keypoints[:, :21], truth[c, first:first + t], atol=1e-3)


def _pad33(kp):
    return [np.concatenate([k, np.full(k.shape[:1] + (12, 2), np.nan)], 1) for k in kp]


def _pad33c(cf):
    return [np.concatenate([c, np.zeros(c.shape[:1] + (12,))], 1) for c in cf]


def test_check_views_errors():
    def view(t=10, fps=30.0, layout="coco17"):
        j = 17 if layout == "coco17" else 33
        return Keypoints2D(keypoints=np.zeros((t, j, 2), np.float32), confidence=np.ones((t, j), np.float32),
                           layout=layout, image_size=(100, 100), fps=fps)

    check_views([view(), view()], ["a", "b"])
    check_views([view(), view(fps=30.01)], ["a", "b"])  # within tolerance
    with pytest.raises(MocapError, match=r"different frame rates \(a 30 fps, b 25 fps\)"):
        check_views([view(), view(fps=25.0)], ["a", "b"])
    with pytest.raises(MocapError, match=r"different numbers of frames \(a 10, b 12\).*--sync auto"):
        check_views([view(), view(t=12)], ["a", "b"])
    check_views([view(), view(t=12)], ["a", "b"], same_length=False)
    with pytest.raises(MocapError, match="different keypoint layouts"):
        check_views([view(), view(layout="mediapipe33")], ["a", "b"])
    with pytest.raises(MocapError, match="share no frame"):
        common_span([10, 10], [0, 12])


def test_no_shared_person_is_an_error():
    cams, kp, cf = _shifted_views()
    kp[1][:] = np.nan
    with pytest.raises(MocapError, match="too few frames"):
        estimate_frame_offsets(kp, cf, cameras=cams, max_offset=5)
    with pytest.raises(MocapError, match="too few frames"):
        estimate_frame_offsets(kp, cf, max_offset=5)
