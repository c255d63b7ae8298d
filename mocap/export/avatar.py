"""The built-in default character: the ``anny`` body model (Apache-2.0, MakeHuman-based,
its data inside the wheel, works offline) as a skinned mesh on a 104-bone armature.

Two stages, each cached in ``mocap.io.model_files.cache_dir() / "avatar"``:

1. :func:`anny_rig_arrays` runs anny once for a neutral adult (about 1.73 m) and keeps what a
   character needs as a small ``.npz`` (~0.4 MB): the rest mesh, the skeleton and the skin
   weights, in our axes (+Y up, facing +Z, left = +X, metres, soles at y = 0). anny's own
   first construction takes a minute or more and writes ~790 MB of cache to
   ``$ANNY_CACHE_DIR`` (default ``~/.cache/anny``); later runs never import anny.
2. :func:`build_anny_avatar` (Blender) turns the arrays into an armature with the mesh skinned
   to it (vertex groups + Armature modifier) in anny's rest pose (an A-pose) and writes it as
   .blend / .glb / .fbx. :func:`default_avatar_path` builds ``anny-<key>.blend`` once; it is then an
   ordinary target for :func:`mocap.export.blender.retarget_to_file`, with the bone map
   the bone map ``NAMING["anny"]`` of :mod:`mocap.export.retarget` (:func:`retarget_to_avatar` does both).

anny's own axes are Blender's (+Z up, facing -Y, left = +X); its bone frames (columns: the
bone's x, y, z axes, y along the bone) are kept, so a Blender bone's ``matrix_local`` is
anny's rest bone pose and anny's pose parameters could drive the armature directly.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap.errors import MocapError, missing_extra
from mocap.export.retarget import NAMING

#: Canonical joint (mocap.export.retarget.CANONICAL) -> bone of anny's default rig. ``root`` sits at
#: the hip centre and carries both legs and the spine, so it is the pelvis; upperleg02,
#: lowerleg02, upperarm02, lowerarm02 are twist bones; clavicles and shoulder01 follow the chest.
ANNY_BONE_MAP: dict[str, str] = dict(NAMING["anny"])
#: The default body: a young adult (anny's age anchor "young" = 2/3), gender-neutral, average
#: build, height phenotype 0.4 -> about 1.73 m tall.
DEFAULT_PHENOTYPE = (("gender", 0.5), ("age", 2.0 / 3.0), ("muscle", 0.5), ("weight", 0.5), ("height", 0.4),
                     ("proportions", 0.5))
_FORMAT = 1  # bump when the cached arrays change meaning
#: (3, 3) anny's / Blender's Z-up axes -> our Y-up axes (the inverse of Y_UP_TO_BLENDER).
_ANNY_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_NOT_A_TAIL = ("eye.L", "eye.R")  # the head bone ends at the top of the head, not at the eyes
_SKIN_RGBA = (0.80, 0.62, 0.52, 1.0)


@dataclass(frozen=True)
class AvatarRig:
    """A skinned character in its rest pose, our axes (+Y up, facing +Z, left +X), metres.

    Attributes:
        vertices: (V, 3) float32 rest mesh, the lowest vertex at y = 0, the root over x = z = 0.
        faces: (F, 3) int32 triangles (vertex indices, counter-clockwise seen from outside).
        bone_names: (B,) names; parents: (B,) parent index, root -1, parents first.
        heads: (B, 3) float64 bone heads (joint centres); tails: (B, 3) bone ends.
        rest_rotmats: (B, 3, 3) float64 bone frames, columns = the bone's x, y, z axes (y points
            head -> tail), as Blender's ``Bone.matrix_local`` after the axis change.
        weight_indices: (V, K) int32 bones influencing each vertex; weights: (V, K) float32,
            rows sum to 1 (unused slots have weight 0).
        phenotype: ((name, value), ...) anny phenotype the body was made with.
    """

    vertices: np.ndarray
    faces: np.ndarray
    bone_names: tuple[str, ...]
    parents: tuple[int, ...]
    heads: np.ndarray
    tails: np.ndarray
    rest_rotmats: np.ndarray
    weight_indices: np.ndarray
    weights: np.ndarray
    phenotype: tuple[tuple[str, float], ...]

    @property
    def height(self) -> float:
        """Standing height in metres (rest pose, top of the head above the soles)."""
        return float(self.vertices[:, 1].max() - self.vertices[:, 1].min())

    def dense_weights(self) -> np.ndarray:
        """(V, B) float32 skin weights."""
        out = np.zeros((len(self.vertices), len(self.bone_names)), np.float32)
        np.add.at(out, (np.arange(len(self.vertices))[:, None], self.weight_indices), self.weights)
        return out

    def index(self, name: str) -> int:
        return self.bone_names.index(name)


def _anny_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anny")
    except PackageNotFoundError:
        raise ImportError("anny is not installed; install it with: pip install 'mocap-lift[avatar]' "
                          "(and torch==2.13.0 first, so that pip does not pull a CUDA build)") from None


def avatar_cache_dir() -> Path:
    """Folder of the cached avatar files: ``mocap.io.model_files.cache_dir() / "avatar"``."""
    from mocap.io.model_files import cache_dir

    return cache_dir() / "avatar"


def _phenotype(overrides: dict[str, float]) -> tuple[tuple[str, float], ...]:
    names = [n for n, _ in DEFAULT_PHENOTYPE]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ValueError(f"unknown anny phenotype {', '.join(unknown)}; use: {', '.join(names)}")
    out = []
    for n, v in DEFAULT_PHENOTYPE:
        value = float(overrides.get(n, v))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"anny phenotype {n}={value} must lie in [0, 1]")
        out.append((n, value))
    return tuple(out)


def _cache_stem(phenotype: tuple[tuple[str, float], ...]) -> str:
    key = json.dumps({"format": _FORMAT, "anny": _anny_version(), "phenotype": phenotype}, sort_keys=True)
    return f"anny-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def anny_rig_arrays(*, cache: bool = True, **phenotype: float) -> AvatarRig:
    """The anny body as arrays (see :class:`AvatarRig`), from the cache when it is there.

    Args:
        cache: read / write ``avatar_cache_dir() / "anny-<key>.npz"`` (key: anny's version
            and the phenotype).
        **phenotype: anny phenotype values in [0, 1] overriding :data:`DEFAULT_PHENOTYPE`
            (gender 0 male .. 1 female, age, muscle, weight, height, proportions).
    The first call on a machine builds anny (a minute or more, ~790 MB in
    ``$ANNY_CACHE_DIR``, default ``~/.cache/anny``); with both caches warm it takes ~10 ms.
    """
    pheno = _phenotype(phenotype)
    path = avatar_cache_dir() / f"{_cache_stem(pheno)}.npz"
    if cache and path.is_file():
        try:
            return _load_rig(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # a damaged cache: rebuild it
            warnings.warn(f"rebuilding the damaged avatar cache {path} ({e})", stacklevel=2)
    rig = _extract_from_anny(pheno)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_rig(path, rig)
    return rig


def _extract_from_anny(phenotype: tuple[tuple[str, float], ...]) -> AvatarRig:
    _anny_version()
    import anny
    import torch

    model = anny.Anny(rig="anny", topology="anny", skinning_method="lbs")
    with torch.no_grad():
        rest = model(phenotype_kwargs=dict(phenotype))  # its rest_* outputs do not depend on the pose
    verts = rest["rest_vertices"][0].double().numpy()
    heads = rest["rest_bone_heads"][0].double().numpy()
    poses = rest["rest_bone_poses"][0].double().numpy()
    faces = model.faces.numpy()
    if faces.ndim != 2 or faces.shape[1] != 3:
        faces = np.asarray(model.get_triangular_faces().numpy())
    names = tuple(model.bone_labels)
    parents = tuple(int(p) for p in model.bone_parents)
    w = model.vertex_bone_weights.double().numpy()
    idx = model.vertex_bone_indices.numpy().astype(np.int32)
    return _to_rig(verts, faces, names, parents, heads, poses[:, :3, :3], idx, w, phenotype)


def _to_rig(verts, faces, names, parents, heads, rotmats, idx, w, phenotype) -> AvatarRig:
    """anny's Z-up arrays -> an :class:`AvatarRig` in our axes, grounded, with bone tails."""
    c = _ANNY_TO_Y_UP
    v = verts @ c.T
    h = heads @ c.T
    r = np.einsum("ij,bjk->bik", c, rotmats)
    shift = np.array([-h[0, 0], -v[:, 1].min(), -h[0, 2]])  # root over the origin, soles on the floor
    v, h = v + shift, h + shift
    w = np.where(w > 0, w, 0.0)
    w = w / w.sum(axis=1, keepdims=True)
    tails = h + r[:, :, 1] * _bone_lengths(v, h, r, names, parents, idx, w)[:, None]
    return AvatarRig(vertices=v.astype(np.float32), faces=np.asarray(faces, np.int32), bone_names=tuple(names),
                     parents=tuple(parents), heads=h, tails=tails, rest_rotmats=r, weight_indices=idx,
                     weights=w.astype(np.float32), phenotype=tuple(phenotype))


