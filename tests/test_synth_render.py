"""The ray caster behind synth-clevr: camera conventions, exact hits, occlusion, culling."""

from __future__ import annotations

import numpy as np
import pytest

from ijepa_eval.data.synth import clevr, render
from ijepa_eval.data.synth.render import CUBE, CYLINDER, GROUND, SKY, SPHERE


def solids(shape, xy, half, theta=None) -> render.Objects:
    k = len(shape)
    return render.Objects(
        shape=np.array(shape),
        xy=np.array(xy, dtype=float),
        half=np.array(half, dtype=float),
        theta=np.zeros(k) if theta is None else np.array(theta, dtype=float),
        albedo=np.full((k, 3), 0.5),
        metal=np.zeros(k, dtype=bool),
    )


def test_projection_is_clevr_get_camera_coords() -> None:
    """Depth is distance along the view axis (not along the ray); pixel origin is top-left."""
    cam = render.Camera.look_at([0.0, -10.0, 1.0], target=[0.0, 0.0, 1.0], fov_deg=90.0)
    # 5 ahead, 2 right, 1 up: at 90° fov the image half-width at depth 5 is 5.
    px, py, depth = cam.project(np.array([[2.0, -5.0, 2.0], [0.0, 0.0, 1.0]]), size=100)
    assert depth == pytest.approx([5.0, 10.0])
    assert (px[0], py[0]) == (70, 40)  # (2/5 + 1)/2 * 100, (1 - 1/5)/2 * 100
    assert (px[1], py[1]) == (50, 50)


def test_ray_parameter_is_camera_space_depth() -> None:
    """An off-axis hit's depth map value is its view-axis distance, as Blender's z."""
    cam = render.Camera.look_at([0.0, -10.0, 2.0], target=[0.0, 0.0, 2.0], fov_deg=60.0)
    wall = solids([CUBE], [[0.0, 0.0]], [2.0])  # front face at y = -2: depth 8 everywhere
    hits = render.trace(wall, cam, size=64, ground_radius=50.0)
    on_face = hits.ids == 0
    assert on_face.sum() > 500
    np.testing.assert_allclose(hits.depth[on_face], 8.0, atol=1e-9)
    euclid = hits.depth * np.linalg.norm(hits.dirs, axis=1)
    assert euclid[on_face].max() > 8.3  # so the test tells the two apart


@pytest.mark.parametrize(
    ("shape", "expected"),
    [(SPHERE, 10.0 - 0.7), (CUBE, 10.0 - 0.7), (CYLINDER, 10.0 - 0.7)],
)
def test_axis_ray_hits_the_front_surface(shape: int, expected: float) -> None:
    obj = solids([shape], [[0.0, 0.0]], [0.7])
    t = render.hit(obj, 0, np.array([0.0, -10.0, 0.7]), np.array([[0.0, 1.0, 0.0]]))
    assert t[0] == pytest.approx(expected)


def test_cylinder_top_cap_and_rotated_cube() -> None:
    cyl = solids([CYLINDER], [[0.0, 0.0]], [0.5])
    down = render.hit(cyl, 0, np.array([0.2, 0.1, 5.0]), np.array([[0.0, 0.0, -1.0]]))
    assert down[0] == pytest.approx(5.0 - 1.0)  # the cap at z = 2 * half
    assert render.normals(cyl, 0, np.array([[0.2, 0.1, 1.0]]))[0] == pytest.approx([0, 0, 1])
    # a cube turned 45° shows its edge to a ray along y: half-side × √2 nearer than its centre
    cube = solids([CUBE], [[0.0, 0.0]], [0.5], theta=[np.pi / 4])
    t = render.hit(cube, 0, np.array([0.0, -10.0, 0.5]), np.array([[0.0, 1.0, 0.0]]))
    assert t[0] == pytest.approx(10.0 - 0.5 * np.sqrt(2))


def test_nearest_object_occludes_the_one_behind() -> None:
    cam = render.Camera.look_at([0.0, -10.0, 0.5], target=[0.0, 0.0, 0.5], fov_deg=40.0)
    pair = solids([SPHERE, CUBE], [[0.0, 3.0], [0.0, -3.0]], [0.5, 0.5])  # cube in front
    hits = render.trace(pair, cam, size=32, ground_radius=50.0)
    centre = 16 * 32 + 16
    assert hits.ids[centre] == 1 and hits.depth[centre] == pytest.approx(6.5, abs=1e-6)
    assert (hits.ids == 0).sum() == 0  # same height, same width, fully hidden
    assert set(np.unique(hits.ids)) <= {1, GROUND, SKY}


def test_windowed_z_buffer_equals_brute_force() -> None:
    """Culling rays to each object's projected box changes nothing."""
    for index in range(5):
        scene = clevr.sample_scene(seed=3, split="train", index=index, size=48)
        dirs = scene.camera.rays(48)
        t = np.array(
            [
                render.hit(scene.solids, k, scene.camera.position, dirs)
                for k in range(len(scene.solids.shape))
            ]
        )
        obj = scene.hits.ids >= 0
        np.testing.assert_array_equal(scene.hits.ids[obj], t.argmin(0)[obj])
        np.testing.assert_array_equal(obj, np.isfinite(t).any(0))
        np.testing.assert_allclose(scene.hits.depth[obj], t.min(0)[obj])


def test_shadows_darken_the_ground_behind_an_object() -> None:
    cam = render.Camera.look_at([0.0, -10.0, 6.0], fov_deg=50.0)
    ball = solids([SPHERE], [[0.0, 0.0]], [0.7])
    light = render.Light(direction=np.array([1.0, 0.0, 1.0]))  # the shadow falls towards -x
    hits = render.trace(ball, cam, size=64, ground_radius=50.0)
    lit = render.shade(ball, cam, hits, light, shadows=False)
    shadowed = render.shade(ball, cam, hits, light, shadows=True)
    pts = cam.position + hits.depth[:, None] * hits.dirs
    ground = hits.ids == GROUND
    shade_side = ground & (np.abs(pts[:, 1]) < 0.3) & (pts[:, 0] > -1.4) & (pts[:, 0] < -0.9)
    sun_side = ground & (pts[:, 0] > 1.0)
    assert shade_side.sum() > 5 and sun_side.sum() > 5
    assert (shadowed[shade_side] < lit[shade_side]).all()
    np.testing.assert_array_equal(shadowed[sun_side], lit[sun_side])
