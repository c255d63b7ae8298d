"""Timings that were once asserts in the tests (which now check only that the results are
right): FBX export of a minute, the Blender add-on importing a minute, the avatar rig read
from its cache, the clean-up (foot locking + IK) and retargeting rates.

    python benchmarks/bench_timings.py [--repeat 3] [--only fbx,addon,avatar,cleanup,retarget]

Each figure is the median wall-clock time of --repeat runs, on this machine, with nothing
else running; a part whose dependency is missing (bpy, anny, the shared CMU walk) is
skipped with a note.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGETS = {"fbx": "under 10 s", "addon": "under 5 s", "avatar": "under 0.5 s", "cleanup": "over 1000 frames/s",
           "retarget": "over 1000 frames/s"}


def _median_s(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_fbx(tmp: Path, repeat: int) -> str:
    """export_motion of one minute at 30 fps (1800 frames, MOTION21) to FBX."""
    from mocap.export.blender import export_motion
    from mocap.rotations import axis_angle_to_quat_wxyz
    from mocap.skeletons import MOTION21, rest_offsets

    t = 60 * 30
    q = np.tile([1.0, 0, 0, 0], (t, 21, 1))
    q[:, 2] = axis_angle_to_quat_wxyz(np.sin(np.arange(t) / 10)[:, None] * np.array([1.0, 0, 0]))
    seconds = _median_s(lambda: export_motion(
        tmp / "minute.fbx", joint_names=MOTION21.joint_names, parents=MOTION21.parents, rest_offsets=rest_offsets(),
        local_quats_wxyz=q, root_translation=np.zeros((t, 3)), fps=30), repeat)
    return f"FBX export, 1 minute at 30 fps ({t} frames, 21 joints): {seconds:.2f} s"


def bench_addon(tmp: Path, repeat: int) -> str:
    """The add-on's import operator: one minute at 60 fps onto a Mixamo-named rig."""
    import bpy

    from tests.test_blender_addon import MOD, _refresh_user_repo, clear_scene, write_motion
    from tests.test_retarget import build_rig, make_rig

    sys.path.insert(0, str(REPO / "blender_addon"))
    try:
        import build
    finally:
        sys.path.pop(0)
    zip_path = build.build(tmp / "dist")
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp / "blender_user")
    _refresh_user_repo()
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)
    if result != {"FINISHED"} or MOD not in bpy.context.preferences.addons:
        raise RuntimeError(f"the add-on did not install ({result})")
    fps, t = 60.0, 3600
    path = tmp / "minute.npz"
    write_motion(path, t=t, fps=fps)
    bones = 0

    def run():
        nonlocal bones
        clear_scene()
        arm = build_rig(make_rig("mixamo"))
        bones = len(arm.data.bones)
        start = time.perf_counter()
        bpy.ops.mocap.import_motion(filepath=str(path))
        return time.perf_counter() - start

    seconds = statistics.median(run() for _ in range(repeat))  # the import alone, not the rig building
    return f"add-on import, 1 minute at {fps:.0f} fps ({t} frames) onto {bones} bones: {seconds:.2f} s"


def bench_avatar(tmp: Path, repeat: int) -> str:
    """anny_rig_arrays() with the cache warm (the first call builds it: minutes)."""
    from mocap.export.avatar import anny_rig_arrays

    anny_rig_arrays()  # builds the cache if it is not there
    seconds = _median_s(anny_rig_arrays, repeat)
    return f"avatar rig from the cache: {1000 * seconds:.0f} ms"


def bench_cleanup(tmp: Path, repeat: int) -> str:
    """clean_motion (contacts, foot locking, IK) on 600 frames of a person standing on the
    right foot with depth noise (the data of tests/test_contact.py)."""
    from mocap.cleanup.contact import clean_motion
    from mocap.skeletons import rest_offsets
    from tests.test_contact import FPS, depth_noise, standing_on_right

    truth, _ = standing_on_right(t=600)
    noisy = truth + depth_noise(len(truth), seed=4)[:, None]
    clean_motion(noisy[:20], fps=FPS, rest_offsets=rest_offsets())  # warm up (imports)
    seconds = _median_s(lambda: clean_motion(noisy, fps=FPS, rest_offsets=rest_offsets()), repeat)
    return f"clean-up, {len(truth)} frames: {len(truth) / seconds:.0f} frames/s"


def bench_retarget(tmp: Path, repeat: int) -> str:
    """retarget() of the CMU walk onto a Mixamo-named rig (tests/test_retarget.py's data)."""
    from mocap.export.retarget import auto_bone_map, retarget
    from tests.test_retarget import cmu_source, make_rig

    source, gs, ps = cmu_source()
    rig = make_rig("mixamo", size=0.9, arm=1.05, leg=0.95)
    smap, tmap = auto_bone_map(source.bone_names), auto_bone_map(rig.bone_names)
    seconds = _median_s(lambda: retarget(source, smap, gs, ps, rig, tmap), repeat)
    return f"retarget, CMU walk ({len(gs)} frames) onto {len(rig.bone_names)} bones: {len(gs) / seconds:.0f} frames/s"


def _cmu_walk() -> bool:
    from tests.test_retarget import CMU_WALK

    return CMU_WALK.is_file()


def _installed(module: str):
    return lambda: importlib.util.find_spec(module) is not None


# name -> (benchmark, (whether it can run, what it needs))
PARTS = {
    "fbx": (bench_fbx, (_installed("bpy"), "bpy")),
    "addon": (bench_addon, (_installed("bpy"), "bpy")),
    "avatar": (bench_avatar, (_installed("anny"), "anny")),
    "cleanup": (bench_cleanup, (lambda: True, "")),
    "retarget": (bench_retarget, (_cmu_walk, "the CMU walk in ../shared/data")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median); default 3")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PARTS))
    if unknown or args.repeat < 1:
        parser.error(f"unknown part {', '.join(unknown)}" if unknown else "--repeat must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            bench, (available, needs) = PARTS[name]
            if not available():
                print(f"{name}: skipped (needs {needs})")
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            print(f"{bench(folder, args.repeat)} (target {TARGETS[name]})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
