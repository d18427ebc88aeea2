"""Property-based checks of the lattice geometry and descriptor definitions."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_causal_lattice import Lattice
from napari_causal_lattice.descriptors import compute_descriptors

angles = st.floats(-45.0, 45.0)
pitches = st.floats(4.0, 60.0)
shears = st.floats(-0.3, 0.3)


def _lattice(rotation, pitch, shear, aspect=1.0):
    t = np.radians(rotation)
    v1 = pitch * np.array([-np.sin(t), np.cos(t)])
    v2 = pitch * aspect * np.array([np.cos(t), np.sin(t)]) + shear * v1
    return Lattice(origin=(13.0, -4.0), v1=v1, v2=v2)


@settings(max_examples=60, deadline=None)
@given(angles, pitches, shears, st.floats(0.7, 1.4))
def test_grid_image_round_trip(rotation, pitch, shear, aspect):
    lat = _lattice(rotation, pitch, shear, aspect)
    ij = np.array([[0, 0], [5, -3], [17.5, 2.25]])
    np.testing.assert_allclose(lat.to_grid(lat.to_image(ij)), ij, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(angles, pitches, shears, st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.floats(1.0, 30.0))
def test_descriptors_of_ideal_cells(rotation, pitch, shear, di, dj, pixel_size):
    """A perfect parallelogram cell: a, b, alpha, Vol follow from v1, v2; P is the planted B offset."""
    lat = _lattice(rotation, pitch, shear)
    corners = lat.to_image(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float))[None]
    b = lat.to_image(np.array([0.5 + di, 0.5 + dj]))[None]
    d = compute_descriptors(corners, b, np.ones((1, 4)), np.ones(1), pixel_size=pixel_size, v1=lat.v1).iloc[0]
    la, lb = np.array(lat.spacings) * pixel_size
    assert np.isclose(d["a"], la) and np.isclose(d["b"], lb)
    assert np.isclose(d["alpha"], lat.angle)
    area = abs(lat.v1[0] * lat.v2[1] - lat.v1[1] * lat.v2[0]) * pixel_size**2
    assert np.isclose(d["Vol"], area, rtol=1e-9)
    offset = (di * lat.v2 + dj * lat.v1) * pixel_size
    assert np.isclose(np.hypot(d["Px"], d["Py"]), np.hypot(*offset), atol=1e-9)
    # Px is the component along v1
    assert np.isclose(d["Px"], offset @ (lat.v1 / np.hypot(*lat.v1)), atol=1e-9)
