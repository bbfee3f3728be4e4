"""A vectorised ray caster for the procedural world: one primary ray per pixel, one shadow ray per hit.

Every image-like modality is read off the same per-pixel hit record (distance, normal, surface
class, instance), which is why rgb, depth, normals, segmentation and instances align exactly:
no modality is estimated from another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import geometry
from .scene import BACK_WALL_Z, COLORS, ROOM_HALF_WIDTH, SEMSEG_CLASSES, SHAPES, WALL_HEIGHT, Scene, SceneObject
from ...errors import ConfigError, DataError

FLOOR, WALL = SEMSEG_CLASSES.index("floor"), SEMSEG_CLASSES.index("wall")
_AMBIENT = 0.35
_SKY = np.array([0.78, 0.84, 0.93], np.float32)
_MATERIAL = {"matte": (1.0, 0.06, 8.0), "metal": (0.55, 0.9, 60.0)}  # diffuse, specular, shininess


@dataclass
class Rendering:
    """Aligned per-pixel outputs of one render (H, W leading dims).

    depth: camera-frame z in metres (0 where no surface); normal: unit normals in the OpenCV
    camera frame (x right, y down, z forward; zeros where no surface); semseg: index into
    `SEMSEG_CLASSES`; instance: 0 for none, k for `scene.objects[k - 1]`.
    """

    rgb: np.ndarray
    depth: np.ndarray
    normal: np.ndarray
    semseg: np.ndarray
    instance: np.ndarray


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)


def _intersect_local(obj: SceneObject, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hit distance and world normal of rays (world frame) against one object."""
    rot = _yaw_matrix(obj.yaw)
    lo = (o - np.array([obj.x, 0, obj.z], np.float32)) @ rot  # row vectors: v @ R == R^T v
    ld = d @ rot
    s = obj.scale
    if obj.shape == "sphere":
        t, n = geometry.sphere(lo, ld, s)
    elif obj.shape == "cube":
        t, n = geometry.convex_polyhedron(lo, ld, *geometry.cube_planes(0.8 * s))
    elif obj.shape == "pyramid":
        t, n = geometry.convex_polyhedron(lo, ld, *geometry.pyramid_planes(0.9 * s, 1.8 * s))
    elif obj.shape == "cylinder":
        t, n = geometry.cylinder(lo, ld, 0.8 * s, 1.6 * s)
    elif obj.shape == "cone":
        t, n = geometry.cone(lo, ld, 0.9 * s, 2 * s)
    elif obj.shape == "torus":
        t, n = geometry.torus(lo, ld, 0.75 * s, 0.3 * s)
    else:
        raise DataError(f"unknown shape {obj.shape!r} in the scene; use one of {SHAPES}")
    return t, n @ rot.T


