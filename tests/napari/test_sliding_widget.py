"""The Sliding LiNGAM widget: real worker path, aligned overlays, window inspector, PCA layers, cancel."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from unittest.mock import patch

import numpy as np
import pytest
from napari.layers import Labels
from napari.utils.interactions import mouse_press_callbacks

from napari_causal_lattice._napari.layers import META_KEY
from napari_causal_lattice._napari.sliding_widget import SlidingWidget
from napari_causal_lattice.synthetic import synthetic_descriptor_grid

WINDOW = 12


@pytest.fixture(scope="module")
def grid():
    # lattice rotated by 3 deg (synthetic default); wall near j = 23.5
    return synthetic_descriptor_grid((36, 48), seed=5, substrate_rows=0, interface_rows=12)


def add_source(viewer, grid, *, with_cells=True):
    """A STEM-like image in pm (scale + translate) and the B columns layer carrying the cells."""
    image = viewer.add_image(
        np.zeros((900, 1000)), name="STEM", scale=(19.8, 19.8), translate=(150.0, -80.0), units="pm"
    )
    table = grid.table
    meta = {META_KEY: {"image": "STEM", "cells": grid}} if with_cells else {}
    points = viewer.add_points(
        table[["y", "x"]].to_numpy(),
        name="B columns",
        scale=image.scale,
        translate=image.translate,
        units=image.units,
        features=table.reset_index(drop=True),
        metadata=meta,
        size=4,
    )
    return image, points


def run(widget, qtbot, timeout=60000):
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=timeout)
    return widget.result


def window_centre_world(grid, image, result, ky, kx):
    """World position of a window's centre from its cells' nominal B positions (mean over the window)."""
    t = grid.table
    stride = result.stride
    inside = t.i.between(ky * stride, ky * stride + WINDOW - 1) & t.j.between(kx * stride, kx * stride + WINDOW - 1)
    return np.asarray(image.data_to_world(t.loc[inside, ["y", "x"]].mean().to_numpy()))


def value_at_world(layer, world):
    """The value of a 2D map layer at a world position (its nearest pixel)."""
    index = np.round(np.asarray(layer.world_to_data(world), dtype=float)).astype(int)
    return layer.data[tuple(index)]


def centre_cell_world(grid, image, result, ky, kx):
    """World position of the B column of the cell nearest to window (ky, kx)'s centre on the grid."""
    t = grid.table
    row = np.argmin(np.hypot(*(t[["i", "j"]].to_numpy() - result.centers_grid[ky, kx]).T))
    return np.asarray(image.data_to_world(t[["y", "x"]].to_numpy()[row]))


def assert_window_values_on_cells(layer, grid, image, result, values, windows=((0, 0), (2, 5), (4, 6), (1, 3))):
    """A per-window map painted on the cells: the cell at each window's centre shows that window's value."""
    for ky, kx in windows:
        got = value_at_world(layer, centre_cell_world(grid, image, result, ky, kx))
        np.testing.assert_allclose(got, values[ky, kx], rtol=1e-5, equal_nan=True)


