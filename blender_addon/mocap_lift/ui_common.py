# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers shared by the add-on's operators: preferences, the target armature, the bone
mapping editor's entries, and errors turned into report lines."""

import traceback


def _prefs(context):
    return context.preferences.addons[__package__].preferences


def _target_armature(context):
    """The armature to import onto: the active selected armature (or the armature of the
    active selected mesh); None means "a new armature"."""
    obj = context.active_object
    if obj is None or not obj.select_get():
        return None
    if obj.type == "ARMATURE":
        return obj
    if obj.type == "MESH" and obj.parent is not None and obj.parent.type == "ARMATURE":
        return obj.parent
    return None


def _report_errors(op, what: str, work):
    """Run ``work()``; turn its errors into one line in Blender's report area (no traceback
    popup). Returns work's result, or None after an error."""
    from .core.errors import MocapError

    try:
        return work()
    except MocapError as e:
        op.report({"ERROR"}, str(e))
    except (OSError, ValueError) as e:
        op.report({"ERROR"}, f"{what} failed: {e}")
    except Exception as e:  # the UI boundary: a bug becomes a report, its traceback goes to the console
        traceback.print_exc()
        op.report({"ERROR"}, f"{what} failed unexpectedly ({type(e).__name__}: {e}); details in the system console")
    return None


def _edited_map(arm) -> dict[str, str]:
    return {item.joint: item.bone for item in arm.mocap_bone_map} if arm is not None else {}


def _fill_map(arm, mapping: dict[str, str]) -> None:
    from .core.retarget import CANONICAL, FINGERS

    arm.mocap_bone_map.clear()
    for joint in CANONICAL:
        if joint in FINGERS and joint not in mapping:  # the fingers listed where the rig has them
            continue
        item = arm.mocap_bone_map.add()
        item.joint = joint
        item.bone = mapping.get(joint, "")
