"""The Compare images widget: real images -> columns -> cells -> fits in the worker, ranking by planted strength."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causal_lattice._napari.compare_widget import CompareWidget, group_probabilities
from napari_causal_lattice._napari.sample import sample_layer_tuples
from napari_causal_lattice.synthetic import synthetic_perovskite

STRENGTHS = (0.2, 0.8)


@pytest.fixture(scope="module")
def samples():
    """20 x 20 cell images, wall moved out of the field so Px <- Py = k0 everywhere."""
    return {
        k0: synthetic_perovskite(seed=3, shape_cells=(20, 20), substrate_rows=0, interface_rows=0,
                                 wall_position=-1000.0, px_py_coupling=k0)
        for k0 in STRENGTHS
    }


def test_compare_ranks_images_by_planted_coupling(make_napari_viewer, qtbot, samples, tmp_path):
    viewer = make_napari_viewer()
    for k0, sample in samples.items():
        data, kwargs, _ = sample_layer_tuples(sample)[0]
        kwargs = dict(kwargs, name=f"k0 = {k0}")
        viewer.add_image(data, **kwargs)
    widget = CompareWidget(viewer)
    assert widget.table.rowCount() == 2
    for k0 in STRENGTHS:
        widget.set_group(f"k0 = {k0}", f"k0={k0}")
    widget.n_bootstrap.setValue(20)
    worker = widget.run()
    assert worker is not None
    qtbot.waitUntil(lambda: not widget.jobs.running and widget.result is not None, timeout=60000)
    rows = widget.result.edge("Px", "Py")
    assert list(rows["group"]) == ["k0=0.2", "k0=0.8"]
    # coefficients in pm/pm from the measured columns: planted 0.2 and 0.8 within 0.15
    np.testing.assert_allclose(rows["coefficient"], STRENGTHS, atol=0.15)
    assert rows["ci_high"][0] < rows["ci_low"][1]
    assert (widget.result.table["n_samples"] > 300).all()
    # causal graphs tab first: one graph per group, the planted Px <- Py arrow labelled with its group coefficient
    assert widget.tabs.currentWidget() is widget.graph_canvas
    graph_axes = widget.graph_figure.axes
    assert [ax.get_title() for ax in graph_axes] == ["k0=0.2 (1 image)", "k0=0.8 (1 image)"]
    for ax, k0 in zip(graph_axes, STRENGTHS):
        labels = [t.get_text() for t in ax.texts]
        assert set(widget.result.names) <= set(labels)  # every node drawn
        coefficient = widget.result.group_adjacency(f"k0={k0}")[6, 7]
        assert any(label.startswith(f"{coefficient:+.2f}\nP=") for label in labels)
    probabilities = group_probabilities(widget.result, "k0=0.8")
    assert probabilities[6, 7] == pytest.approx(rows["probability"][1]) and probabilities[6, 7] >= 0.9
    assert np.all(np.diag(probabilities) == 0)
    # raising the threshold to 1.0 keeps only the edges present in every resample
    n_arrows = len(graph_axes[1].patches)
    widget.min_probability.setValue(1.0)
    kept = np.count_nonzero((probabilities >= 1.0) & (widget.result.group_adjacency("k0=0.8") != 0))
    assert len(widget.graph_figure.axes[1].patches) == 8 + kept < n_arrows  # 8 node circles + arrows
    # adjacency matrices: one panel per group and a colour bar
    assert len(widget.matrix_figure.axes) == 3
    widget.effect.setCurrentText("Vol")
    widget.cause.setCurrentText("a")
    assert widget.tabs.currentWidget() is widget.coupling_canvas
    assert "Vol <- a" in widget.figure.axes[0].get_ylabel()


def test_compare_needs_a_group_and_an_image(make_napari_viewer, samples):
    viewer = make_napari_viewer()
    widget = CompareWidget(viewer)
    with pytest.raises(ValueError, match="tick at least one"):
        widget.run()
    data, kwargs, _ = sample_layer_tuples(samples[0.2])[0]
    viewer.add_image(data, **dict(kwargs, name="one"))
    widget.set_group("one", " ")
    with pytest.raises(ValueError, match="no group label"):
        widget.run()


def test_results_folder_adds_a_row_with_its_cells(make_napari_viewer, samples, tmp_path):
    from napari_causal_lattice.cells import build_cells
    from napari_causal_lattice.columns import find_columns
    from napari_causal_lattice.store import save_results

    sample = samples[0.8]
    cells = build_cells(find_columns(sample.image, pixel_size=sample.pixel_size))
    folder = save_results(tmp_path / "run1", cells=cells)
    widget = CompareWidget(make_napari_viewer())
    name = widget.add_results(folder)
    assert name == "run1 (results)" and widget.table.rowCount() == 1
    assert widget.selection()[name] == (True, "all")
    with pytest.raises(ValueError, match="results"):
        widget.add_results(tmp_path)
