"""Vectorised ray-primitive intersections in each primitive's local frame.

Every function takes ray origins and unit directions as (M, 3) float32 arrays and returns the
distance to the first hit beyond `eps` (``inf`` for a miss) plus the local surface normal. The
renderer culls rays against a bounding sphere first, so these only see the few rays that can hit.
Local frames: the primitive rests on the plane y = 0 with its vertical axis along +y through the
origin, which is what makes every shape a cheap closed form (the torus alone is sphere-traced).
"""

from __future__ import annotations

import numpy as np

INF = np.float32(np.inf)


def _pick_root(t_near: np.ndarray, t_far: np.ndarray, ok_near: np.ndarray, ok_far: np.ndarray) -> np.ndarray:
    """The nearest valid root of a quadratic, inf where neither is valid."""
    return np.where(ok_near, t_near, np.where(ok_far, t_far, INF))


def _quadratic(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Roots (near, far) of a t^2 + b t + c = 0 and whether they are real."""
    disc = b * b - 4 * a * c
    real = (disc >= 0) & (np.abs(a) > 1e-9)
    sq = np.sqrt(np.where(real, disc, 0))
    inv = np.where(real, 0.5 / np.where(real, a, 1), 0)
    t1, t2 = (-b - sq) * inv, (-b + sq) * inv
    return np.minimum(t1, t2), np.maximum(t1, t2), real


def sphere(o: np.ndarray, d: np.ndarray, radius: float, eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Sphere of `radius` resting on the floor (centre at y = radius)."""
    oc = o - np.array([0, radius, 0], np.float32)
    b = np.einsum("ij,ij->i", oc, d)
    c = np.einsum("ij,ij->i", oc, oc) - radius * radius
    disc = b * b - c
    real = disc >= 0
    sq = np.sqrt(np.where(real, disc, 0))
    t1, t2 = -b - sq, -b + sq
    t = _pick_root(t1, t2, real & (t1 > eps), real & (t2 > eps))
    n = (oc + np.where(np.isfinite(t), t, 0)[:, None] * d) / radius
    return t, n


def convex_polyhedron(
    o: np.ndarray, d: np.ndarray, normals: np.ndarray, offsets: np.ndarray, eps: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of half-spaces n.p <= offset (cube, pyramid, ...) by clipping the ray against each."""
    num = offsets[None, :] - o @ normals.T  # (M, P): >= 0 means the origin is inside that half-space
    den = d @ normals.T
    safe = np.where(np.abs(den) < 1e-9, 1e-9, den)
    t_plane = num / safe
    entering = den < 0
    t_near = np.where(entering, t_plane, -INF)
    t_far = np.where(entering | (np.abs(den) < 1e-9), INF, t_plane)
    parallel_out = (np.abs(den) < 1e-9) & (num < 0)
    near_idx = np.argmax(t_near, axis=1)
    tn = t_near[np.arange(len(o)), near_idx]
    tf = t_far.min(axis=1)
    hit = (tn <= tf) & ~parallel_out.any(axis=1)
    t = _pick_root(tn, tf, hit & (tn > eps), hit & (tf > eps))
    # Leaving rays (origin inside) take the normal of the exit plane; renders never start inside.
    n = normals[near_idx]
    return t, n


def cube_planes(half: float) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned cube of half-extent `half` resting on the floor."""
    normals = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32)
    offsets = np.array([half, half, 2 * half, 0, half, half], np.float32)
    return normals, offsets


def pyramid_planes(half_base: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Square pyramid (base half-width, height) resting on the floor, apex up."""
    norm = float(np.hypot(height, half_base))
    h, b = height / norm, half_base / norm
    normals = np.array([[h, b, 0], [-h, b, 0], [0, b, h], [0, b, -h], [0, -1, 0]], np.float32)
    offsets = np.array([height * half_base / norm] * 4 + [0], np.float32)
    return normals, offsets


def cylinder(o: np.ndarray, d: np.ndarray, radius: float, height: float, eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Upright capped cylinder; its bottom cap lies on the floor and is never visible."""
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2])
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - radius * radius
    t1, t2, real = _quadratic(a, b, c)
    y1, y2 = o[:, 1] + t1 * d[:, 1], o[:, 1] + t2 * d[:, 1]
    t_side = _pick_root(t1, t2, real & (t1 > eps) & (y1 >= 0) & (y1 <= height),
                        real & (t2 > eps) & (y2 >= 0) & (y2 <= height))
    dy = np.where(np.abs(d[:, 1]) < 1e-9, 1e-9, d[:, 1])
    t_cap = (height - o[:, 1]) / dy
    px, pz = o[:, 0] + t_cap * d[:, 0], o[:, 2] + t_cap * d[:, 2]
    t_cap = np.where((t_cap > eps) & (px * px + pz * pz <= radius * radius), t_cap, INF)
    use_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    n = np.stack([p[:, 0] / radius, np.zeros_like(t), p[:, 2] / radius], 1)
    n[use_cap] = (0, 1, 0)
    return t, n


def cone(o: np.ndarray, d: np.ndarray, radius: float, height: float, eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Upright cone, base of `radius` on the floor and apex at `height`."""
    k2 = (radius / height) ** 2
    oy, dy = height - o[:, 1], -d[:, 1]  # distance below the apex
    a = d[:, 0] ** 2 + d[:, 2] ** 2 - k2 * dy * dy
    b = 2 * (o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2] - k2 * oy * dy)
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - k2 * oy * oy
    t1, t2, real = _quadratic(a, b, c)
    y1, y2 = o[:, 1] + t1 * d[:, 1], o[:, 1] + t2 * d[:, 1]
    t = _pick_root(t1, t2, real & (t1 > eps) & (y1 >= 0) & (y1 <= height),
                   real & (t2 > eps) & (y2 >= 0) & (y2 <= height))
    p = o + np.where(np.isfinite(t), t, 0)[:, None] * d
    n = np.stack([p[:, 0], k2 * (height - p[:, 1]), p[:, 2]], 1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return t, n


def torus(
    o: np.ndarray, d: np.ndarray, major: float, minor: float, steps: int = 48, eps: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Flat torus (ring axis vertical) lying on the floor, by sphere tracing its exact distance field.

    A quartic solver per ray costs more than ~20 tracing steps on the handful of rays inside the
    bounding sphere; the field is exact, so tracing never overshoots.
    """
    centre = np.array([0, minor, 0], np.float32)
    oc = o - centre
    bound = major + minor
    b = np.einsum("ij,ij->i", oc, d)
    disc = b * b - (np.einsum("ij,ij->i", oc, oc) - bound * bound)
    t = np.full(len(o), INF, np.float32)
    live = np.nonzero(disc > 0)[0]
    sq = np.sqrt(disc[live])
    cur = np.maximum(-b[live] - sq, eps * 10)
    t_exit = -b[live] + sq
    for _ in range(steps):
        if live.size == 0:
            break
        p = oc[live] + cur[:, None] * d[live]
        q = np.hypot(np.hypot(p[:, 0], p[:, 2]) - major, p[:, 1])
        dist = q - minor
        done = dist < 1e-4
        t[live[done]] = cur[done]
        keep = ~done & (cur + dist < t_exit)
        live, cur, t_exit = live[keep], (cur + dist)[keep], t_exit[keep]
    p = oc + np.where(np.isfinite(t), t, 0)[:, None] * d
    ring = np.maximum(np.hypot(p[:, 0], p[:, 2]), 1e-9)
    scale = 1 - major / ring
    n = np.stack([p[:, 0] * scale, p[:, 1], p[:, 2] * scale], 1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return t, n