def _bone_lengths(v, heads, rotmats, names, parents, idx, w) -> np.ndarray:
    """(B,) bone lengths along each bone's y axis: to the farthest child head, for a bone
    without a child ahead of it to the farthest vertex it mostly moves (a fingertip, the top
    of the head), else 5 cm."""
    nb = len(parents)
    out = np.full(nb, 0.05)
    y = rotmats[:, :, 1]
    for b in range(nb):
        kids = [c for c in range(nb) if parents[c] == b and names[c] not in _NOT_A_TAIL]
        ahead = [float((heads[c] - heads[b]) @ y[b]) for c in kids]
        if ahead and max(ahead) > 0.01:
            out[b] = max(ahead)
            continue
        owned = np.any((idx == b) & (w > 0.5), axis=1)
        if owned.any():
            reach = float(((v[owned] - heads[b]) @ y[b]).max())
            if reach > 0.005:
                out[b] = reach
    return out


def _save_rig(path: Path, rig: AvatarRig) -> None:
    from mocap.formats import atomic_path

    arrays = {"vertices": rig.vertices, "faces": rig.faces, "bone_names": np.array(rig.bone_names),
              "parents": np.array(rig.parents, np.int32), "heads": rig.heads, "tails": rig.tails,
              "rest_rotmats": rig.rest_rotmats, "weight_indices": rig.weight_indices, "weights": rig.weights,
              "phenotype_names": np.array([n for n, _ in rig.phenotype]),
              "phenotype_values": np.array([v for _, v in rig.phenotype])}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def _load_rig(path: Path) -> AvatarRig:
    with np.load(path, allow_pickle=False) as d:
        return AvatarRig(vertices=d["vertices"], faces=d["faces"], bone_names=tuple(str(n) for n in d["bone_names"]),
                         parents=tuple(int(p) for p in d["parents"]), heads=d["heads"], tails=d["tails"],
                         rest_rotmats=d["rest_rotmats"], weight_indices=d["weight_indices"], weights=d["weights"],
                         phenotype=tuple(zip((str(n) for n in d["phenotype_names"]),
                                             (float(v) for v in d["phenotype_values"]))))


