"""GUI tests of the "Atom columns" widget on the real worker path."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_causal_lattice._napari.columns_widget import ColumnsWidget
from napari_causal_lattice._napari.layers import META_KEY
from napari_causal_lattice.columns import Columns
from napari_causal_lattice.synthetic import synthetic_perovskite


@pytest.fixture(scope="module")
def sample():
    return synthetic_perovskite(seed=0, shape_cells=(8, 8))


def _viewer_with_image(make_napari_viewer, sample, **kwargs):
    viewer = make_napari_viewer(**kwargs)
    ps = sample.pixel_size
    viewer.add_image(sample.image, name="haadf", scale=(ps, ps), units=("pm", "pm"), translate=(100.0, -50.0))
    return viewer


def _wait(qtbot, widget, worker):
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=60000)


def test_find_adds_aligned_layers_and_replaces_only_its_own(make_napari_viewer, qtbot, sample):
    viewer = _viewer_with_image(make_napari_viewer, sample)
    viewer.add_points(np.zeros((1, 2)), name="A columns")  # the user's own layer
    widget = ColumnsWidget(viewer)
    assert widget.pixel_size == pytest.approx(sample.pixel_size)
    _wait(qtbot, widget, widget.run())
    a, b = widget.a_layer, widget.b_layer
    assert a.name == "A columns [2]" and b.name == "B columns"
    assert len(viewer.layers["A columns"].data) == 1  # untouched
    assert len(a.data) == len(sample.truth.a_positions) and len(b.data) == len(sample.truth.b_positions)
    image = viewer.layers["haadf"]
    np.testing.assert_allclose(a.scale, image.scale)
    np.testing.assert_allclose(a.translate, image.translate)
    # a column lands on its true position in world coordinates
    d, _ = cKDTree(a.data).query(sample.truth.a_positions)
    assert d.max() < 0.5
    world = a.data_to_world(a.data[0])
    np.testing.assert_allclose(world, image.data_to_world(a.data[0]))
    assert list(a.features.columns) == ["intensity", "width", "quality"]
    meta = a.metadata[META_KEY]
    assert isinstance(meta["columns"], Columns) and meta["image"] == "haadf"
    assert a.face_color[0][:3] .tolist() != b.face_color[0][:3].tolist()
    # Find again: its own layers get the new result in place, the user's layer stays
    n_layers = len(viewer.layers)
    _wait(qtbot, widget, widget.run())
    assert widget.a_layer is a and widget.b_layer is b and len(viewer.layers) == n_layers
    assert widget.a_layer.name == "A columns [2]" and widget.b_layer.name == "B columns"
    assert len(viewer.layers["A columns"].data) == 1
    # ... unless the earlier layers are kept
    widget.keep_layers.setChecked(True)
    _wait(qtbot, widget, widget.run())
    assert widget.a_layer.name == "A columns [3]" and widget.b_layer.name == "B columns [2]"


def test_refine_only_edited_points_and_undo(make_napari_viewer, qtbot, sample):
    viewer = _viewer_with_image(make_napari_viewer, sample)
    widget = ColumnsWidget(viewer)
    _wait(qtbot, widget, widget.run())
    layer = widget.a_layer
    before = layer.data.copy()
    truth = sample.truth.a_positions
    _, k = cKDTree(truth).query(before)
    edited = before.copy()
    edited[5] += (1.4, -1.2)  # moved by hand
    edited = np.delete(edited, 9, axis=0)  # deleted
    layer.data = edited
    layer.add(truth[k[9]] + (1.0, 1.0))  # re-added near the deleted column
    _wait(qtbot, widget, widget.refine())
    after = layer.data
    assert len(after) == len(before)
    unchanged = np.ones(len(edited), dtype=bool)
    unchanged[5] = False
    np.testing.assert_array_equal(after[:-1][unchanged], edited[unchanged])  # untouched points stay put
    assert np.hypot(*(after[5] - truth[k[5]])) < 0.3
    assert np.hypot(*(after[-1] - truth[k[9]])) < 0.3
    assert len(layer.features) == len(after) and np.isfinite(layer.features["intensity"]).all()
    assert len(layer.metadata[META_KEY]["columns"].a) == len(after)
    widget.undo_refine()
    np.testing.assert_array_equal(layer.data[5], edited[5])
    np.testing.assert_array_equal(layer.data[-1], truth[k[9]] + (1.0, 1.0))


def test_stack_uses_current_plane(make_napari_viewer, qtbot, sample):
    viewer = make_napari_viewer()
    stack = np.stack([np.random.default_rng(0).normal(10, 1, sample.image.shape), sample.image])
    viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 1)
    widget = ColumnsWidget(viewer)
    assert widget.pixel_size is None
    _wait(qtbot, widget, widget.run())
    assert len(widget.a_layer.data) == len(sample.truth.a_positions)
    assert widget.a_layer.ndim == 2


def test_no_lattice_reports_error_and_adds_nothing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).normal(100, 10, (200, 200)), name="noise")
    widget = ColumnsWidget(viewer)
    n_layers = len(viewer.layers)
    _wait(qtbot, widget, widget.run())
    assert "no periodic lattice found" in widget.jobs.status.text()
    assert len(viewer.layers) == n_layers
    with pytest.raises(ValueError, match="run Find first"):
        widget.refine()


def test_projection_choice_is_passed_to_find_columns(make_napari_viewer, qtbot, sample):
    viewer = _viewer_with_image(make_napari_viewer, sample)
    widget = ColumnsWidget(viewer)
    qtbot.addWidget(widget)
    assert [widget.projection_combo.itemText(k) for k in range(widget.projection_combo.count())] == [
        "auto", "[001]", "[110]"]
    widget.projection_combo.setCurrentText("[001]")
    _wait(qtbot, widget, widget.run())
    assert widget.columns.provenance["params"]["projection"] == "[001]"
    assert "projection [001]" in widget.summary.text()
    # a projection the image does not show: a clear message, no new layers
    names = [layer.name for layer in viewer.layers]
    widget.projection_combo.setCurrentText("[110]")
    _wait(qtbot, widget, widget.run())
    assert [layer.name for layer in viewer.layers] == names
    assert "failed" in widget.jobs.status.text()
