"""A tiny numpy ray caster for CLEVR-like scenes: spheres, cubes and cylinders on a ground plane.

Every pixel's ray is intersected with every object at once (arrays of shape objects × pixels),
the nearest hit wins, so occlusion is exact. Ray directions are scaled so that ``dir · forward
== 1``: the ray parameter ``t`` of a hit *is* its camera-space depth (distance along the view
axis), the quantity Blender's ``world_to_camera_view`` returns as ``z`` and CLEVR stores in
``pixel_coords[2]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPHERE, CUBE, CYLINDER = 0, 1, 2
GROUND = -1  # id of the ground plane in the id buffer
SKY = -2  # id of pixels that hit nothing (beyond the ground's edge)
EPS = 1e-4


@dataclass(frozen=True)
class Camera:
    """A pinhole camera; ``tan_half_fov`` spans half the (square) image width."""

    position: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    tan_half_fov: float

    @classmethod
    def look_at(cls, position, target=(0.0, 0.0, 0.0), fov_deg: float = 49.13) -> Camera:
        """Aim at ``target`` with world +z up (Blender's convention)."""
        position = np.asarray(position, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        return cls(position, forward, right, up, float(np.tan(np.radians(fov_deg) / 2)))

    def rays(self, size: int) -> np.ndarray:
        """(size*size, 3) directions through pixel centres, row-major from the top-left."""
        s = (np.arange(size) + 0.5) / size * 2 - 1  # -1 … 1, left→right
        u, v = np.meshgrid(s, -s)  # v: +1 at the top row
        k = self.tan_half_fov
        d = self.forward + k * (u[..., None] * self.right + v[..., None] * self.up)
        return d.reshape(-1, 3)

    def screen(self, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Continuous pixel column, row (origin at the top-left corner) and camera-space depth."""
        rel = np.atleast_2d(points) - self.position
        depth = rel @ self.forward
        col = (rel @ self.right / (depth * self.tan_half_fov) + 1) / 2 * size
        row = (1 - rel @ self.up / (depth * self.tan_half_fov)) / 2 * size
        return col, row, depth

    def project(self, points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CLEVR's ``get_camera_coords``: rounded pixel x, y (origin top-left) and depth."""
        col, row, depth = self.screen(points, size)
        return np.round(col).astype(int), np.round(row).astype(int), depth


@dataclass(frozen=True)
class Objects:
    """K solids standing on z = 0. ``half`` is the radius / half-side; the centre is at z = half."""

    shape: np.ndarray  # (K,) SPHERE | CUBE | CYLINDER
    xy: np.ndarray  # (K, 2)
    half: np.ndarray  # (K,)
    theta: np.ndarray  # (K,) rotation about z, radians
    albedo: np.ndarray  # (K, 3) in [0, 1]
    metal: np.ndarray  # (K,) bool

    @property
    def centre(self) -> np.ndarray:
        return np.column_stack([self.xy, self.half])

    @property
    def reach(self) -> np.ndarray:
        """Footprint radius on the ground (a cube's corner reaches √2 × its half-side)."""
        return np.where(self.shape == CUBE, np.sqrt(2), 1.0) * self.half

    @property
    def bound(self) -> np.ndarray:
        """Radius of the bounding sphere about the centre."""
        return np.choose(self.shape, [1.0, np.sqrt(3), np.sqrt(2)]) * self.half


def _frame(objs: Objects, k: int, vec: np.ndarray, point: bool) -> np.ndarray:
    """World points (or directions) ``(..., 3)`` in object ``k``'s frame (centred, unrotated)."""
    v = vec - objs.centre[k] if point else vec
    c, s = np.cos(objs.theta[k]), np.sin(objs.theta[k])
    return np.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1], v[..., 2]], -1)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (M, 3) arrays."""
    return np.einsum("ij,ij->i", a, b)


def _first_root(a, b, c) -> np.ndarray:
    """Smallest root > EPS of a t² + b t + c, or inf."""
    disc = b * b - 4 * a * c
    sq = np.sqrt(np.maximum(disc, 0.0))
    t0, t1 = (-b - sq) / (2 * a), (-b + sq) / (2 * a)
    t = np.where(t0 > EPS, t0, np.where(t1 > EPS, t1, np.inf))
    return np.where(disc >= 0, t, np.inf)


def hit(objs: Objects, k: int, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Ray parameter of each ray's first hit with object ``k`` (inf for a miss).

    ``origin`` and ``dirs`` are (3,) or (M, 3) and broadcast against each other.
    """
    h = objs.half[k]
    o, d = _frame(objs, k, origin, point=True), _frame(objs, k, dirs, point=False)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if objs.shape[k] == SPHERE:
            return _first_root((d * d).sum(-1), 2 * (o * d).sum(-1), (o * o).sum(-1) - h * h)
        if objs.shape[k] == CUBE:
            d = np.where(np.abs(d) < 1e-12, 1e-12, d)
            t1, t2 = (-h - o) / d, (h - o) / d
            near, far = np.minimum(t1, t2).max(-1), np.maximum(t1, t2).min(-1)
            return np.where((near <= far) & (near > EPS), near, np.inf)
        a = d[..., 0] ** 2 + d[..., 1] ** 2
        b = 2 * (o[..., 0] * d[..., 0] + o[..., 1] * d[..., 1])
        c = o[..., 0] ** 2 + o[..., 1] ** 2 - h * h
        side = _first_root(np.maximum(a, 1e-12), b, c)
        side = np.where(np.abs(o[..., 2] + side * d[..., 2]) <= h, side, np.inf)
        cap = (h - o[..., 2]) / d[..., 2]  # the top disc; the bottom one lies on the ground
        rx, ry = o[..., 0] + cap * d[..., 0], o[..., 1] + cap * d[..., 1]
        cap = np.where((cap > EPS) & (rx * rx + ry * ry <= h * h), cap, np.inf)
        return np.minimum(side, cap)


