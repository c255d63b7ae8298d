"""Face: head orientation and animator controls (ARKit-named curves) from face landmarks, and
their files (face.npz, face.csv). The landmarks come from
:mod:`mocap.detect2d.estimators.face_torch`; everything here is numpy.
"""
