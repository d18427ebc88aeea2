import numpy as np
import pytest

from napari_causal_lattice import DESCRIPTORS, Lattice, descriptor_units
from napari_causal_lattice.descriptors import compute_descriptors


def rotated_lattice(deg=7.0, pitch=20.0, origin=(30.0, 40.0)):
    t = np.radians(deg)
    v1 = pitch * np.array([-np.sin(t), np.cos(t)])
    v2 = pitch * np.array([np.cos(t), np.sin(t)])
    return Lattice(origin=origin, v1=v1, v2=v2)


def test_affine_maps_grid_to_image_and_back():
    lat = rotated_lattice()
    ij = np.array([[0, 0], [3, 5], [10, -2]], float)
    yx = lat.to_image(ij)
    homog = (lat.affine @ np.c_[ij, np.ones(3)].T).T[:, :2]
    np.testing.assert_allclose(yx, homog)
    np.testing.assert_allclose(lat.to_grid(yx), ij, atol=1e-12)
    assert lat.spacings == pytest.approx((20.0, 20.0))
    assert lat.angle == pytest.approx(90.0)
    assert lat.rotation == pytest.approx(7.0)


def test_subgrid_places_window_centres():
    lat = rotated_lattice()
    windows = lat.subgrid((4.5, 4.5), step=5)
    np.testing.assert_allclose(windows.to_image([2, 1]), lat.to_image([4.5 + 10, 4.5 + 5]))


def test_state_round_trip():
    lat = rotated_lattice()
    back = Lattice.from_state(lat.to_state())
    np.testing.assert_array_equal(back.affine, lat.affine)


def test_bad_lattice_vectors():
    with pytest.raises(ValueError, match="parallel"):
        Lattice(origin=(0, 0), v1=(0, 1), v2=(0, 2))
    with pytest.raises(ValueError, match="finite"):
        Lattice(origin=(np.nan, 0), v1=(0, 1), v2=(1, 0))


def test_units_follow_pixel_size():
    assert descriptor_units(20.0)["Vol"] == "pm^2"
    assert descriptor_units(None)["Px"] == "px"
    assert set(descriptor_units(None)) == set(DESCRIPTORS)


def _cell(lat, di=0.0, dj=0.0):
    corners = lat.to_image(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float))
    b = lat.to_image(np.array([0.5 + di, 0.5 + dj]))
    return corners[None], b[None]


def test_descriptors_on_a_rotated_cell():
    lat = rotated_lattice(deg=12.0, pitch=20.0)
    corners, b = _cell(lat, di=0.05, dj=-0.1)  # B shifted along v2 by 1 px and along v1 by -2 px
    d = compute_descriptors(corners, b, [[1, 2, 3, 4]], [5.0], pixel_size=10.0, frame="lattice", v1=lat.v1)
    row = d.iloc[0]
    assert row["I14"] == 10 and row["I5"] == 5
    assert row["a"] == pytest.approx(200.0) and row["b"] == pytest.approx(200.0)
    assert row["alpha"] == pytest.approx(90.0)
    assert row["Vol"] == pytest.approx(40000.0)
    assert row["Px"] == pytest.approx(-20.0)
    assert row["Py"] == pytest.approx(10.0)
    image = compute_descriptors(corners, b, [[1, 2, 3, 4]], [5.0], pixel_size=10.0, frame="image")
    assert np.hypot(image["Px"][0], image["Py"][0]) == pytest.approx(np.hypot(20.0, 10.0))


def test_descriptors_non_square_pixels():
    lat = Lattice(origin=(0, 0), v1=(0, 10), v2=(20, 0))
    corners, b = _cell(lat)
    d = compute_descriptors(corners, b, [[1, 1, 1, 1]], [1.0], pixel_size=(10.0, 20.0))
    assert d["a"][0] == pytest.approx(200.0) and d["b"][0] == pytest.approx(200.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"corners_yx": np.zeros((2, 3, 2))}, "corners_yx"),
        ({"b_yx": np.zeros((3, 2))}, "b_yx"),
        ({"pixel_size": -1.0}, "pixel_size"),
        ({"frame": "polar"}, "frame"),
    ],
)
def test_descriptor_input_errors(kwargs, match):
    args = {
        "corners_yx": np.zeros((2, 4, 2)),
        "b_yx": np.zeros((2, 2)),
        "corner_intensity": np.ones((2, 4)),
        "b_intensity": np.ones(2),
    }
    args.update(kwargs)
    positional = [args.pop(k) for k in ("corners_yx", "b_yx", "corner_intensity", "b_intensity")]
    with pytest.raises(ValueError, match=match):
        compute_descriptors(*positional, **args)


