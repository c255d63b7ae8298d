"""3D lifting at run time: the temporal network (:mod:`~mocap.lift.model`), its input features,
shipped weights and inference (:mod:`~mocap.lift.network`), and the lifter interface with the
MediaPipe baseline (:mod:`~mocap.lift.lifters`). Training and evaluation live in ``lifting/``,
which imports this package; nothing here imports ``lifting``.
"""
