# SPDX-License-Identifier: GPL-3.0-or-later
"""Mocap Lift for Blender: capture motion from video, import it onto any humanoid rig.

This module holds only the user interface (sidebar "Mocap" panels, operators, settings,
preferences); the work is in :mod:`.importer` (bpy + numpy), :mod:`.capture` (runs the
``mocap`` pipeline as a subprocess) and :mod:`.live` (drives an armature from the service's
live stream), imported when an operator runs. The pure-numpy modules of mocap-lift it
needs are vendored into ``core/`` when the zip is built (``python blender_addon/build.py``).
"""

import os
import time

import bpy
from bpy.app.handlers import persistent
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, IntProperty, PointerProperty, StringProperty
from bpy.types import AddonPreferences, Operator, OperatorFileListElement, Panel, PropertyGroup, UIList
from bpy_extras.io_utils import ImportHelper

from .live_ops import MOCAP_OT_live_start, MOCAP_OT_live_stop
from .people_ops import MOCAP_OT_import_people
from .ui_common import _edited_map, _fill_map, _prefs, _report_errors, _target_armature

_VIDEO_GLOB = "*.mp4;*.mov;*.avi;*.mkv;*.webm;*.m4v"


def _import(op, context, path: str, armature):
    from . import importer

    result = importer.import_motion(context, path, armature=armature, frame_start=op.frame_start, scale=op.scale,
                                    root_motion=op.root_motion, foot_lock=op.foot_lock, pin_hands=op.pin_hands,
                                    bone_map=_edited_map(armature))
    if armature is not None and not len(armature.mocap_bone_map):
        _fill_map(armature, result.bone_map)
    where = (f"{result.armature.name} (root motion scaled by {result.scale:.3f})" if armature is not None
             else f"a new armature {result.armature.name}")
    op.report({"INFO"}, f"{result.frames} frames of {os.path.basename(path)} on {where}, action {result.action.name}")
    context.scene.mocap_lift.fidelity = result.fidelity
    if result.fidelity:
        op.report({"INFO"}, result.fidelity)
    return result


class _ImportOptions:
    frame_start: IntProperty(name="Frame Start", default=1, description="Frame of the motion's first key")
    scale: FloatProperty(name="Scale", default=1.0, min=0.001, soft_min=0.1, soft_max=10.0,
                         description="On a rig: factor on the distance travelled (1 = scaled by leg length). "
                                     "On a new armature: its size (1 = the captured person's)")
    root_motion: BoolProperty(name="Root Motion", default=True,
                              description="Move the character along the captured path (off: in place)")
    foot_lock: BoolProperty(name="Foot Locking", default=True,
                            description="Keep planted feet planted on a rig of other proportions: the hips move, "
                                        "then the legs change as little as they must")
    pin_hands: BoolProperty(name="Pin Hands", default=False,
                            description="Bend the arms so the wrists keep their place relative to the shoulders "
                                        "(off: the arms point exactly as captured)")

    def draw_options(self, layout):
        for prop in _IMPORT_OPTIONS:
            layout.prop(self, prop)


_IMPORT_OPTIONS = ("frame_start", "scale", "root_motion", "foot_lock", "pin_hands")


def _copy_options(settings, op) -> None:
    for prop in _IMPORT_OPTIONS:
        setattr(op, prop, getattr(settings, prop))


class MOCAP_BoneMapItem(PropertyGroup):
    joint: StringProperty(name="Joint", description="Joint of the captured skeleton")
    bone: StringProperty(name="Bone", description="Bone of this rig that follows the joint (empty: unmapped)")


class MOCAP_Settings(_ImportOptions, PropertyGroup):
    calibration: StringProperty(name="Calibration", subtype="FILE_PATH",
                                description="Camera calibration (.toml, .qca.txt, .yml) or 'auto', for several videos")
    body_height: FloatProperty(name="Body Height", default=0.0, min=0.0, soft_max=2.5, unit="LENGTH",
                               description="The person's standing height when you know it: sets the body's size "
                                           "(0: the size seen in the video); needed with calibration 'auto'")
    output_dir: StringProperty(name="Output", subtype="DIR_PATH",
                               description="Folder for the capture's files (empty: a new temporary folder)")
    live_source: StringProperty(name="Source", default="0", subtype="FILE_PATH",
                                description="Camera number (0, 1, ...) or a video file, played in real time")
    live_mirror: BoolProperty(name="Mirror", default=False,
                              description="Flip the picture left-right: the avatar moves like your reflection")
    fidelity: StringProperty(name="Fidelity", default="",
                             description="How closely the last import onto a rig follows the capture")