def test_run_overlay_aligned_and_inspector(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    image, _ = add_source(viewer, grid)
    widget = SlidingWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.source_combo.currentText() == "B columns" and widget.image_combo.currentText() == "STEM"
    widget.window_spin.setValue(WINDOW)
    widget.boot_spin.setValue(4)
    result = run(widget, qtbot)
    assert result is not None and result.shape == (5, 7) and result.stride == WINDOW // 2
    assert "35 of 35 windows fitted" in widget.summary.text()

    # Run adds the default overlay Px <- Py with symmetric limits around 0
    layer = viewer.layers[f"Px <- Py (window {WINDOW})"]
    assert layer in widget.overlay_layers
    lo, hi = layer.contrast_limits
    assert lo == pytest.approx(-hi)
    assert layer.metadata[META_KEY]["sliding"] is result
    # placement: the overlay is painted on the cells' regions of the image; the cell at a window's centre shows
    # that window's coefficient
    assert layer.data.shape == image.data.shape
    values = result.element("Px", "Py")
    assert_window_values_on_cells(layer, grid, image, result, values)
    # the planted sign flip of Px <- Py across the wall (left: domain -, right: domain +) shows on the image
    for ky in range(3):
        left = value_at_world(layer, centre_cell_world(grid, image, result, ky, 0))
        right = value_at_world(layer, centre_cell_world(grid, image, result, ky, 6))
        assert left * right < 0

    prob = widget.add_overlay("Py", "I5", probability=True)
    assert prob.name == f"P(Py <- I5) (window {WINDOW})" and prob.contrast_limits == [0.0, 1.0]

    # clicking on the canvas at a window centre shows that window
    target = window_centre_world(grid, image, result, 3, 2)
    event = SimpleNamespace(type="mouse_press", position=tuple(target), modifiers=(), button=1)
    mouse_press_callbacks(viewer, event)
    assert widget.selected_window == (3, 2)
    assert "Window (3, 2)" in widget.window_label.text() and "causal order" in widget.window_label.text()
    assert len(widget.window_figure.axes) == 3  # heatmap, its colour bar, graph
    assert widget.window_at((-1e6, -1e6)) is None


def test_pca_layers_aligned(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    image, _ = add_source(viewer, grid)
    widget = SlidingWidget(viewer)
    qtbot.addWidget(widget)
    widget.window_spin.setValue(WINDOW)
    widget.boot_spin.setValue(0)
    result = run(widget, qtbot)
    assert widget.run_pca(3) is not None  # a worker: PCA never runs in the GUI thread
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=30000)
    pca = widget.pca
    # one loading layer; the others on demand from the picker, one visible at a time
    assert [layer.name for layer in widget.pca_layers] == ["PCA loading 1"]
    assert len(widget.pca_figure.axes) == 6  # 3 heatmaps with colour bars
    widget.loading_combo.setCurrentIndex(2)
    assert [layer.name for layer in widget.pca_layers] == ["PCA loading 1", "PCA loading 3"]
    assert viewer.layers["PCA loading 3"].visible and not viewer.layers["PCA loading 1"].visible
    first = viewer.layers["PCA loading 1"]
    assert_window_values_on_cells(first, grid, image, result, pca.loadings[0])
    # probabilities need bootstraps: a clear message, no layer
    n_layers = len(viewer.layers)
    widget.run_pca(2, use="probabilities")
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=30000)
    assert "n_bootstrap" in widget.jobs.status.text() and len(viewer.layers) == n_layers


def test_features_only_source_fits_lattice(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    image, _ = add_source(viewer, grid, with_cells=False)
    widget = SlidingWidget(viewer)
    qtbot.addWidget(widget)
    widget.image_combo.setCurrentText("STEM")
    widget.window_spin.setValue(WINDOW)
    widget.stride_spin.setValue(WINDOW)
    widget.boot_spin.setValue(0)
    result = run(widget, qtbot)
    assert result.shape == (3, 4)
    # no Cells object: the overlay is the window grid placed with the window lattice
    assert viewer.layers[f"Px <- Py (window {WINDOW})"].data.shape == result.shape
    np.testing.assert_allclose(result.lattice.affine, grid.lattice.subgrid(((WINDOW - 1) / 2,) * 2, WINDOW).affine,
                               atol=1e-6)


def test_cancel_and_bad_input_leave_layers_untouched(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    add_source(viewer, grid)
    widget = SlidingWidget(viewer)
    qtbot.addWidget(widget)
    names = [layer.name for layer in viewer.layers]

    widget.window_spin.setValue(200)
    run(widget, qtbot)
    assert "larger than the cell grid" in widget.jobs.status.text()
    assert widget.result is None and [layer.name for layer in viewer.layers] == names

    widget.window_spin.setValue(6)
    widget.stride_spin.setValue(1)
    widget.boot_spin.setValue(2000)
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.jobs.bar.maximum() > 1, timeout=30000)
    widget.jobs.cancel()
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=60000)
    assert worker is not None and "cancelled" in widget.jobs.status.text()
    assert widget.result is None and [layer.name for layer in viewer.layers] == names
    with pytest.raises(ValueError, match="run the sliding LiNGAM first"):
        widget.add_overlay()


def deterministic_grid(grid):
    """The grid with Vol replaced by the exact a b sin(alpha) (a deterministic descriptor, as on real cells)."""
    table = grid.table.copy()
    table["Vol"] = table["a"] * table["b"] * np.sin(np.deg2rad(table["alpha"]))
    return dataclasses.replace(grid, table=table)


