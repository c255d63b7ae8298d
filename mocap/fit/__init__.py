"""Fitting: the motion fitted to what the camera saw, in a world frame, and how well it matches."""