# --- Blender ---------------------------------------------------------------------------------

def _bpy():
    try:
        import bpy
    except ImportError:
        raise missing_extra("bpy (Blender as a Python module)", "blender") from None
    return bpy


def add_avatar_to_scene(rig: AvatarRig, *, name: str = "anny"):
    """Create ``rig`` in the current Blender scene: an armature object ``name`` (bones at the
    rest pose, bone frames as :attr:`AvatarRig.rest_rotmats`) and a mesh ``name + "_body"``
    parented to it, skinned by vertex groups and an Armature modifier. Returns the armature."""
    bpy = _bpy()
    from mathutils import Matrix

    from mocap.export.blender import Y_UP_TO_BLENDER as to_z

    data = bpy.data.armatures.new(name)
    arm = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    ebs = []
    for b, bone in enumerate(rig.bone_names):
        eb = data.edit_bones.new(bone)
        eb.head, eb.tail = (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)
        m = np.eye(4)
        m[:3, :3] = to_z @ rig.rest_rotmats[b]
        m[:3, 3] = to_z @ rig.heads[b]
        eb.matrix = Matrix(m.tolist())
        eb.length = float(np.linalg.norm(rig.tails[b] - rig.heads[b]))
        if rig.parents[b] >= 0:
            eb.parent = ebs[rig.parents[b]]
        ebs.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")

    mesh = bpy.data.meshes.new(name + "_body")
    mesh.from_pydata((rig.vertices.astype(np.float64) @ to_z.T).tolist(), [], rig.faces.tolist())
    mesh.update()
    mesh.shade_smooth()
    mat = bpy.data.materials.new(name + "_skin")
    mat.diffuse_color = _SKIN_RGBA
    bsdf = mat.node_tree.nodes.get("Principled BSDF") if mat.node_tree is not None else None
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = _SKIN_RGBA
        bsdf.inputs["Roughness"].default_value = 0.6
    mesh.materials.append(mat)
    body = bpy.data.objects.new(name + "_body", mesh)
    bpy.context.scene.collection.objects.link(body)
    groups = [body.vertex_groups.new(name=bone) for bone in rig.bone_names]
    for v, (bones, ws) in enumerate(zip(rig.weight_indices.tolist(), rig.weights.tolist())):
        for b, w in zip(bones, ws):
            if w > 0.0:
                groups[b].add([v], w, "ADD")
    body.parent = arm
    mod = body.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    return arm


