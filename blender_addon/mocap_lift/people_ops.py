# SPDX-License-Identifier: GPL-3.0-or-later
"""The Import People operator: everyone of a ``mocap capture --all-people`` folder, where they
stood (the work is :func:`.importer.import_people`)."""

import os

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty
from bpy.types import Operator
from bpy_extras.io_utils import ImportHelper

from .ui_common import _report_errors


class MOCAP_OT_import_people(Operator, ImportHelper):
    """Import everyone of a 'mocap capture --all-people' folder (person_<id>/motion.npz), each on a new
    armature, where they stood in the capture's one world and from the frame they appear"""

    bl_idname = "mocap.import_people"
    bl_label = "Import People"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ""
    use_filter_folder = True
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN"})
    frame_start: IntProperty(name="Frame Start", default=1, description="Frame of the earliest person's first key")
    scale: FloatProperty(name="Scale", default=1.0, min=0.001, soft_min=0.1, soft_max=10.0,
                         description="Size of the skeletons and of their world (1 = as captured)")
    root_motion: BoolProperty(name="Root Motion", default=True,
                              description="Move each person along their captured path (off: each in place)")

    def execute(self, context):
        from . import importer

        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        folder = self.directory or os.path.dirname(self.filepath)
        results = _report_errors(self, "Import people", lambda: importer.import_people(
            context, folder, frame_start=self.frame_start, scale=self.scale, root_motion=self.root_motion))
        if results is None:
            return {"CANCELLED"}
        self.report({"INFO"}, f"{len(results)} people of {folder}: "
                    + ", ".join(f"{r.armature.name} ({r.frames} frames)" for r in results))
        return {"FINISHED"}
