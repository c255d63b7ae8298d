"""Pipelines that compose the stages: one camera (:mod:`~mocap.pipelines.capture`), several
cameras (:mod:`~mocap.pipelines.multiview`) and many videos (:mod:`~mocap.pipelines.batch`).
They hold no numerics of their own.
"""