def build_anny_avatar(path: str | os.PathLike, *, rig: AvatarRig | None = None, fps: float = 30.0) -> Path:
    """Write the anny character (default :func:`anny_rig_arrays`) in its rest pose, standing on
    the ground, to ``path`` (.blend, .glb/.gltf or .fbx). Replaces the current Blender scene."""
    from mocap.export.blender import EXPORT_SUFFIXES, new_scene, write_scene

    path = Path(path)
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise MocapError(f"cannot write the avatar to {path}: use one of {', '.join(EXPORT_SUFFIXES)}")
    rig = rig or anny_rig_arrays()
    new_scene(fps)
    add_avatar_to_scene(rig)
    write_scene(path)
    return path


def default_avatar_path(**phenotype: float) -> Path:
    """``avatar_cache_dir() / "anny-<key>.blend"``: the default character, built on first use
    (from the cached arrays: ~2 s; with a cold anny cache a minute or more)."""
    _bpy()
    pheno = _phenotype(phenotype)
    path = avatar_cache_dir() / f"{_cache_stem(pheno)}.blend"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        build_anny_avatar(path, rig=anny_rig_arrays(**dict(pheno)))
    return path


def retarget_to_avatar(motion_path: str | os.PathLike, out_path: str | os.PathLike, *, pin_feet: bool = True,
                       pin_hands: bool = False):
    """Put the motion of a motion.npz on the default anny character and write the animated,
    skinned character to ``out_path`` (.glb, .fbx, .blend). Returns the
    :class:`mocap.export.retarget.RetargetResult`."""
    from mocap.export.blender import retarget_to_file

    return retarget_to_file(motion_path, default_avatar_path(), out_path, pin_feet=pin_feet, pin_hands=pin_hands)


def render_frame(png_path: str | os.PathLike, *, frame: int = 1, resolution: tuple[int, int] = (640, 480),
                 floor: bool = True) -> Path:
    """Render the current scene's meshes at ``frame`` to a PNG with Workbench (headless, ~1 s),
    from a camera in front of the character (Blender -Y, our +Z) framing its posed mesh."""
    bpy = _bpy()
    from mathutils import Vector

    from mocap.formats import atomic_path

    scene = bpy.context.scene
    scene.frame_set(frame)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    pts = []
    for obj in [o for o in scene.objects if o.type == "MESH" and o.visible_get()]:
        ev = obj.evaluated_get(depsgraph)
        me = ev.to_mesh()
        co = np.empty(3 * len(me.vertices))
        me.vertices.foreach_get("co", co)
        world = np.array(ev.matrix_world)
        pts.append(co.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3])
        ev.to_mesh_clear()
    if not pts:
        raise MocapError("nothing to render: the scene has no mesh")
    pts = np.concatenate(pts)
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    if floor:
        mesh = bpy.data.meshes.new("floor")
        size = max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) * 2
        mesh.from_pydata([(centre[0] + sx * size, centre[1] + sy * size, 0.0) for sx, sy in
                          ((-1, -1), (1, -1), (1, 1), (-1, 1))], [], [(0, 1, 2, 3)])
        plane = bpy.data.objects.new("floor", mesh)
        mat = bpy.data.materials.new("floor")
        mat.diffuse_color = (0.55, 0.57, 0.6, 1.0)
        mesh.materials.append(mat)
        scene.collection.objects.link(plane)
    cam_data = bpy.data.cameras.new("render_camera")
    cam_data.lens = 50.0
    cam = bpy.data.objects.new("render_camera", cam_data)
    scene.collection.objects.link(cam)
    w, h = resolution
    half = max((hi[2] - lo[2]) / 2, (hi[0] - lo[0]) / 2 * h / w) * 1.25  # half the frame's height, metres
    distance = half / (18.0 * min(1.0, h / w) / 50.0) + (hi[1] - lo[1]) / 2  # 36 mm sensor across the wider side
    eye = Vector((centre[0], centre[1] - distance, centre[2] + 0.1 * half))
    cam.location = eye
    cam.rotation_euler = (Vector(centre.tolist()) - eye).to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.shading.show_shadows = True
    scene.view_settings.view_transform = "Standard"  # the default AgX greys the skin colour out
    scene.render.resolution_x, scene.render.resolution_y = w, h
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.film_transparent = False
    if scene.world is None:
        scene.world = bpy.data.worlds.new("background")
    scene.world.color = (0.8, 0.85, 0.9)
    png_path = Path(png_path)
    with atomic_path(png_path) as tmp:
        scene.render.filepath = str(tmp)
        bpy.ops.render.render(write_still=True)
    return png_path
