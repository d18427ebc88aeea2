"""Wall profiles: planted tanh couplings across a domain wall are recovered (Lc within 20 %, sign change)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from napari_causal_lattice.figures import plot_wall_profile
from napari_causal_lattice.synthetic import synthetic_descriptor_grid
from napari_causal_lattice.walls import WallProfile, signed_distance, tanh_profile, wall_profile


def _wall_line(wall: dict, half_length: float) -> np.ndarray:
    """A line along the planted wall whose positive side is the planted "domain +"."""
    n = np.asarray(wall["normal"])
    t = np.array([n[1], -n[0]])
    return np.stack([wall["point"] - half_length * t, wall["point"] + half_length * t])


def test_signed_distance_convention():
    down = [(0.0, 5.0), (10.0, 5.0)]  # drawn top to bottom at x = 5
    np.testing.assert_allclose(signed_distance([(3.0, 8.0), (3.0, 1.0)], down), [3.0, -4.0])
    right = [(5.0, 0.0), (5.0, 10.0)]  # drawn left to right at y = 5
    np.testing.assert_allclose(signed_distance([(2.0, 3.0)], right), [3.0])  # above is positive


@pytest.fixture(scope="module")
def planted_grid():
    # long wall (120 rows) so every distance bin holds ~110 cells; no interface band, thin substrate
    return synthetic_descriptor_grid((120, 40), seed=0, substrate_rows=4, interface_rows=0)


def test_cells_recover_planted_wall_width_and_sign_change(planted_grid):
    g = planted_grid
    line = _wall_line(g.wall, 54 * g.wall["pitch_px"])
    prof = wall_profile(g, line, effect="Px", cause="Py", n_bootstrap=100, seed=1)
    assert isinstance(prof, WallProfile)
    assert prof.method == "bin regression"
    np.testing.assert_allclose(prof.normal, g.wall["normal"], atol=1e-12)
    # planted Lc = 2 cells = 40 px; tolerance 20 %
    assert prof.params["Lc"] == pytest.approx(g.wall["width_px"], rel=0.2)
    # planted k0 tanh(d/Lc) with k0 = 0.6: plateaus -0.6 / +0.6 (10 %), offset ~ 0, wall on the line
    low, high = prof.plateaus
    assert prof.sign_change and low < 0 < high
    assert low == pytest.approx(-0.6, rel=0.1) and high == pytest.approx(0.6, rel=0.1)
    assert abs(prof.params["shift"]) < 0.5 * g.wall["pitch_px"]
    # every bin interval holds its estimate; far bins exclude zero on the correct side
    t = prof.table
    assert (t["ci_low"] <= t["value"]).all() and (t["value"] <= t["ci_high"]).all()
    assert (t.loc[t["distance"] < -200, "ci_high"] < 0).all()
    assert (t.loc[t["distance"] > 200, "ci_low"] > 0).all()


def test_measured_cells_of_a_synthetic_image_recover_the_wall():
    from napari_causal_lattice.cells import build_cells
    from napari_causal_lattice.columns import find_columns
    from napari_causal_lattice.synthetic import synthetic_perovskite

    sample = synthetic_perovskite(seed=0, shape_cells=(72, 36), substrate_rows=4, interface_rows=0)
    cells = build_cells(find_columns(sample.image, pixel_size=sample.pixel_size))
    wall = sample.truth.wall
    prof = wall_profile(cells, _wall_line(wall, 32 * wall["pitch_px"]), n_bootstrap=100, seed=1)
    assert prof.units == "pm/pm"
    assert prof.params["Lc"] == pytest.approx(wall["width_px"], rel=0.2)
    assert prof.sign_change and prof.plateaus[0] < 0 < prof.plateaus[1]


def test_cells_with_per_bin_lingam(planted_grid):
    g = planted_grid
    line = _wall_line(g.wall, 54 * g.wall["pitch_px"])
    prof = wall_profile(g, line, estimator="lingam", n_bootstrap=20, seed=1, max_distance=300)
    assert prof.method == "bin lingam"
    assert prof.sign_change and prof.plateaus[0] < 0 < prof.plateaus[1]
    # DirectLiNGAM per bin (8 descriptors, pruning) is noisier than the regression: 25 %
    assert prof.params["Lc"] == pytest.approx(g.wall["width_px"], rel=0.25)


def test_same_seed_same_profile_and_state_round_trip(planted_grid):
    g = planted_grid
    line = _wall_line(g.wall, 30 * g.wall["pitch_px"])
    a = wall_profile(g.table, line, n_bootstrap=40, seed=5, max_distance=300)
    b = wall_profile(g.table, line, n_bootstrap=40, seed=5, max_distance=300)
    pd.testing.assert_frame_equal(a.table, b.table)
    back = WallProfile.from_state(a.to_state())
    pd.testing.assert_frame_equal(back.table, a.table)
    assert back.params == a.params
    np.testing.assert_array_equal(back.line, a.line)
    assert a.table["distance"].abs().max() <= 300


def test_sliding_windows_profile_with_window_deconvolution():
    from napari_causal_lattice.sliding import sliding_lingam

    g = synthetic_descriptor_grid((48, 40), seed=0, substrate_rows=4, interface_rows=0, wall_width=3.0)
    sr = sliding_lingam(g.table, window=5, stride=1, lattice=g.lattice, seed=0, standardize=False,
                        prior_knowledge=None, variables=("Px", "Py"))
    line = _wall_line(g.wall, 18 * g.wall["pitch_px"])
    prof = wall_profile(sr, line, n_bootstrap=50, seed=0)
    assert prof.method == "window mean"
    assert prof.params["window"] == pytest.approx(5 * g.wall["pitch_px"], rel=1e-6)
    assert prof.sign_change and prof.plateaus[0] < 0 < prof.plateaus[1]
    # windows of 5 cells resolve a 3-cell wall only roughly: within a factor 2 (cells do better, see above)
    assert 0.5 < prof.params["Lc"] / g.wall["width_px"] < 2.0


def test_tanh_profile_window_average_matches_numeric_mean():
    d = np.linspace(-50, 50, 11)
    u = np.linspace(-15, 15, 20001)
    numeric = np.tanh((d[:, None] + u[None, :] - 2.0) / 8.0).mean(axis=1)
    np.testing.assert_allclose(tanh_profile(d, amplitude=1.0, Lc=8.0, shift=2.0, window=30.0), numeric, atol=1e-4)


def test_bad_inputs_raise_actionable_errors(planted_grid):
    g = planted_grid
    with pytest.raises(ValueError, match="two distinct ends"):
        wall_profile(g, [(5.0, 5.0), (5.0, 5.0)])
    with pytest.raises(ValueError, match="no window or cell"):
        wall_profile(g, [(-5000.0, -5000.0), (-5000.0, -4000.0)])
    with pytest.raises(TypeError, match="SlidingResult"):
        wall_profile(np.zeros((3, 3)), [(0.0, 0.0), (1.0, 1.0)])
    with pytest.raises(ValueError, match="lacks column"):
        wall_profile(g.table.drop(columns=["Py"]), [(0.0, 0.0), (100.0, 0.0)])
    with pytest.raises(ValueError, match="n_bootstrap"):
        wall_profile(g, [(0.0, 0.0), (100.0, 0.0)], n_bootstrap=3)


def test_plot_wall_profile_draws_points_and_fit(planted_grid):
    g = planted_grid
    prof = wall_profile(g, _wall_line(g.wall, 30 * g.wall["pitch_px"]), n_bootstrap=30, seed=0)
    ax = Figure().add_subplot()
    plot_wall_profile(ax, prof)
    assert any("Lc" in t.get_text() for t in ax.get_legend().get_texts())


def test_causal_backend_as_method_gives_the_same_profile(planted_grid):
    from napari_causal_lattice.causal.methods import EngineMethod

    g = planted_grid
    line = _wall_line(g.wall, 54 * g.wall["pitch_px"])
    a = wall_profile(g, line, estimator="lingam", n_bootstrap=20, seed=1, max_distance=100, fit=False)
    b = wall_profile(g, line, estimator="lingam", backend=EngineMethod(), n_bootstrap=20, seed=1, max_distance=100,
                     fit=False)
    pd.testing.assert_frame_equal(a.table, b.table)
    with pytest.warns(DeprecationWarning, match="backend"):  # the former name still works
        old = wall_profile(g, line, method=EngineMethod(), n_bootstrap=20, seed=1, max_distance=100, fit=False)
    pd.testing.assert_frame_equal(old.table, b.table)
    assert b.provenance["params"]["backend"] == "engine"
    with pytest.raises(ValueError, match="estimator must be one of 'regression', 'lingam'"):
        wall_profile(g, line, estimator="ica")