def normals(objs: Objects, k: int, points: np.ndarray) -> np.ndarray:
    """Outward unit normals of object ``k`` at surface ``points`` (M, 3)."""
    p = _frame(objs, k, points, point=True)
    h = objs.half[k]
    if objs.shape[k] == SPHERE:
        n = p / h
    elif objs.shape[k] == CUBE:
        rows, axis = np.arange(len(p)), np.abs(p).argmax(-1)
        n = np.zeros_like(p)
        n[rows, axis] = np.sign(p[rows, axis])
    else:
        radial = np.hypot(p[:, 0], p[:, 1])
        on_cap = np.abs(p[:, 2] - h) < np.abs(radial - h)
        side = p * [1.0, 1.0, 0.0] / np.maximum(radial, 1e-9)[:, None]
        n = np.where(on_cap[:, None], [0.0, 0.0, 1.0], side)
    c, s = np.cos(objs.theta[k]), np.sin(objs.theta[k])
    return np.column_stack([c * n[:, 0] - s * n[:, 1], s * n[:, 0] + c * n[:, 1], n[:, 2]])


def _window(objs: Objects, k: int, camera: Camera, size: int) -> np.ndarray:
    """Flat indices of the pixels whose centre rays can meet object ``k``.

    The object lies inside a world box; the box's 8 projected corners bound its image.
    """
    (x, y), r, top = objs.xy[k], objs.reach[k], 2 * objs.half[k]
    corners = np.array(
        [[x + sx * r, y + sy * r, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0, top)]
    )
    col, row, depth = camera.screen(corners, size)
    if (depth <= 0).any():
        return np.arange(size * size)
    j0, j1 = max(0, int(np.floor(col.min())) - 1), min(size, int(np.ceil(col.max())) + 1)
    i0, i1 = max(0, int(np.floor(row.min())) - 1), min(size, int(np.ceil(row.max())) + 1)
    return (np.arange(i0, i1)[:, None] * size + np.arange(j0, j1)[None]).ravel()


@dataclass(frozen=True)
class Hits:
    """Primary-ray result per pixel: depth (camera-space, 0 where nothing), id and ray dirs."""

    depth: np.ndarray  # (N,)
    ids: np.ndarray  # (N,) object index, GROUND or SKY
    dirs: np.ndarray  # (N, 3)


