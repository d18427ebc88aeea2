"""The "Causal discovery" dock widget on the real worker path."""

from __future__ import annotations

import json
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest

from napari_causal_lattice._napari.causal_widget import CausalWidget
from napari_causal_lattice._napari.layers import META_KEY
from napari_causal_lattice.lattice import DESCRIPTORS
from napari_causal_lattice.synthetic import synthetic_descriptor_grid


@pytest.fixture
def grid():
    return synthetic_descriptor_grid((20, 20), seed=0)


def add_points(viewer, grid, name="B columns"):
    table = grid.table
    return viewer.add_points(
        table[["y", "x"]].to_numpy(), features=table.reset_index(drop=True), name=name,
        metadata={META_KEY: {"units": dict(grid.units)}},
    )


def wait(qtbot, widget, timeout=60000):
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=timeout)


def test_fit_from_points_features_shows_graph_and_exports(make_napari_viewer, qtbot, tmp_path, grid):
    viewer = make_napari_viewer()
    layer = add_points(viewer, grid)
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.source.currentData() == "layer:B columns"
    assert widget.variables.checked() == list(DESCRIPTORS)
    assert widget.exogenous.checked() == ["I14", "I5"]
    widget.n_bootstrap.setValue(20)
    widget.seed.setValue(3)
    worker = widget.run()
    assert worker is not None
    wait(qtbot, widget)
    res = widget.result
    assert res is not None and res.n_samples == 400 and res.n_bootstrap == 20
    assert set(res.names[k] for k in res.causal_order[:2]) == {"I14", "I5"}
    # the planted Vol <- a coupling (b0 pm^2 per pm in the synthetic grid) is found with its physical value
    b0 = grid.params["pitch"] * grid.params["pixel_size"]
    assert res.coefficient("Vol", "a", in_units=True) == pytest.approx(b0, rel=0.05)
    assert res.coupling_unit("Vol", "a") == "pm^2/pm"
    assert layer.metadata[META_KEY]["lingam"] is res
    # drawn: graph arrows and two heatmaps
    assert widget.graph_canvas.figure.axes and widget.adjacency_canvas.figure.axes
    assert widget.probability_canvas.figure.axes[0].images
    widget.in_units.setChecked(True)
    edges = pd.read_csv(widget.export_csv(tmp_path / "edges.csv"))
    assert {"cause", "effect", "coefficient", "probability", "ci_low", "ci_high"} <= set(edges.columns)
    row = edges[(edges.effect == "Vol") & (edges.cause == "a")].iloc[0]
    assert row.coefficient == pytest.approx(b0, rel=0.05) and row.probability >= 0.5
    doc = json.loads(widget.export_json(tmp_path / "result.json").read_text())
    assert doc["names"] == list(DESCRIPTORS) and len(doc["adjacency"]) == 8
    assert doc["params"]["seed"] == 3


