"""Kinematic trees: forward and inverse kinematics (one IK for whole clips and live frames), and
the SMPL body model.
"""
