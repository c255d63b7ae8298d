"""Evaluation: 2D keypoint accuracy on COCO (``mocap eval-2d``) and motion quality reports
(``mocap report``).
"""