def test_seeded_runs_identical_and_prior_knowledge_applied(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    add_points(viewer, grid)
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_variables(["I5", "a", "b", "Vol", "Px", "Py"])
    widget.set_exogenous(["I5"])
    widget.required.setText("Px <- Py")
    widget.n_bootstrap.setValue(10)
    widget.run()
    wait(qtbot, widget)
    first = widget.result
    assert first.names == ("I5", "a", "b", "Vol", "Px", "Py")
    order = [first.names[k] for k in first.causal_order]
    assert order[0] == "I5" and order.index("Py") < order.index("Px")
    widget.run()
    wait(qtbot, widget)
    assert np.array_equal(widget.result.bootstrap_adjacency, first.bootstrap_adjacency)


def test_csv_table_source_with_units_and_nan(make_napari_viewer, qtbot, tmp_path, grid):
    viewer = make_napari_viewer()
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    with pytest.raises(ValueError, match="No cells"):
        widget.run()
    table = grid.table[list(DESCRIPTORS)].copy()
    table.iloc[:5, 2] = np.nan
    table.columns = [f"{c} [{grid.units[c]}]" for c in DESCRIPTORS]
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    assert widget.load_table(path) == "cells.csv"
    widget.n_bootstrap.setValue(0)
    widget.run()
    wait(qtbot, widget)
    res = widget.result
    assert res.n_dropped == 5 and res.units["Vol"] == "pm^2" and res.probabilities is None
    assert "5 rows with NaN dropped" in widget.summary.text()
    widget.set_variables(["a"])
    with pytest.raises(ValueError, match="at least 2"):
        widget.run()


def test_bad_prior_is_reported_not_raised(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    add_points(viewer, grid)
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    widget.required.setText("Px <- Pz")
    widget.n_bootstrap.setValue(0)
    widget.run()
    wait(qtbot, widget)
    assert widget.result is None
    assert "Unknown variable 'Pz'" in widget.jobs.status.text()


def test_cancel_between_bootstrap_chunks(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    add_points(viewer, grid)
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    widget.n_bootstrap.setValue(100000)
    widget.run()
    widget.jobs.cancel()
    wait(qtbot, widget)
    assert widget.result is None
    assert "cancelled" in widget.jobs.status.text()


def test_follows_features_added_later_and_keeps_ticks(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    layer = viewer.add_points(grid.table[["y", "x"]].to_numpy(), name="B columns")
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.source.currentData() is None
    layer.features = grid.table.reset_index(drop=True)  # what the Descriptors step does
    assert widget.source.currentData() == "layer:B columns"
    widget.set_variables(["a", "b", "Vol"])
    layer.metadata = {META_KEY: {"units": dict(grid.units)}}
    assert widget.variables.checked() == ["a", "b", "Vol"]


def test_edges_tab_criterion_and_significant_only(make_napari_viewer, qtbot, grid):
    viewer = make_napari_viewer()
    add_points(viewer, grid)
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.options.alpha.value == pytest.approx(0.01) and widget.options.significant_only.value
    widget.n_bootstrap.setValue(20)
    widget.options.fdr.value = "by"
    widget.run_button.click()
    wait(qtbot, widget)
    res = widget.result
    assert res.params["fdr"] == "by"
    assert "order t-test, alpha 0.01, BY" in widget.summary.text()
    headers = [widget.edges_view.horizontalHeaderItem(k).text() for k in range(widget.edges_view.columnCount())]
    assert {"significant", "link", "p_value"} <= set(headers)
    # one decision three ways: the summary's count, the graph's arrows and the table's rows agree
    shown = widget.edges_table()
    assert_one_decision(widget)
    assert shown["significant"].all() and (shown["coefficient"] != 0).all()
    assert (shown["p_value"] <= 0.01).all()  # FDR-adjusted q <= alpha implies the raw p <= alpha
    column = headers.index("significant")
    assert {widget.edges_view.item(r, column).text() for r in range(widget.edges_view.rowCount())} == {"yes"}
    # the planted Vol <- a is significant and linked
    row = shown[(shown.effect == "Vol") & (shown.cause == "a")].iloc[0]
    assert row.link in ("Vol <- a", "Vol <-> a")
    # the minimum probability is no hidden filter while the test decides
    assert not widget.options.min_probability.enabled
    widget.options.min_probability.value = 1.0
    assert len(widget.edges_table()) == len(shown)
    # unticked: every edge of the fit with at least the minimum probability, counted, drawn and listed alike
    widget.options.min_probability.value = 0.0
    widget.options.significant_only.value = False
    assert widget.options.min_probability.enabled
    assert widget.edges_view.rowCount() == int((res.adjacency != 0).sum()) >= len(shown)
    assert_one_decision(widget)
    # the cells layer gone: no stale result, no export
    viewer.layers.clear()
    assert widget.result is None and widget.summary.text() == "" and widget.edges_view.rowCount() == 0
    assert not widget.export_csv_button.isEnabled() and not widget.export_json_button.isEnabled()


def drawn_arrows(widget) -> int:
    from matplotlib.patches import FancyArrowPatch

    return sum(isinstance(p, FancyArrowPatch) for p in widget.graph_canvas.figure.axes[0].patches)


def assert_one_decision(widget) -> None:
    """The summary's edge count, the graph's arrows and the table's rows are the same edges."""
    import re

    count = int(re.search(r"(\d+) edges", widget.summary.text()).group(1))
    assert count == len(widget.edges_table()) == widget.edges_view.rowCount() == drawn_arrows(widget)
    assert "graph and table show exactly these" in widget.summary.text()


def test_deterministic_descriptor_label_and_leave_out(make_napari_viewer, qtbot, grid):
    table = grid.table.copy()
    table["Vol"] = table["a"] * table["b"] * np.sin(np.deg2rad(table["alpha"]))  # exact, as on real cells
    viewer = make_napari_viewer()
    viewer.add_points(table[["y", "x"]].to_numpy(), features=table.reset_index(drop=True), name="B columns",
                      metadata={META_KEY: {"units": dict(grid.units)}})
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    widget.n_bootstrap.setValue(0)
    shown = []
    with patch("napari_causal_lattice._napari._jobs.show_warning", shown.append):
        widget.run()
        wait(qtbot, widget)
    assert "Vol" in widget.result.names
    assert sum("Near-deterministic variables: Vol" in text for text in shown) == 1  # once, beside the model check
    assert widget.deterministic_box.isVisibleTo(widget) and "Vol" in widget.deterministic_label.text()
    assert widget.leave_out_button.isVisibleTo(widget)
    widget.leave_out_button.click()
    wait(qtbot, widget)
    assert widget.options.drop_deterministic.value
    assert "Vol" not in widget.result.names and widget.result.params["dropped_deterministic"] == ["Vol"]
    assert "Left out as deterministic: Vol" in widget.summary.text()
    assert not widget.leave_out_button.isVisibleTo(widget)


def test_instrument_null_button_labels_the_links_the_measurement_makes(make_napari_viewer, qtbot):
    """On a non-polar image with probe tails, the null runs from the dock (worker, progress): edges it reproduces
    are labelled instrument, left out of the drawing and named in the summary."""
    from napari_causal_lattice import build_cells, find_columns
    from napari_causal_lattice.synthetic import NON_POLAR, synthetic_perovskite

    sample = synthetic_perovskite(seed=1, shape_cells=(12, 12), probe_tail=0.2, a_amplitude_spread=0.3,
                                  b_amplitude_spread=0.3, **NON_POLAR)
    columns = find_columns(sample.image, pixel_size=sample.pixel_size)
    cells = build_cells(columns)
    viewer = make_napari_viewer()
    viewer.add_image(sample.image, name="scan")
    table = cells.table
    viewer.add_points(table[["y", "x"]].to_numpy(), features=table.reset_index(drop=True), name="B columns",
                      metadata={META_KEY: {"columns": columns, "cells": cells, "image": "scan"}})
    widget = CausalWidget(viewer)
    qtbot.addWidget(widget)
    with pytest.raises(ValueError, match="Run the causal discovery first"):
        widget.run_null()
    widget.n_bootstrap.setValue(0)
    widget.run()
    wait(qtbot, widget)
    assert widget.null_button.isEnabled()
    widget.null_form.n_images.value = 5
    widget.null_button.click()
    wait(qtbot, widget, timeout=240000)
    res = widget.result
    assert widget.null is not None and widget.null.n_images == 5 and res.instrument is not None
    assert "Instrument null (5 images)" in widget.summary.text()
    assert not np.any(widget.shown_edges() & res.instrument)  # instrument edges are not drawn
    viewer.layers.remove("B columns")
    assert not widget.null_button.isEnabled()