def _bound_candidates(obj: SceneObject, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Indices of rays that pass through the object's bounding sphere ahead of their origin.

    All primary rays share the camera origin `o`, which makes this a single mat-vec.
    """
    oc = o - obj.centre
    b = d @ oc
    c = float(oc @ oc) - obj.bounding_radius**2
    disc = b * b - c
    ok = (disc > 0) & ((b < 0) | (c < 0))  # the far intersection lies ahead of the origin
    return np.nonzero(ok)[0]


def _room(o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit with the floor (y = 0) and the three walls, all bounded by the room (beyond is sky)."""
    m = len(d)
    o = np.broadcast_to(o, (m, 3))
    ox, oy, oz = o[:, 0], o[:, 1], o[:, 2]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    t_best = np.full(m, np.inf, np.float32)
    normal = np.zeros((m, 3), np.float32)
    cls = np.zeros(m, np.uint8)
    w, zmax, eps = ROOM_HALF_WIDTH + 1e-4, BACK_WALL_Z + 1e-4, 1e-4
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -oy / dy  # floor
        ok = (dy < 0) & (t > eps) & (np.abs(ox + t * dx) <= w) & (oz + t * dz <= zmax)
        t_best[ok], normal[ok], cls[ok] = t[ok], (0, 1, 0), FLOOR
        t = (BACK_WALL_Z - oz) / dz
        y = oy + t * dy
        ok = (dz > 0) & (t > eps) & (t < t_best) & (y >= 0) & (y <= WALL_HEIGHT) & (np.abs(ox + t * dx) <= w)
        t_best[ok], normal[ok], cls[ok] = t[ok], (0, 0, -1), WALL
        for sign in (1.0, -1.0):  # side walls at x = +-W
            t = (sign * ROOM_HALF_WIDTH - ox) / dx
            y = oy + t * dy
            ok = (sign * dx > 0) & (t > eps) & (t < t_best) & (y >= 0) & (y <= WALL_HEIGHT) & (oz + t * dz <= zmax)
            t_best[ok], normal[ok], cls[ok] = t[ok], (-sign, 0, 0), WALL
    return t_best, normal, cls


def _shadowed(scene: Scene, points: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Whether each point sees the light: one shadow ray against every object and wall.

    All shadow rays share the light direction, so the bounding-sphere cull is a 2D disc test in
    the plane orthogonal to the light (points projected once for all objects).
    """
    blocked = np.isfinite(_room(points, np.broadcast_to(light, points.shape))[0])
    e1 = np.cross(light, [0, 0, 1] if abs(light[2]) < 0.9 else [1, 0, 0]).astype(np.float32)
    e1 /= np.linalg.norm(e1)
    frame = np.stack([e1, np.cross(light, e1), light], 1).astype(np.float32)
    proj = points @ frame  # (M, 3): two in-plane coordinates, then distance along the light
    for obj in scene.objects:
        c = obj.centre @ frame
        r = obj.bounding_radius
        du, dv = proj[:, 0] - c[0], proj[:, 1] - c[1]
        idx = np.nonzero((du * du + dv * dv < r * r) & (proj[:, 2] < c[2] + r) & ~blocked)[0]
        if idx.size:
            t, _ = _intersect_local(obj, points[idx], np.broadcast_to(light, (idx.size, 3)))
            blocked[idx[np.isfinite(t)]] = True
    return blocked


def _pixel_rays(scene: Scene, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (H*W, 3) through pixel centres and their cosine to the optical axis."""
    basis = scene.camera.basis()
    tan_half = math.tan(math.radians(scene.camera.fov_deg) / 2)
    u = ((np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1) * tan_half
    v = ((np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1) * tan_half * height / width
    uu, vv = np.meshgrid(u, v)
    d = basis[2] + uu.reshape(-1, 1) * basis[0] + vv.reshape(-1, 1) * basis[1]
    norm = np.linalg.norm(d, axis=1)
    return (d / norm[:, None]).astype(np.float32), (1.0 / norm).astype(np.float32)


def render(scene: Scene, size: int | tuple[int, int]) -> Rendering:
    """Ray-cast `scene` at `size` (an int for square images, or (height, width))."""
    height, width = (size, size) if isinstance(size, int) else size
    if height < 8 or width < 8:
        raise ConfigError(f"render size must be at least 8x8 pixels, got {height}x{width}")
    origin = np.asarray(scene.camera.position, np.float32)
    d, cos_axis = _pixel_rays(scene, height, width)
    t, normal, semseg = _room(origin, d)
    instance = np.zeros(len(d), np.uint8)
    for k, obj in enumerate(scene.objects, start=1):
        idx = _bound_candidates(obj, origin, d)
        if idx.size == 0:
            continue
        tk, nk = _intersect_local(obj, np.broadcast_to(origin, (idx.size, 3)), d[idx])
        closer = tk < t[idx]
        sel = idx[closer]
        t[sel], normal[sel], instance[sel] = tk[closer], nk[closer], k
        semseg[sel] = SEMSEG_CLASSES.index(obj.shape)

    hit = np.isfinite(t)
    points = origin + np.where(hit, t, 0)[:, None] * d
    light = np.asarray(scene.light_dir, np.float32)
    lit = np.zeros(len(d), bool)
    hit_idx = np.nonzero(hit)[0]
    facing = (normal[hit_idx] @ light) > 0
    cand = hit_idx[facing]
    lit[cand] = ~_shadowed(scene, points[cand] + 1e-3 * normal[cand], light)

    base = np.empty((len(d), 3), np.float32)
    base[:] = _SKY
    floor = semseg == FLOOR
    checker = (np.floor(points[floor, 0]) + np.floor(points[floor, 2])) % 2
    base[floor] = np.asarray(scene.floor_color, np.float32) / 255 * (0.92 + 0.08 * checker)[:, None]
    base[semseg == WALL] = np.asarray(scene.wall_color, np.float32) / 255
    ndl = np.clip(normal @ light, 0, None) * lit
    gain = _AMBIENT + (1 - _AMBIENT) * ndl
    rgb = base * np.where(hit, gain, 1.0)[:, None]
    for k, obj in enumerate(scene.objects, start=1):  # objects: their colour, material and highlight
        m = np.nonzero(instance == k)[0]
        if m.size == 0:
            continue
        kd, ks, shine = _MATERIAL[obj.material]
        half = light - d[m]
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        spec = ks * np.clip(np.einsum("ij,ij->i", normal[m], half), 0, None) ** shine * lit[m]
        colour = np.asarray(COLORS[obj.color], np.float32) / 255
        rgb[m] = colour * (_AMBIENT + (1 - _AMBIENT) * kd * ndl[m])[:, None] + spec[:, None]
    rgb8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)

    depth = np.where(hit, t * cos_axis, 0).astype(np.float32)
    cam_normal = (normal @ scene.camera.basis().T) * hit[:, None]
    return Rendering(
        rgb=rgb8.reshape(height, width, 3),
        depth=depth.reshape(height, width),
        normal=cam_normal.astype(np.float32).reshape(height, width, 3),
        semseg=semseg.reshape(height, width),
        instance=instance.reshape(height, width),
    )
