"""2D stage: keypoints of the people in a video, tracked with stable identities.

:mod:`~mocap.detect2d.estimators` holds the estimators behind one interface (BlazePose in
PyTorch and in MediaPipe, MoveNet, an OpenPose-style model); :mod:`~mocap.detect2d.tracking`
keeps person ids across frames, :mod:`~mocap.detect2d.choose` picks who is captured;
:mod:`~mocap.detect2d.swaps` undoes left/right swaps in one view.
"""
