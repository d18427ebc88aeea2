"""The Descriptors widget: real worker path, one aligned map at a time, features on the B layer, arrows, CSV."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from napari_causal_lattice._napari.descriptors_widget import NO_REFERENCE, DescriptorsWidget, flag_summary
from napari_causal_lattice._napari.layers import META_KEY
from napari_causal_lattice._napari.sample import sample_layer_tuples
from napari_causal_lattice.lattice import DESCRIPTORS
from napari_causal_lattice.synthetic import synthetic_perovskite


@pytest.fixture(scope="module")
def sample():
    return synthetic_perovskite(seed=2, shape_cells=(8, 10), substrate_rows=2, interface_rows=2, rotation=20.0)


def add_sample(viewer, sample):
    """Image + visible "A columns" / "B columns" Points layers at the true positions (image scale copied)."""
    image_t, a_t, b_t = sample_layer_tuples(sample)
    image = viewer.add_image(image_t[0], **image_t[1])
    scale, units = image.scale, image.units
    a = viewer.add_points(sample.truth.a_positions, name="A columns", scale=scale, units=units, size=6,
                          face_color="orange",
                          metadata={META_KEY: {"image": image.name}})
    b = viewer.add_points(sample.truth.b_positions, name="B columns", scale=scale, units=units, size=5,
                          face_color="cyan",
                          features={"intensity": sample.truth.b_intensity})
    return image, a, b


def value_at_world(layer, world):
    """The value of a 2D map layer at a world position (its nearest pixel)."""
    index = np.round(np.asarray(layer.world_to_data(world), dtype=float)).astype(int)
    return layer.data[tuple(index)]


def build(widget, qtbot):
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.jobs.running and widget.cells is not None, timeout=30000)
    return widget.cells


def test_build_adds_aligned_layers(make_napari_viewer, qtbot, sample, tmp_path):
    viewer = make_napari_viewer()
    image, a_layer, b_layer = add_sample(viewer, sample)
    # a manual edit: delete the A column at grid (3, 4); the 4 cells around it lose a corner
    truth = sample.truth
    gone = int(np.flatnonzero((truth.a_grid == (3, 4)).all(axis=1))[0])
    a_layer.data = np.delete(a_layer.data, gone, axis=0)
    widget = DescriptorsWidget(viewer)
    assert widget.image_combo.currentText() == image.name
    assert (widget.a_combo.currentText(), widget.b_combo.currentText()) == ("A columns", "B columns")
    assert widget.pixel_size == pytest.approx(sample.pixel_size)
    assert not widget.export_button.isEnabled() and not widget.arrows_check.isEnabled()

    cells = build(widget, qtbot)
    ni, nj = truth.grid_shape
    assert len(cells) == ni * nj - 4 and cells.n_excluded == 4
    assert cells.units["Px"] == "pm"
    assert flag_summary(cells) in widget.summary.text()

    # one map (the picked descriptor, Px), no arrows until asked for; another map is added when picked
    names = [layer.name for layer in viewer.layers]
    assert "Px [pm]" in names and "a [pm]" not in names and "Polarization" not in names
    px_layer = viewer.layers["Px [pm]"]
    lo, hi = px_layer.contrast_limits
    assert lo == pytest.approx(-hi) and hi > 0
    assert px_layer.colorbar.visible
    assert names.index("Px [pm]") < names.index("A columns")  # below the columns
    widget.map_combo.setCurrentText("a")
    a_layer_map = viewer.layers["a [pm]"]
    assert a_layer_map.visible and not px_layer.visible
    assert widget.show_map("Px") is px_layer and px_layer.visible and not a_layer_map.visible
    assert sum(layer.name == "Px [pm]" for layer in viewer.layers) == 1

    # geometry is unchanged by re-measuring intensities: a, b, alpha, |P| equal the truth's; Px, Py up to the
    # direction of lattice vector 1 estimated from the edited columns (< 0.5 pm)
    t = truth.descriptors.set_index(["i", "j"])
    shift = cells.table[["i", "j"]].min().to_numpy() - truth.descriptors[["i", "j"]].min().to_numpy()
    got = cells.table.set_index([cells.table["i"] - shift[0], cells.table["j"] - shift[1]])
    t = t.loc[got.index]
    for name in ("a", "b", "alpha"):
        np.testing.assert_allclose(got[name], t[name], atol=1e-9)
    np.testing.assert_allclose(np.hypot(got["Px"], got["Py"]), np.hypot(t["Px"], t["Py"]), atol=1e-9)
    np.testing.assert_allclose(got[["Px", "Py"]], t[["Px", "Py"]], atol=0.5)

    # a known B column lands on its map pixel in world coordinates
    b_features = b_layer.features
    assert set(["i", "j", *DESCRIPTORS]) <= set(b_features.columns)
    assert "intensity" in b_features.columns
    assert int(b_features["Px"].isna().sum()) == 4
    row = int(np.flatnonzero(np.isfinite(b_features["Px"]))[17])
    b_world = np.asarray(b_layer.data_to_world(b_layer.data[row]))
    for layer in (px_layer, viewer.layers["a [pm]"]):
        # the map is painted on each cell's region: the value under the B column is the cell's
        assert value_at_world(layer, b_world) == pytest.approx(b_features[layer.name.split(" ")[0]][row])
        assert layer.data.shape == image.data.shape  # a region raster sharing the image's pixels
    assert b_layer.metadata[META_KEY]["cells"] is cells
    assert b_layer.metadata[META_KEY]["cell_raster"].labels.shape == image.data.shape

    # polarization arrows on demand: start on the B columns, coloured by |P|, length follows the spin box
    widget.arrows_check.setChecked(True)
    vectors = widget.vectors_layer
    assert vectors is not None and vectors.name == "Polarization"
    p_abs = np.hypot(cells.table["Px"], cells.table["Py"]).to_numpy()
    np.testing.assert_allclose(vectors.features["P_abs"], p_abs)
    assert "|P|" in widget.arrow_legend.text()
    widget.arrow_colour.setCurrentText("angle")
    assert vectors.edge_colormap.name == "twilight"
    np.testing.assert_allclose(vectors.data[:, 0], cells.table[["y", "x"]].to_numpy())
    widget.length_spin.setValue(25.0)
    assert vectors.length == 25.0

    path = widget.export_csv(tmp_path / "cells.csv")
    csv = pd.read_csv(path)
    assert len(csv) == len(cells) and "Px [pm]" in csv.columns


def test_rebuild_after_edit_and_bad_choice(make_napari_viewer, qtbot, sample):
    viewer = make_napari_viewer()
    image, a_layer, b_layer = add_sample(viewer, sample)
    widget = DescriptorsWidget(viewer)
    widget.map_combo.setCurrentText("Py")
    widget.frame_combo.setCurrentText("image")
    first = build(widget, qtbot)
    assert first.frame == "image" and first.n_excluded == 0
    assert "Py [pm]" in viewer.layers
    # move a B column by 1 px along x: its Px (image frame) grows by one pixel size, nothing else moves
    px_before = b_layer.features["Px"].to_numpy().copy()
    moved = b_layer.data.copy()
    moved[5, 1] += 1.0
    b_layer.data = moved
    widget.cells = None
    second = build(widget, qtbot)
    px_after = b_layer.features["Px"].to_numpy()
    assert px_after[5] - px_before[5] == pytest.approx(sample.pixel_size, rel=1e-9)
    np.testing.assert_allclose(np.delete(px_after, 5), np.delete(px_before, 5), atol=1e-9)
    assert second is not first
    # the rebuild replaced its own map; with "keep the layers of earlier runs" the old one stays
    assert sum(layer.name.startswith("Py [pm]") for layer in viewer.layers) == 1
    widget.keep_layers.setChecked(True)
    build(widget, qtbot)
    assert sum(layer.name.startswith("Py [pm]") for layer in viewer.layers) == 2

    # the same layer for A and B is refused without starting a job: a notification, no exception
    widget.b_combo.setCurrentText("A columns")
    n_layers = len(viewer.layers)
    widget.build_button.click()
    assert "different" in widget.jobs.status.text() and not widget.jobs.running
    assert len(viewer.layers) == n_layers


def test_flag_summary_counts_by_reason():
    assert flag_summary(SimpleNamespace(flag_counts=lambda: {})) == "no cell flagged"
    text = flag_summary(SimpleNamespace(flag_counts=lambda: {"outlier": 1, "fit": 3}))
    assert text == "flagged: 3 a column fit failed (fit), 1 outlier (kept with NaN descriptors)"


def test_scatter_and_image_selection_are_linked(make_napari_viewer, qtbot, sample):
    """Lasso in the scatter selects the cells' B columns on the image; a canvas selection rings them back."""
    viewer = make_napari_viewer()
    image, a_layer, b_layer = add_sample(viewer, sample)
    widget = DescriptorsWidget(viewer)
    cells = build(widget, qtbot)
    widget.scatter.setChecked(True)
    x = cells.table["Px"].to_numpy()
    y = cells.table["Py"].to_numpy()
    # a lasso around the cells with Px above its median
    cut = float(np.nanmedian(x))
    widget.scatter._on_lasso([(cut, -1e6), (1e6, -1e6), (1e6, 1e6), (cut, 1e6)])
    chosen = np.flatnonzero(x > cut)
    assert sorted(widget.scatter.selected) == sorted(chosen)
    rows = widget._built["result"]["b_rows"]
    assert b_layer.selected_data == set(int(r) for r in rows[chosen])
    # the reverse: two B columns picked on the canvas are ringed in the scatter
    b_layer.selected_data = {int(rows[0]), int(rows[3])}
    assert sorted(widget.scatter.selected) == [0, 3]
    rings = widget.scatter.canvas.figure.axes[0].collections[1]
    assert len(rings.get_offsets()) == 2 and np.allclose(rings.get_offsets()[0], (x[0], y[0]))
    # the layers cleared: nothing stale stays enabled or written
    widget.arrows_check.setChecked(True)
    viewer.layers.clear()
    assert widget.cells is None and widget.summary.text() == "" and widget.arrow_legend.text() == ""
    assert not widget.export_button.isEnabled() and not widget.arrows_check.isEnabled()
    assert not widget.arrows_check.isChecked() and not widget.scatter.canvas.figure.axes


