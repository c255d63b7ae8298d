"""Clean-up of 3D motion: gap filling and filters over time, foot contact and the ground, and
the move from the camera frame to the +Y-up world frame.
"""
