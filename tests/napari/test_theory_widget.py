"""The Theory (LGD) widget: live theory plots, and a measured wall profile through the real worker path."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causal_lattice import theory
from napari_causal_lattice._napari.layers import META_KEY
from napari_causal_lattice._napari.theory_widget import TheoryWidget, line_in_image_px
from napari_causal_lattice.synthetic import synthetic_descriptor_grid

SCALE = (19.8, 19.8)  # pm per px, as a calibrated image would have


@pytest.fixture(scope="module")
def grid():
    return synthetic_descriptor_grid((80, 40), seed=0, substrate_rows=4, interface_rows=0)


def wall_line(wall, half_length):
    n = np.asarray(wall["normal"])
    t = np.array([n[1], -n[0]])
    return np.stack([wall["point"] - half_length * t, wall["point"] + half_length * t])


def setup_layers(viewer, grid):
    """B columns Points layer carrying the cells (image px, pm scale) and a Shapes line on the wall (world)."""
    b = viewer.add_points(grid.table[["y", "x"]].to_numpy(), name="B columns", scale=SCALE, size=4,
                          metadata={META_KEY: {"cells": grid, "image": "image"}})
    line_px = wall_line(grid.wall, 36 * grid.wall["pitch_px"])
    shapes = viewer.add_shapes([line_px * np.asarray(SCALE)], shape_type="line", name="wall", edge_color="red")
    return b, shapes, line_px


def test_theory_plots_follow_the_parameters(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = TheoryWidget(viewer)
    ax15, ax16 = widget.figure.axes[:2]
    x, ratio = ax15.lines[0].get_data()
    p = widget.parameters()
    shown = np.isfinite(ratio)  # the line is broken at the poles of Eq. 15
    assert shown.mean() > 0.9
    np.testing.assert_allclose(ratio[shown], theory.dp2_dp1(x, eps=p["eps"], Lc=p["Lc"], r=p["r"])[shown])
    widget.eps_slider.setValue(50)
    assert widget.eps.value() == pytest.approx(0.5)
    ax16 = widget.figure.axes[1]
    x, du11 = ax16.lines[0].get_data()
    expected = theory.strain_couplings(x, eps=0.5, Lc=p["Lc"], Q11=p["Q11"], Q12=p["Q12"], Q44=p["Q44"], P0=p["P0"])
    np.testing.assert_allclose(du11, expected["du11/dP1"])


def test_measure_profile_recovers_the_planted_wall(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    b, shapes, line_px = setup_layers(viewer, grid)
    widget = TheoryWidget(viewer)
    assert widget.wall_layer.currentText() == "wall" and widget.source_layer.currentText() == "B columns"
    assert (widget.effect.currentText(), widget.cause.currentText()) == ("Px", "Py")
    np.testing.assert_allclose(line_in_image_px(shapes, b, grid), line_px, atol=1e-9)
    widget.n_bootstrap.setValue(50)
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.jobs.running and widget.profile is not None, timeout=30000)
    prof = widget.profile
    assert prof.params["Lc"] == pytest.approx(grid.wall["width_px"], rel=0.2)
    assert prof.sign_change and prof.plateaus[0] < 0 < prof.plateaus[1]
    assert "Lc =" in widget.fit_label.text()
    widget.use_fitted_lc()
    assert widget.Lc.value() == pytest.approx(prof.params["Lc"], abs=0.01)
    measured_ax = widget.figure.axes[2]
    assert len(measured_ax.lines) >= 2  # fit + theory shape (+ error bars)


def test_measure_without_wall_reports_an_actionable_error(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = TheoryWidget(viewer)
    with pytest.raises(ValueError, match="Shapes"):
        widget.run()


def test_sliding_overlay_source_maps_the_line_back_to_image_px(make_napari_viewer, qtbot, grid):
    from napari_causal_lattice._napari.layers import map_layer_tuple
    from napari_causal_lattice.sliding import sliding_lingam

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((1700, 900)), name="image", scale=SCALE)
    sr = sliding_lingam(grid.table, window=4, stride=2, lattice=grid.lattice, seed=0, standardize=False,
                        prior_knowledge=None, variables=("Px", "Py"))
    data, kwargs, _ = map_layer_tuple(sr.element("Px", "Py"), sr.lattice.affine, name="Px <- Py (window 4)",
                                      image_layer=image, signed=True, metadata={META_KEY: {"sliding": sr}})
    overlay = viewer.add_image(data, **kwargs)
    line_px = wall_line(grid.wall, 30 * grid.wall["pitch_px"])
    shapes = viewer.add_shapes([line_px * np.asarray(SCALE)], shape_type="line", name="wall")
    np.testing.assert_allclose(line_in_image_px(shapes, overlay, sr), line_px, atol=1e-6)
    widget = TheoryWidget(viewer)
    widget.source_layer.setCurrentText("Px <- Py (window 4)")
    assert [widget.effect.itemText(k) for k in range(widget.effect.count())] == ["Px", "Py"]
    widget.n_bootstrap.setValue(30)
    widget.run()
    qtbot.waitUntil(lambda: not widget.jobs.running and widget.profile is not None, timeout=30000)
    assert widget.profile.method == "window mean"
    assert widget.profile.sign_change


def test_failed_fit_is_reported_and_never_left_stale(make_napari_viewer, qtbot, grid):
    """A fit whose width is not determined says so, offers no "Use fitted Lc", leaves the range alone; the
    next run clears the old text first; a descriptor map is no source."""
    import dataclasses

    viewer = make_napari_viewer()
    b, shapes, line_px = setup_layers(viewer, grid)
    # a descriptor map carries the cells too, but is not a coupling source
    viewer.add_image(np.zeros((8, 8)), name="Px [pm]", metadata={META_KEY: {"cells": grid, "map": True}})
    widget = TheoryWidget(viewer)
    assert [widget.source_layer.itemText(k) for k in range(widget.source_layer.count())] == ["B columns"]
    widget.n_bootstrap.setValue(30)
    widget.run()
    qtbot.waitUntil(lambda: not widget.jobs.running and widget.profile is not None, timeout=30000)
    good = widget.profile
    assert not good.fit_problem() and widget.use_fit_button.isEnabled()
    extent = widget.extent.value()
    # the same profile with an undetermined width, as on the real PTO/SRO image (Lc = 1.37 +- 1.1e7 px)
    bad = dataclasses.replace(good, params={**good.params, "Lc": 1.37, "Lc_err": 1.1e7})
    assert "not determined" in bad.fit_problem()
    widget._on_profile(bad)
    assert "fit failed" in widget.fit_label.text() and "Lc = 1.37" in widget.fit_label.text()
    assert not widget.use_fit_button.isEnabled() and widget.extent.value() == extent
    wide = dataclasses.replace(good, params={**good.params, "Lc": 1e4, "Lc_err": 10.0})
    assert "outside what the profile resolves" in wide.fit_problem()
    # a new run clears the old fit before it starts; a failing one leaves no old text behind
    shapes.data = [np.array([[0.0, 0.0], [0.0, 0.0]])]
    widget.measure_button.click()
    assert widget.fit_label.text() == "" and widget.profile is None and "same point" in widget.jobs.status.text()
    # the source layer gone: no stale profile
    widget.profile = good
    widget._profile_source = "B columns"
    viewer.layers.remove(b)
    assert widget.profile is None and widget.fit_label.text() == "" and not widget.measure_button.isEnabled()
