"""The fitting stage: the whole clip solved against what the camera saw (camera, world frame,
contacts, bones, poses), and how well the result matches the video (:mod:`mocap.fit.quality`)."""