def test_edge_decision_form_overlays_and_inspector(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    image, _ = add_source(viewer, grid)
    widget = SlidingWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.params.alpha.value == pytest.approx(0.01) and widget.params.fdr.value is None
    widget.window_spin.setValue(WINDOW)
    widget.boot_spin.setValue(4)
    widget.params.alpha.value = 0.02
    widget.params.fdr.value = "bh"
    result = run(widget, qtbot)
    params = result.provenance["params"]
    assert params["alpha"] == pytest.approx(0.02) and params["fdr"] == "bh"
    assert "order t-test, alpha 0.02, BH" in widget.summary.text() and "window edges pass" in widget.summary.text()

    # significant only: the coefficient where Px <- Py passes, transparent (NaN) elsewhere
    widget.kind_combo.setCurrentText("significant only")
    widget.overlay_button.click()
    layer = viewer.layers[f"Px <- Py, significant (window {WINDOW})"]
    passes = result.significance("Px", "Py")
    assert 0 < passes.sum() < passes.size  # the planted wall column has no edge
    windows = [tuple(k) for k in np.argwhere(np.ones(result.shape, dtype=bool))]
    assert_window_values_on_cells(layer, grid, image, result, np.where(passes, result.element("Px", "Py"), np.nan),
                                  windows)
    assert widget.legend.isVisibleTo(widget) and "fails the test" in widget.legend.text()

    # link type: a labels layer of the codes, aligned like the other overlays, with a legend of the pair
    widget.kind_combo.setCurrentText("link type")
    widget.overlay_button.click()
    links = viewer.layers[f"link Px, Py (window {WINDOW})"]
    assert isinstance(links, Labels) and links in widget.overlay_layers
    assert links.data.dtype == np.int32 and set(np.unique(links.data)) <= {0, 1, 2, 3}
    assert_window_values_on_cells(links, grid, image, result, result.link_type("Px", "Py"), windows)
    assert list(links.features["link"]) == ["none", "Px <- Py", "Py <- Px", "Px <-> Py"]
    assert links.visible and not layer.visible
    legend = widget.legend.text()
    assert "Px &lt;- Py" in legend and "Px &lt;-&gt; Py" in legend and "alpha 0.02, BH" in legend
    links_count = len(viewer.layers)
    widget.overlay_button.click()  # the same overlay again is shown, not added
    assert len(viewer.layers) == links_count

    # the inspector states the criterion and draws only the significant edges
    widget.show_window(1, 1)
    text = widget.window_label.text()
    assert "order t-test, alpha 0.02, BH" in text
    passing = [f"{result.names[e]} <- {result.names[c]}" for e, c in np.argwhere(result.significant[1, 1])]
    assert passing and all(edge in text for edge in passing)

    # PCA of the significant elements only (off by default, as in `analyze`), with the outlier windows reported
    assert widget.significant_only_check.isEnabled() and not widget.significant_only_check.isChecked()
    widget.pca_params.significant_only.value = True
    widget.pca_button.click()
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=30000)
    assert widget.pca.significant_only
    assert widget.pca_summary.text().startswith(f"PCA of {int(result.fitted.sum() - widget.pca.outliers.sum())} "
                                                "windows (significant elements only)")
    assert "outlier window" in widget.pca_summary.text()


def test_deterministic_descriptor_warned_and_left_out(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    add_source(viewer, grid)
    viewer.layers["B columns"].metadata = {META_KEY: {"image": "STEM", "cells": deterministic_grid(grid)}}
    widget = SlidingWidget(viewer)
    qtbot.addWidget(widget)
    widget.window_spin.setValue(WINDOW)
    widget.boot_spin.setValue(0)
    shown = []
    with patch("napari_causal_lattice._napari._jobs.show_warning", shown.append):
        result = run(widget, qtbot)
    assert "Vol" in result.names
    assert any("Near-deterministic variables: Vol" in message for message in shown)
    assert "leave out deterministic descriptors" in widget.summary.text()
    widget.params.drop_deterministic.value = True
    result = run(widget, qtbot)
    assert "Vol" not in result.names and "Left out as deterministic: Vol" in widget.summary.text()
