"""Output for people and other tools: retargeting onto rigs, FBX/GLB/.blend through Blender
(``bpy`` only here), the built-in anny avatar, and pictures (2D overlays, 3D previews).
"""