class MOCAP_CaptureState(PropertyGroup):
    running: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(default="")
    cancel_requested: BoolProperty(default=False)


class MOCAP_LiveState(PropertyGroup):
    running: BoolProperty(default=False)
    status: StringProperty(default="")
    target: StringProperty(default="")


class MOCAP_OT_import_motion(_ImportOptions, Operator, ImportHelper):
    """Import a motion.npz or BVH made by mocap onto the selected armature (retargeted), or onto a new one"""

    bl_idname = "mocap.import_motion"
    bl_label = "Import Motion"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz;*.bvh", options={"HIDDEN"})

    def draw(self, context):
        self.draw_options(self.layout)

    def execute(self, context):
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        result = _report_errors(self, "Import", lambda: _import(self, context, self.filepath, _target_armature(context)))
        return {"FINISHED"} if result is not None else {"CANCELLED"}


def _face_mesh(context):
    """The active object if it is a mesh with shape keys (what Apply Face drives), else None."""
    obj = context.object
    return obj if obj is not None and obj.type == "MESH" and obj.data.shape_keys is not None else None


class MOCAP_OT_apply_face(Operator, ImportHelper):
    """Drive the selected mesh's shape keys named as the face controls (jawOpen, eyeBlinkLeft ...) from a face.npz"""

    bl_idname = "mocap.apply_face"
    bl_label = "Apply Face"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="face*.npz", options={"HIDDEN"})
    frame_start: IntProperty(name="Frame Start", default=1, description="Frame of the first key (as for the motion)")

    @classmethod
    def poll(cls, context):
        return _face_mesh(context) is not None

    def execute(self, context):
        from . import face

        mesh = _face_mesh(context)
        result = _report_errors(self, "Face", lambda: face.apply_face(self.filepath, mesh, frame_start=self.frame_start))
        if result is None:
            return {"CANCELLED"}
        keys, frames = result
        self.report({"INFO"}, f"{frames} frames of {os.path.basename(self.filepath)} on {mesh.name}: {', '.join(keys)}")
        return {"FINISHED"}


class MOCAP_OT_detect_bone_map(Operator):
    """Map the active armature's bones onto the captured joints by name (Mixamo, Rigify, Unreal, VRM, SMPL...)"""

    bl_idname = "mocap.detect_bone_map"
    bl_label = "Detect Bone Mapping"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == "ARMATURE"

    def execute(self, context):
        from . import importer
        from .core.retarget import REQUIRED

        arm = context.active_object
        mapping = importer.guess_bone_map([b.name for b in arm.data.bones])
        _fill_map(arm, mapping)
        missing = [j for j in REQUIRED if j not in mapping]
        if missing:
            self.report({"WARNING"}, f"{len(missing)} joint(s) not mapped by name: {', '.join(missing)}; pick their bones")
        else:
            self.report({"INFO"}, f"{len(mapping)} joints mapped by name")
        return {"FINISHED"}