def test_mean_p_against_a_reference_drawn_on_a_shapes_layer(make_napari_viewer, qtbot):
    """Absolute P needs a reference: a rectangle on a Shapes layer (world coordinates, in pm) picks the cells whose
    mean P is subtracted; the dock states both numbers with their uncertainty."""
    from napari_causal_lattice import find_columns
    from napari_causal_lattice.synthetic import NON_POLAR, synthetic_perovskite

    from test_responsive import _ok

    sample = synthetic_perovskite(seed=2, shape_cells=(10, 10), **NON_POLAR)
    columns = find_columns(sample.image, pixel_size=sample.pixel_size)
    viewer = make_napari_viewer()
    ps = sample.pixel_size
    image = viewer.add_image(sample.image, name="scan", scale=(ps, ps), units="pm")
    meta = {"napari_causal_lattice": {"columns": columns, "image": "scan"}}
    viewer.add_points(columns.positions[columns.a], name="A columns", scale=(ps, ps), metadata=meta)
    viewer.add_points(columns.positions[columns.b], name="B columns", scale=(ps, ps), metadata=meta)
    widget = DescriptorsWidget(viewer)
    qtbot.addWidget(widget)
    assert not widget.mean_p_button.isEnabled()
    widget.build_button.click()
    qtbot.waitUntil(lambda: _ok(widget) and widget.cells is not None, timeout=120000)
    widget.mean_p_button.click()
    qtbot.waitUntil(lambda: _ok(widget) and bool(widget.mean_p_text.text()), timeout=120000)
    assert "no reference" in widget.mean_p_text.text()
    h, w = sample.image.shape
    viewer.add_shapes([np.array([[0, 0], [0, w / 2], [h, w / 2], [h, 0]]) * ps], name="substrate")
    widget.reference_combo.setCurrentText("substrate")
    mask = widget.reference_mask()
    assert mask.shape == image.data.shape and 0.4 < mask.mean() < 0.6
    widget.mean_p_button.click()
    qtbot.waitUntil(lambda: _ok(widget) and "referenced to substrate" in widget.mean_p_text.text(), timeout=120000)
    # the form's alternative: grid ranges, as the CLI's --reference; bad ranges or two references are a message
    widget.mean_p_params.reference.value = "0:99,x"
    widget.mean_p_button.click()
    assert widget.jobs.status.text().startswith("two references")
    widget.reference_combo.setCurrentText(NO_REFERENCE)
    widget.mean_p_button.click()
    assert "is not a range of whole numbers" in widget.jobs.status.text() and not widget.jobs.running
    widget.mean_p_params.reference.value = "0:5"
    widget.mean_p_button.click()
    qtbot.waitUntil(lambda: _ok(widget) and "referenced to grid cells 0:5" in widget.mean_p_text.text(),
                    timeout=120000)
