"""Face: head orientation and animator controls (ARKit-named curves in [0, 1]) from face
landmarks (:mod:`mocap.face.controls`, numpy), and the stage's options
(:mod:`mocap.face.options`). The landmarks come from
:mod:`mocap.detect2d.estimators.face_torch`; face.npz and face.csv are :mod:`mocap.formats`'.
"""