class MOCAP_OT_capture_video(_ImportOptions, Operator):
    """Capture motion from one or more videos with the mocap pipeline (outside Blender), then import it"""

    bl_idname = "mocap.capture_video"
    bl_label = "Capture from Video"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE"})
    files: CollectionProperty(type=OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    filter_glob: StringProperty(default=_VIDEO_GLOB, options={"HIDDEN"})
    calibration: StringProperty(name="Calibration", default="", options={"SKIP_SAVE"})
    body_height: FloatProperty(name="Body Height", default=0.0, min=0.0, unit="LENGTH", options={"SKIP_SAVE"})
    output_dir: StringProperty(name="Output", default="", subtype="DIR_PATH", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        from . import capture

        return capture.active_job() is None

    def draw(self, context):
        self.draw_options(self.layout)

    def invoke(self, context, event):
        settings = context.scene.mocap_lift
        _copy_options(settings, self)
        self.calibration = settings.calibration
        self.body_height = settings.body_height
        self.output_dir = settings.output_dir
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def _videos(self) -> list[str]:
        names = [f.name for f in self.files if f.name]
        if names and self.directory:
            return [os.path.join(self.directory, n) for n in names]
        return [self.filepath] if self.filepath else []

    def _start(self, context):
        from . import capture

        exe = capture.find_executable(_prefs(context).mocap_executable)
        calibration = self.calibration if self.calibration == "auto" else bpy.path.abspath(self.calibration)
        job = capture.CaptureJob(exe, [bpy.path.abspath(v) for v in self._videos()],
                                 bpy.path.abspath(self.output_dir) or None, calibration=calibration or None,
                                 body_height_m=self.body_height or None)
        job.start()
        return job

    def execute(self, context):
        from . import capture

        self._job = _report_errors(self, "Capture", lambda: self._start(context))
        if self._job is None:
            return {"CANCELLED"}
        capture.set_active_job(self._job)
        target = _target_armature(context)
        self._target = target.name if target is not None else ""
        state = context.window_manager.mocap_capture
        state.running, state.progress, state.status, state.cancel_requested = True, 0.0, self._job.status, False
        if context.window is None or bpy.app.background:  # scripts, background mode: wait here
            while self._job.poll() == "running":
                time.sleep(0.1)
            return self._finish(context)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        state = context.window_manager.mocap_capture
        if event.type == "ESC" or state.cancel_requested:
            self._job.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        self._job.poll()
        state.progress, state.status = self._job.progress, self._job.status
        for area in context.screen.areas if context.screen else ():
            if area.type == "VIEW_3D":
                area.tag_redraw()
        if self._job.state == "running":
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context)

    def _finish(self, context):
        from . import capture

        job = self._job
        capture.set_active_job(None)
        state = context.window_manager.mocap_capture
        state.running, state.cancel_requested, state.progress, state.status = False, False, job.progress, job.status
        if job.state == "cancelled":
            self.report({"WARNING"}, "Capture cancelled")
            return {"CANCELLED"}
        if job.state != "done":
            self.report({"ERROR"}, f"Capture failed: {job.error}")
            return {"CANCELLED"}
        target = context.scene.objects.get(self._target) if self._target else None
        result = _report_errors(self, "Import", lambda: _import(self, context, str(job.motion_path), target))
        if result is None:
            return {"CANCELLED"}
        state.status = f"done: {job.output_dir}"
        return {"FINISHED"}


class MOCAP_OT_push_to_nla(Operator):
    """Move the armature's motion into a new NLA track (one strip on its frames), to layer and blend takes"""

    bl_idname = "mocap.push_to_nla"
    bl_label = "Push Down to NLA"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        arm = _target_armature(context)
        return arm is not None and arm.animation_data is not None and arm.animation_data.action is not None

    def execute(self, context):
        from . import importer

        arm = _target_armature(context)
        strip = _report_errors(self, "NLA", lambda: importer.push_to_nla(arm))
        if strip is None:
            return {"CANCELLED"}
        self.report({"INFO"}, f"{strip.name}: NLA strip, frames {strip.frame_start:.0f}-{strip.frame_end:.0f}")
        return {"FINISHED"}


class MOCAP_OT_capture_cancel(Operator):
    """Stop the running capture"""

    bl_idname = "mocap.capture_cancel"
    bl_label = "Cancel Capture"

    def execute(self, context):
        context.window_manager.mocap_capture.cancel_requested = True
        return {"FINISHED"}


class MOCAP_OT_test_connection(Operator):
    """Check that the mocap executable runs (and, when a service URL is set, that the service streams with this key)"""

    bl_idname = "mocap.test_connection"
    bl_label = "Test Connection"

    def execute(self, context):
        from . import capture

        prefs = _prefs(context)

        def check():
            found = [capture.check_executable(prefs.mocap_executable)]
            if prefs.service_url:
                from . import live

                found.append(live.check_service(prefs.service_url, prefs.api_key,
                                                online_access=getattr(bpy.app, "online_access", True)))
            return "; ".join(found)

        answer = _report_errors(self, "Test connection", check)
        if answer is None:
            return {"CANCELLED"}
        self.report({"INFO"}, answer)
        return {"FINISHED"}


class MOCAP_UL_bone_map(UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.alert = not item.bone
        row.label(text=item.joint)
        row.prop_search(item, "bone", data.data, "bones", text="")


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Mocap"


class MOCAP_PT_import(_SidebarPanel, Panel):
    bl_label = "Import Motion"
    bl_order = 1

    def draw(self, context):
        layout = self.layout
        settings = context.scene.mocap_lift
        col = layout.column()
        settings.draw_options(col)
        target = _target_armature(context)
        layout.label(text=f"Onto: {target.name}" if target else "Onto: a new armature", icon="ARMATURE_DATA")
        op = layout.operator(MOCAP_OT_import_motion.bl_idname, icon="IMPORT")
        _copy_options(settings, op)
        layout.operator(MOCAP_OT_import_people.bl_idname, icon="COMMUNITY")
        if settings.fidelity:  # "fidelity: limbs within ... ; planted feet slide ..." in two lines
            for part in settings.fidelity.removeprefix("fidelity: ").split("; "):
                layout.label(text=part, icon="CHECKMARK")


class MOCAP_PT_bone_map(_SidebarPanel, Panel):
    bl_label = "Bone Mapping"
    bl_parent_id = "MOCAP_PT_import"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return _target_armature(context) is not None

    def draw(self, context):
        arm = _target_armature(context)
        self.layout.operator(MOCAP_OT_detect_bone_map.bl_idname, icon="BONE_DATA")
        if len(arm.mocap_bone_map):
            self.layout.template_list("MOCAP_UL_bone_map", "", arm, "mocap_bone_map", arm, "mocap_bone_map_index", rows=6)


class MOCAP_PT_face(_SidebarPanel, Panel):
    bl_label = "Face"
    bl_parent_id = "MOCAP_PT_import"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        mesh = _face_mesh(context)
        self.layout.label(text=f"Shape keys of: {mesh.name}" if mesh else "Select a mesh with shape keys",
                          icon="SHAPEKEY_DATA")
        self.layout.operator(MOCAP_OT_apply_face.bl_idname, icon="IMPORT")


class MOCAP_PT_nla(_SidebarPanel, Panel):
    bl_label = "NLA Clean-up"
    bl_parent_id = "MOCAP_PT_import"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        arm = _target_armature(context)
        data = arm.animation_data if arm is not None else None
        if data is not None and data.action is not None:
            first, last = data.action.frame_range
            self.layout.label(text=f"{data.action.name}: frames {first:.0f}-{last:.0f}", icon="ACTION")
        self.layout.operator(MOCAP_OT_push_to_nla.bl_idname, icon="NLA_PUSHDOWN")


class MOCAP_PT_capture(_SidebarPanel, Panel):
    bl_label = "Capture from Video"
    bl_order = 0

    def draw(self, context):
        layout = self.layout
        settings = context.scene.mocap_lift
        state = context.window_manager.mocap_capture
        layout.prop(settings, "calibration")
        layout.prop(settings, "body_height")
        layout.prop(settings, "output_dir")
        if state.running:
            if hasattr(layout, "progress"):
                layout.progress(factor=state.progress, type="BAR", text=state.status or "running")
            else:
                layout.label(text=f"{100 * state.progress:.0f} %  {state.status}")
            layout.operator(MOCAP_OT_capture_cancel.bl_idname, icon="CANCEL")
        else:
            layout.operator(MOCAP_OT_capture_video.bl_idname, icon="FILE_MOVIE")
            if state.status:
                layout.label(text=state.status)


class MOCAP_PT_live(_SidebarPanel, Panel):
    bl_label = "Live"
    bl_order = 2
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.mocap_lift
        state = context.window_manager.mocap_live
        col = layout.column()
        col.enabled = not state.running
        col.prop(settings, "live_source")
        col.prop(settings, "live_mirror")
        if state.running:
            layout.label(text=f"Driving: {state.target}", icon="ARMATURE_DATA")
            layout.operator(MOCAP_OT_live_stop.bl_idname, icon="PAUSE")
        else:
            target = _target_armature(context)
            layout.label(text=f"Drives: {target.name}" if target else "Drives: a new armature", icon="ARMATURE_DATA")
            layout.operator(MOCAP_OT_live_start.bl_idname, icon="PLAY")
            if not _prefs(context).service_url:
                layout.label(text="Set the service URL in the add-on's preferences", icon="ERROR")
        if state.status:
            layout.label(text=state.status)


class MOCAP_AddonPreferences(AddonPreferences):
    bl_idname = __package__

    mocap_executable: StringProperty(
        name="mocap Executable", subtype="FILE_PATH",
        description="The 'mocap' command of a mocap-lift installation, e.g. /path/to/.venv/bin/mocap "
                    "(empty: the one on PATH). It runs outside Blender, with its own Python")
    service_url: StringProperty(name="Service URL", description="The mocap-lift service for Live, "
                                "e.g. http://127.0.0.1:8000 (start it with: mocap serve)")
    api_key: StringProperty(name="API Key", subtype="PASSWORD", description="Key for the service")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "mocap_executable")
        layout.prop(self, "service_url")
        layout.prop(self, "api_key")
        layout.operator(MOCAP_OT_test_connection.bl_idname, icon="PLUGIN")


classes = (
    MOCAP_BoneMapItem,
    MOCAP_Settings,
    MOCAP_CaptureState,
    MOCAP_LiveState,
    MOCAP_OT_import_motion,
    MOCAP_OT_import_people,
    MOCAP_OT_apply_face,
    MOCAP_OT_detect_bone_map,
    MOCAP_OT_capture_video,
    MOCAP_OT_capture_cancel,
    MOCAP_OT_push_to_nla,
    MOCAP_OT_test_connection,
    MOCAP_OT_live_start,
    MOCAP_OT_live_stop,
    MOCAP_UL_bone_map,
    MOCAP_PT_capture,  # the sidebar top to bottom: capture, import onto the rig, its bone map, NLA, live
    MOCAP_PT_import,
    MOCAP_PT_bone_map,
    MOCAP_PT_face,
    MOCAP_PT_nla,
    MOCAP_PT_live,
    MOCAP_AddonPreferences,
)


def glTF2ImportUserExtension():
    """Blender's glTF importer calls this (by this name, in every enabled add-on): a GLB
    written by mocap then plays at the frame rate recorded in its scene extras, keys on
    whole frames (see ``core.blender.GltfFrameRate``); other files import as before."""
    from .core.blender import GltfFrameRate

    return GltfFrameRate()


def _menu_import(self, context):
    self.layout.operator(MOCAP_OT_import_motion.bl_idname, text="Mocap Motion (.npz, .bvh)")


@persistent
def _stop_live_on_load(*_args):
    import sys

    live = sys.modules.get(f"{__package__}.live")
    if live is not None:
        live.stop_active()
        live.set_active_session(None)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.mocap_lift = PointerProperty(type=MOCAP_Settings)
    bpy.types.WindowManager.mocap_capture = PointerProperty(type=MOCAP_CaptureState)
    bpy.types.WindowManager.mocap_live = PointerProperty(type=MOCAP_LiveState)
    bpy.app.handlers.load_pre.append(_stop_live_on_load)
    bpy.types.Object.mocap_bone_map = CollectionProperty(type=MOCAP_BoneMapItem)
    bpy.types.Object.mocap_bone_map_index = IntProperty(default=0)
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)


def unregister():
    import sys

    capture = sys.modules.get(f"{__package__}.capture")
    if capture is not None:
        capture.cancel_active_job()
    _stop_live_on_load()
    if _stop_live_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_stop_live_on_load)
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    del bpy.types.Object.mocap_bone_map_index
    del bpy.types.Object.mocap_bone_map
    del bpy.types.WindowManager.mocap_live
    del bpy.types.WindowManager.mocap_capture
    del bpy.types.Scene.mocap_lift
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
