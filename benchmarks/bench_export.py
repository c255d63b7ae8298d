"""Export timings: FBX export of a minute, the Blender add-on importing a minute, and the
avatar rig read from its cache. The tests check that these give the right result; this
script says how long they take (the targets were once asserts in the tests).

    python benchmarks/bench_export.py [--repeat 3] [--only fbx,addon,avatar]

Each figure is the median wall-clock time of --repeat runs, on this machine, with nothing
else running; a part whose dependency is missing (bpy, anny) is skipped with a note.
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

TARGETS_S = {"fbx": 10.0, "addon": 5.0, "avatar": 0.5}


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


PARTS = {"fbx": (bench_fbx, "bpy"), "addon": (bench_addon, "bpy"), "avatar": (bench_avatar, "anny")}


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
            bench, needs = PARTS[name]
            if importlib.util.find_spec(needs) is None:
                print(f"{name}: skipped ({needs} is not installed)")
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            print(f"{bench(folder, args.repeat)} (target under {TARGETS_S[name]:g} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
