# SPDX-License-Identifier: GPL-3.0-or-later
"""The Live operators: start driving an armature from the service's stream (a modal timer
applies the newest pose about 30 times a second) and stop it. The work is in :mod:`.live`."""

import time

import bpy
from bpy.types import Operator

from .ui_common import _edited_map, _prefs, _report_errors, _target_armature


class MOCAP_OT_live_start(Operator):
    """Drive the selected armature (or a new one) live from a camera or a video, through the mocap-lift service"""

    bl_idname = "mocap.live_start"
    bl_label = "Start Live"

    @classmethod
    def poll(cls, context):
        from . import live

        session = live.active_session()
        return session is None or not session.running

    def _start(self, context):
        from . import capture, importer, live
        from .core.skeletons import MOTION21

        prefs = _prefs(context)
        settings = context.scene.mocap_lift
        target = _target_armature(context)
        if target is not None and not live.is_motion21(target, MOTION21.joint_names):  # unmappable: say so now
            importer.complete_bone_map([b.name for b in target.data.bones], _edited_map(target), target.name)
        source = settings.live_source.strip()
        if source and not source.isdigit():
            source = bpy.path.abspath(source)
        session = live.LiveSession(executable=capture.find_executable(prefs.mocap_executable), source=source,
                                   service_url=prefs.service_url, api_key=prefs.api_key, mirror=settings.live_mirror,
                                   online_access=getattr(bpy.app, "online_access", True))
        session.start()
        if target is None:
            try:
                target = live.new_live_armature(context)
            except BaseException:
                session.stop()
                raise
        return session, target

    def execute(self, context):
        from . import live

        if context.object is not None and context.object.mode not in ("OBJECT", "POSE"):
            bpy.ops.object.mode_set(mode="OBJECT")
        started = _report_errors(self, "Live", lambda: self._start(context))
        if started is None:
            return {"CANCELLED"}
        self._session, target = started
        self._target = target.name
        live.set_active_session(self._session)
        state = context.window_manager.mocap_live
        state.running, state.status, state.target = True, self._session.status_line(), target.name
        if context.window is None or bpy.app.background:  # scripts: call live.active_session().apply_latest(arm)
            self.report({"INFO"}, f"Live started on {target.name}")
            return {"FINISHED"}
        self._shown = 0.0
        wm = context.window_manager
        self._timer = wm.event_timer_add(1.0 / 30.0, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        session = self._session
        arm = bpy.data.objects.get(self._target)
        if arm is None or arm.type != "ARMATURE":
            session.stop()
            return self._finish(context, {"WARNING"}, "Live stopped: its armature is gone")
        if session.state in ("running", "ended"):
            applied = _report_errors(self, "Live", lambda: session.apply_latest(arm, bone_map=_edited_map(arm)) or True)
            if applied is None:
                session.stop()
                return self._finish(context, None, "")
        state = context.window_manager.mocap_live
        now = time.monotonic()
        if now - self._shown > 0.25 or not session.running:
            self._shown = now
            state.status = session.status_line()
            for area in context.screen.areas if context.screen else ():
                if area.type == "VIEW_3D":
                    area.tag_redraw()
        if session.running:
            return {"PASS_THROUGH"}
        session.stop()
        if session.state == "failed":
            return self._finish(context, {"ERROR"}, f"Live failed: {session.error}")
        return self._finish(context, {"INFO"}, f"Live {session.status_line()}")

    def _finish(self, context, level, message):
        from . import live

        context.window_manager.event_timer_remove(self._timer)
        if live.active_session() is self._session:
            live.set_active_session(None)
        state = context.window_manager.mocap_live
        state.running, state.status = False, self._session.status_line()
        if level is not None:
            self.report(level, message)
        return {"CANCELLED"} if self._session.state == "failed" else {"FINISHED"}


class MOCAP_OT_live_stop(Operator):
    """Stop driving the armature live"""

    bl_idname = "mocap.live_stop"
    bl_label = "Stop Live"

    def execute(self, context):
        from . import live

        session = live.active_session()
        live.stop_active()
        state = context.window_manager.mocap_live
        if session is not None:
            state.status = session.status_line()
        if context.window is None or bpy.app.background:  # no modal operator to finish it
            live.set_active_session(None)
        state.running = False
        return {"FINISHED"}
