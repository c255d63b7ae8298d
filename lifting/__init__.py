"""Training and evaluation of the 2D -> 3D lifting network (CMU mocap).

Imports point one way: ``lifting`` uses the runtime lifter in :mod:`mocap.lift`; nothing in
``mocap`` imports ``lifting``. Torch is imported inside the functions that need it.

- :mod:`lifting.data`: CMU BVH takes -> world joint positions at 120 Hz, the train/val/test split.
- :mod:`lifting.data_extra`: more takes from ``cmu_extra.tar.xz`` (ASF/AMC and BVH).
- :mod:`lifting.augment`: random virtual cameras, projection, detector-like 2D corruption (numpy).
- :mod:`lifting.train`: ``python -m lifting.train``.
- :mod:`lifting.evaluate`: ``python -m lifting.evaluate``; runs the runtime's own
  :func:`mocap.lift.network.lift_normalised`.

Runtime (in :mod:`mocap.lift`): :mod:`~mocap.lift.features` (input joint set, normalisation,
mirroring), :mod:`~mocap.lift.model` (the network), :mod:`~mocap.lift.network`
(:class:`NetworkLifter`, :class:`StreamingLifter`).
"""
