import numpy as np
import pytest

from open4m.data.synthetic import geometry

DOWN = np.array([[0, -1, 0]], np.float32)


def _down_from(x: float, z: float) -> np.ndarray:
    return np.array([[x, 10, z]], np.float32)


@pytest.mark.parametrize(
    "name, hit, top",
    [
        ("sphere", lambda o, d: geometry.sphere(o, d, 0.5), 0.5 + np.sqrt(0.25 - 0.01)),
        ("cube", lambda o, d: geometry.convex_polyhedron(o, d, *geometry.cube_planes(0.4)), 0.8),
        ("pyramid", lambda o, d: geometry.convex_polyhedron(o, d, *geometry.pyramid_planes(0.5, 1.2)), 1.2 * 0.8),
        ("cylinder", lambda o, d: geometry.cylinder(o, d, 0.5, 0.7), 0.7),
        ("cone", lambda o, d: geometry.cone(o, d, 0.5, 1.1), 1.1 * 0.8),
    ],
)
def test_vertical_ray_hits_top_with_upward_normal(name, hit, top):
    t, n = hit(_down_from(0.1, 0), DOWN)  # 0.1 off-axis: the expected height is closed-form for every shape
    assert t[0] == pytest.approx(10 - top, abs=1e-3), name
    assert n[0, 1] > 0.3
    t_miss, _ = hit(_down_from(3, 3), DOWN)
    assert np.isinf(t_miss[0])


def test_torus_hole_and_ring():
    t, n = geometry.torus(np.concatenate([_down_from(0, 0), _down_from(0.75, 0)]), np.repeat(DOWN, 2, 0), 0.75, 0.3)
    assert np.isinf(t[0])  # straight through the hole
    assert t[1] == pytest.approx(10 - 0.6, abs=2e-3)
    np.testing.assert_allclose(n[1], [0, 1, 0], atol=1e-2)


def test_sphere_normal_is_radial_from_side():
    o, d = np.array([[-5, 0.5, 0]], np.float32), np.array([[1, 0, 0]], np.float32)
    t, n = geometry.sphere(o, d, 0.5)
    assert t[0] == pytest.approx(4.5, abs=1e-4)
    np.testing.assert_allclose(n[0], [-1, 0, 0], atol=1e-5)