def test_check_calibration_names_the_likely_unit():
    import warnings

    from napari_causal_lattice.lattice import check_calibration

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_calibration(391.0) and check_calibration(276.0)
    with pytest.warns(UserWarning, match=r"0\.391 pm.*nm per px \(multiply it by 1000\)"):
        assert not check_calibration(0.391)
    with pytest.warns(UserWarning, match=r"angstrom per px \(multiply it by 100\)"):
        check_calibration(3.91)
    with pytest.warns(UserWarning, match=r"3\.915e\+05 pm.*1000 times too large"):
        check_calibration(391_462.0)
    with pytest.warns(UserWarning, match="off by a factor of about 0.194"):
        check_calibration(2000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_calibration(2000.0, plausible=(100.0, 3000.0))


def _bent_grid(shape=(12, 14), pitch=20.0, bend=0.012):
    """Points of a lattice that rotates slowly along x (about 10 degrees over the field), and their indices."""
    ij = np.stack(np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"), -1).reshape(-1, 2)
    angle = bend * ij[:, 1]
    yx = pitch * np.column_stack([ij[:, 0] * np.cos(angle) - ij[:, 1] * np.sin(angle) * 0.5,
                                  ij[:, 1] + ij[:, 0] * np.sin(angle)])
    return yx + 50.0, ij


@pytest.mark.parametrize("mutual, passes, tolerance", [(False, 1, 0.3), (True, 4, 0.35)])
def test_index_lattice_follows_a_bent_lattice(mutual, passes, tolerance):
    from napari_causal_lattice.lattice import index_lattice

    yx, ij = _bent_grid()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(yx))
    found = index_lattice(yx[order], (0.0, 20.0), (20.0, 0.0), tolerance=tolerance, mutual=mutual, passes=passes)
    assert len(np.unique(found.component)) == 1
    # indices relative to the patch's root: the same as the truth up to one shift
    shift = ij[order] - found.ij
    assert np.all(shift == shift[0])


def test_index_lattice_mutual_links_ignore_a_spurious_point_and_root_at_the_best_fit():
    from napari_causal_lattice.lattice import index_lattice

    yx, ij = _bent_grid(bend=0.0)
    spurious = yx[20] + np.array([3.0, 5.0])
    points = np.vstack([yx, spurious])
    found = index_lattice(points, (0.0, 20.0), (20.0, 0.0), tolerance=0.35, mutual=True, root="best_fit")
    assert found.component[-1] not in found.component[:-1]  # the spurious point stole no link
    assert np.isinf(found.misfit[-1])
    shift = ij - found.ij[:-1]
    assert np.all(shift == shift[0])
    # one-sided links keep the first point of a patch as its root
    first = index_lattice(yx, (0.0, 20.0), (20.0, 0.0))
    np.testing.assert_array_equal(first.ij, ij)


def test_index_lattice_extra_steps_join_a_centred_lattice():
    from napari_causal_lattice.lattice import index_lattice

    yx, _ = _bent_grid(bend=0.0)
    centred = np.vstack([yx, yx + 10.0])  # [001]: B at the cell centres
    c1, c2 = np.array([10.0, 10.0]), np.array([-10.0, 10.0])
    alone = index_lattice(centred, c1, c2)
    joined = index_lattice(centred, c1, c2, extra_steps=((0.0, 20.0), (20.0, 0.0)))
    assert len(np.unique(joined.component)) <= len(np.unique(alone.component))
    assert len(np.unique(joined.component)) == 1


@pytest.mark.parametrize("kwargs, match", [({"root": "centre"}, "root must be"),
                                           ({"mutual": True, "extra_steps": ((0.0, 20.0),)}, "extra_steps"),
                                           ({"passes": 3}, "passes > 1 needs mutual")])
def test_index_lattice_refuses_bad_options(kwargs, match):
    from napari_causal_lattice.lattice import index_lattice

    yx, _ = _bent_grid(bend=0.0)
    with pytest.raises(ValueError, match=match):
        index_lattice(yx, (0.0, 20.0), (20.0, 0.0), **kwargs)
