"""Several calibrated cameras: triangulation, calibration from boards and from the people in
the shot, and synchronisation of the views.
"""
