"""The 2D -> 3D lifting network: a temporal convolutional network trained on CMU mocap.

Modules (torch is imported only by ``model``, ``train``, ``evaluate`` and ``inference``):

- :mod:`mocap.lift.features`: the network's 2D input joint set and per-frame normalisation (numpy).
- :mod:`lifting.data`: CMU BVH takes -> world joint positions at 120 Hz, the train/val/test split.
- :mod:`lifting.augment`: random virtual cameras, projection, detector-like 2D corruption (numpy).
- :mod:`mocap.lift.model`: the temporal convolutional network (offline and causal).
- :mod:`lifting.train`: ``python -m lifting.train``.
- :mod:`lifting.evaluate`: ``python -m lifting.evaluate``.
- :mod:`mocap.lift.network`: :class:`NetworkLifter` and :class:`StreamingLifter`.
"""
