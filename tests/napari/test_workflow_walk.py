"""The Workflow dock walked on the real PTO/SRO image, as a microscopist clicks through it (issue 23).

Asserts what the hand walk found broken: no tab scrolls sideways in a 420 px dock at 1280 x 1024, one visible
arrow per unflagged cell, a colour bar with a unit on every map, and the summary, graph and table of the causal
step agreeing.  A 20 ms QTimer heartbeat (``test_responsive.Heartbeat``) checks that the steps added here keep
the event loop responsive.
"""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

from napari_causal_lattice._napari._dock import DOCK_WIDTH
from napari_causal_lattice._napari.layers import is_map_layer, nice_limits, show_only

from test_causal_widget import assert_one_decision
from test_responsive import GAP_LAYERS, GAP_MARGIN_S, Heartbeat, _ok

PLUGIN = "napari-causal-lattice"
PIXEL_PM = 14.997  # pm/px, from the file's metadata (README of the data folder)


def sideways_scroll(workflow) -> dict:
    """Tab label -> horizontal scroll range (px) of its body at the dock's width (0: it fits)."""
    out = {}
    for index, (label, step) in enumerate(workflow.steps.items()):
        workflow.setCurrentIndex(index)
        QApplication.processEvents()
        out[label] = step.scroll_area.horizontalScrollBar().maximum()
    return out


def assert_map_has_unit_bar(viewer, layer) -> None:
    """Shown, a map has its colour bar with limits that napari labels with ticks, and its unit beside it."""
    show_only(viewer, layer)
    assert layer.colorbar.visible, layer.name
    low, high = layer.contrast_limits
    assert nice_limits(low, high) == (low, high), (layer.name, low, high)  # limits napari labels with ticks
    unit = layer.metadata.get("units")
    assert unit and unit in viewer.text_overlay.text and viewer.text_overlay.visible, layer.name


@pytest.mark.slow
def test_workflow_walk_on_pto_sro(make_napari_viewer, qtbot, shared_data):
    image = np.load(shared_data / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned_image.npy")
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 1024)
    viewer.add_image(image, name="PTO/SRO", scale=(PIXEL_PM, PIXEL_PM), units="pm")
    dock, workflow = viewer.window.add_plugin_dock_widget(PLUGIN, "Workflow")
    dock.setFixedWidth(DOCK_WIDTH)
    steps = workflow.steps
    columns, descriptors, causal, sliding = (steps[k] for k in ("Columns", "Descriptors", "Causal", "Sliding"))
    theory, compare = steps["Theory"], steps["Compare"]
    # nothing to work on yet: the buttons say so
    assert not theory.measure_button.isEnabled()
    assert sideways_scroll(workflow) == dict.fromkeys(steps, 0)

    beat = Heartbeat()
    gaps = {}

    def step(name, click, done):
        reference = beat.measure(qtbot, lambda: viewer.add_image(np.zeros((48, 48)), name="reference"),
                                 lambda: True)
        viewer.layers.remove("reference")
        gaps[name] = (beat.measure(qtbot, click, done), reference)

    step("Find", columns.find_button.click, lambda: _ok(columns) and columns.b_layer is not None)
    step("Build cells", descriptors.build_button.click, lambda: _ok(descriptors) and descriptors.cells is not None)
    cells = descriptors.cells
    step("arrows", lambda: descriptors.arrows_check.setChecked(True), lambda: descriptors.vectors_layer is not None)
    arrows = descriptors.vectors_layer
    unflagged = int((cells.table["flag"] == "").sum())
    assert cells.flag_counts(), "PTO/SRO has flagged cells: the case that hid every arrow"
    assert len(arrows.data) == unflagged and arrows.visible
    assert np.isfinite(arrows.edge_color).all()  # a NaN colour stops vispy drawing the whole layer
    descriptors.markers.setChecked(False)
    assert not arrows.visible and not columns.b_layer.visible
    descriptors.markers.setChecked(True)

    causal.n_bootstrap.setValue(20)
    step("Causal", causal.run_button.click, lambda: _ok(causal) and causal.result is not None)
    assert_one_decision(causal)
    assert (causal.edges_table()["coefficient"] != 0).all()

    # the Sliding dock starts with the command line's defaults: window auto, stride auto
    assert sliding.window_spin.text() == "auto" and sliding.stride_spin.text() == "auto"
    sliding.boot_spin.setValue(10)
    step("Sliding", sliding.run_button.click, lambda: _ok(sliding) and sliding.selected_window is not None)
    assert sliding.result.fitted.sum() >= 2, sliding.summary.text()
    # the Theory dock offers the overlay (a coupling per window) as its source, not a descriptor map
    viewer.add_shapes([np.array([[100.0, 0.0], [100.0, 1300.0]]) * PIXEL_PM], shape_type="line", name="wall")
    assert theory.source_layer.currentText() == sliding.overlay_layers[-1].name
    assert theory.measure_button.isEnabled() and compare.run_button.isEnabled()

    maps = [layer for layer in viewer.layers if is_map_layer(layer) and hasattr(layer, "colorbar")]
    assert len(maps) >= 2
    for layer in maps:
        assert_map_has_unit_bar(viewer, layer)
    assert sideways_scroll(workflow) == dict.fromkeys(steps, 0)

    # re-running a step replaces its own layers
    names = [layer.name for layer in viewer.layers]
    step("Sliding again", sliding.run_button.click, lambda: _ok(sliding) and sliding.selected_window is not None)
    assert sorted(layer.name for layer in viewer.layers) == sorted(names)

    # the layers cleared: no dock keeps a stale result or an enabled result button
    viewer.layers.clear()
    assert descriptors.cells is None and not descriptors.export_button.isEnabled()
    assert causal.result is None and not causal.export_csv_button.isEnabled()
    assert sliding.result is None and not sliding.overlay_button.isEnabled() and sliding.summary.text() == ""
    assert not theory.measure_button.isEnabled() and not compare.run_button.isEnabled()

    print("\nworst event-loop gap per step, s (reference layer creation): "
          + ", ".join(f"{k} {g:.2f} ({r:.2f})" for k, (g, r) in gaps.items()))
    for name, (gap, reference) in gaps.items():
        assert gap < GAP_LAYERS * reference + GAP_MARGIN_S, (name, gap, reference)