def trace(objs: Objects, camera: Camera, size: int, ground_radius: float) -> Hits:
    """Nearest hit of each pixel-centre ray among the objects and a ground disc (a z-buffer)."""
    dirs = camera.rays(size)
    with np.errstate(divide="ignore"):
        depth = np.where(dirs[:, 2] < 0, -camera.position[2] / dirs[:, 2], np.inf)
    gxy = camera.position[:2] + depth[:, None] * dirs[:, :2]
    depth = np.where((gxy * gxy).sum(1) <= ground_radius**2, depth, np.inf)
    ids = np.where(np.isfinite(depth), GROUND, SKY)
    for k in range(len(objs.shape)):
        win = _window(objs, k, camera, size)
        t = hit(objs, k, camera.position, dirs[win])
        closer = win[t < depth[win]]
        depth[closer], ids[closer] = t[t < depth[win]], k
    return Hits(np.where(np.isfinite(depth), depth, 0.0), ids, dirs)


def occluded(objs: Objects, origins: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Whether each ray ``origins + t · direction`` (t > 0) meets any object: (M,) bool.

    Only rays passing within an object's bounding sphere are tested exactly.
    """
    blocked = np.zeros(len(origins), dtype=bool)
    o_along, o_sq = origins @ direction, _dot(origins, origins)
    for k in range(len(objs.shape)):
        c = objs.centre[k]
        along = c @ direction - o_along  # (c - o) · direction
        miss2 = c @ c - 2 * (origins @ c) + o_sq - along**2  # |c - o|² - along²
        r = objs.bound[k]
        cand = np.flatnonzero(~blocked & (along > -r) & (miss2 <= r * r))
        if len(cand):
            blocked[cand] = np.isfinite(hit(objs, k, origins[cand], direction))
    return blocked


@dataclass(frozen=True)
class Light:
    """One key light (direction towards it) plus ambient and a camera-side fill."""

    direction: np.ndarray
    key: float = 0.75
    ambient: float = 0.32
    fill: float = 0.12


GROUND_ALBEDO = np.array([0.6, 0.6, 0.6])
SKY_RGB = np.array([0.78, 0.78, 0.8])


def shade(objs: Objects, camera: Camera, hits: Hits, light: Light, shadows: bool = True):
    """Lambert shading with hard shadows; metal adds a mirror-ish sheen and a tight highlight.

    Returns (N, 3) colours in [0, 1].
    """
    n_px = len(hits.ids)
    L = light.direction / np.linalg.norm(light.direction)
    view = hits.dirs / np.sqrt(_dot(hits.dirs, hits.dirs))[:, None]
    pts = camera.position + hits.depth[:, None] * hits.dirs
    nrm = np.zeros((n_px, 3))
    nrm[hits.ids == GROUND] = [0.0, 0.0, 1.0]
    albedo = np.zeros((n_px, 3))
    albedo[hits.ids == GROUND] = GROUND_ALBEDO
    metal = np.zeros(n_px, dtype=bool)
    for k in range(len(objs.shape)):
        m = hits.ids == k
        if m.any():
            nrm[m] = normals(objs, k, pts[m])
            albedo[m] = objs.albedo[k]
            metal[m] = objs.metal[k]
    hit = hits.ids != SKY
    lit = np.clip(nrm @ L, 0.0, None)
    if shadows:
        cand = hit & (lit > 0)
        origins = pts[cand] + 1e-3 * nrm[cand]
        lit[np.flatnonzero(cand)[occluded(objs, origins, L)]] = 0.0
    facing = np.clip(-_dot(nrm, view), 0.0, None)
    diffuse = light.ambient + light.key * lit + light.fill * facing
    half = L - view
    nh = np.clip(_dot(nrm, half) / np.sqrt(_dot(half, half)), 0.0, None)
    spec = np.where(metal, 0.9 * nh**60, 0.06 * nh**8) * (lit > 0)
    refl_z = view[:, 2] - 2 * _dot(view, nrm) * nrm[:, 2]  # reflected ray: up sees the sky
    env = np.where(refl_z[:, None] > 0, SKY_RGB, GROUND_ALBEDO * 0.7)
    rgb = albedo * diffuse[:, None] * np.where(metal, 0.55, 1.0)[:, None]
    rgb += np.where(metal[:, None], 0.35 * env * (0.4 + 0.6 * albedo), 0.0) + spec[:, None]
    rgb[~hit] = SKY_RGB
    return np.clip(rgb, 0.0, 1.0)
