"""The shared job panel (worker thread, progress, cancel, errors) and aligned map layers."""

import threading
import time
import warnings
from unittest.mock import patch

import numpy as np
import pytest

from napari_causal_lattice import Cancelled, Lattice
from napari_causal_lattice._napari._jobs import JobPanel
from napari.layers import Labels

from napari_causal_lattice._napari._edges import LINK_COLORS, LINK_TYPES
from napari_causal_lattice._napari.layers import (
    add_map_layer,
    link_layer_tuple,
    map_layer_tuple,
    nice_limits,
    robust_limits,
    symmetric_limits,
)
from napari_causal_lattice.progress import report


def slow_sum(values, *, progress=None, cancel=None, delay=0.0):
    total = 0
    for k, v in enumerate(values):
        time.sleep(delay)
        total += v
        report(progress, k + 1, len(values), cancel)
    return total


def test_job_runs_in_a_thread_and_delivers_in_gui_thread(qtbot):
    panel = JobPanel()
    qtbot.addWidget(panel)
    seen = {}

    def on_result(value):
        seen["value"] = value
        seen["thread"] = threading.current_thread()

    panel.run(slow_sum, [1, 2, 3], on_result=on_result, label="sum")
    assert panel.running
    qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    assert seen["value"] == 6
    assert seen["thread"] is threading.main_thread()
    assert panel.bar.value() == panel.bar.maximum()
    assert "done" in panel.status.text()


def test_cancel_stops_without_result(qtbot):
    panel = JobPanel()
    qtbot.addWidget(panel)
    results = []
    panel.run(slow_sum, list(range(200)), on_result=results.append, label="sum", delay=0.01)
    qtbot.waitUntil(lambda: panel.bar.maximum() == 200, timeout=5000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    assert results == []
    assert "cancelled" in panel.status.text()


def test_error_is_reported_not_raised(qtbot):
    panel = JobPanel()
    qtbot.addWidget(panel)

    def bad(*, progress=None, cancel=None):
        raise ValueError("window 50 is larger than the 10 x 10 cell grid; use a window <= 10")

    results = []
    panel.run(bad, on_result=results.append, label="sliding")
    qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    assert results == []
    assert "window 50" in panel.status.text()


def test_cancelled_is_an_exception_type():
    assert issubclass(Cancelled, Exception)


def test_symmetric_limits():
    assert symmetric_limits(np.array([-1.0, 3.0, np.nan])) == (-3.0, 3.0)
    assert symmetric_limits(np.array([np.nan])) == (-1.0, 1.0)


@pytest.mark.parametrize("rotation", [0.0, 11.0])
def test_map_layer_lands_on_its_lattice_site(make_napari_viewer, rotation):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((300, 300)), scale=(19.8, 19.8), translate=(5.0, -7.0))
    t = np.radians(rotation)
    lattice = Lattice(origin=(40.0, 50.0), v1=20 * np.array([-np.sin(t), np.cos(t)]), v2=20 * np.array([np.cos(t), np.sin(t)]))
    values = np.arange(12.0).reshape(3, 4)
    data, kwargs, kind = map_layer_tuple(values, lattice.affine, name="test", image_layer=image, signed=True)
    layer = viewer.add_layer(__import__("napari").layers.Layer.create(data, kwargs, kind))
    i, j = 2, 3
    site_px = lattice.to_image([i, j])
    expected_world = image.data_to_world(site_px)
    np.testing.assert_allclose(layer.data_to_world([i, j]), expected_world, atol=1e-9)
    lo, hi = layer.contrast_limits
    robust = np.percentile(np.abs(values), 98)
    assert lo == pytest.approx(-hi) and robust <= hi <= 1.25 * robust  # widened to a labelled tick: 10.78 -> 12
    assert nice_limits(-0.85, 0.85) == (-1.0, 1.0) and nice_limits(381.2, 398.7) == (380.0, 400.0)


def test_robust_limits_ignore_one_outlier():
    values = np.r_[np.linspace(-2.0, 2.0, 200), 500.0, np.nan]
    lo, hi = robust_limits(values, signed=True)
    assert lo == -hi and 1.9 < hi < 2.1
    lo, hi = robust_limits(values + 10.0, signed=False)
    assert 8.0 < lo < 8.2 and 11.8 < hi < 12.1
    assert robust_limits(np.full(5, 3.0), signed=False) == (3.0, 4.0)


def test_add_map_layer_keeps_the_canvas_readable(make_napari_viewer):
    """New maps go below the column points, only the newest is visible, with its colour bar and a scale bar."""
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((60, 60)), scale=(20.0, 20.0), units="pm")
    points = viewer.add_points(np.array([[10.0, 10.0]]), scale=image.scale)
    first = add_map_layer(viewer, map_layer_tuple(np.ones((3, 3)), np.eye(3), name="m1", image_layer=image),
                          image_layer=image)
    second = add_map_layer(viewer, map_layer_tuple(np.ones((3, 3)), np.eye(3), name="m2", image_layer=image),
                           image_layer=image)
    order = list(viewer.layers)
    assert order.index(first) < order.index(points) and order.index(second) < order.index(points)
    assert order.index(image) < order.index(first)
    assert second.visible and not first.visible and points.visible
    assert second.colorbar.visible
    assert viewer.scale_bar.visible and viewer.scale_bar.unit == "pm"


def test_on_result_generator_runs_in_pieces_and_drop_discards(qtbot):
    panel = JobPanel()
    qtbot.addWidget(panel)
    steps = []

    def pieces(value):
        steps.append(("first", value))
        yield
        steps.append(("second", value))

    panel.run(slow_sum, [1, 2], on_result=pieces, label="sum")
    qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    assert steps == [("first", 3), ("second", 3)] and panel.status.text() == "sum: done"

    panel.run(slow_sum, [1, 2], on_result=pieces, label="sum", delay=0.2)
    panel.drop()
    qtbot.wait(800)
    assert steps == [("first", 3), ("second", 3)]
    assert panel.run(slow_sum, [1], on_result=pieces, label="sum") is None


def test_wait_blocks_a_script_until_done_and_raises_on_failure(qtbot):
    panel = JobPanel()
    qtbot.addWidget(panel)
    results = []
    panel.run(slow_sum, [1, 2], on_result=results.append, label="sum", delay=0.02)
    panel.wait(timeout=5)
    assert results == [3]

    def bad(*, progress=None, cancel=None):
        raise ValueError("no periodic lattice found; try giving spacing=")

    panel.run(bad, on_result=results.append, label="columns")
    with pytest.raises(RuntimeError, match="no periodic lattice"):
        panel.wait(timeout=5)


def test_closing_the_panel_mid_run_is_quiet(qtbot):
    """A dock closed (deleted) while its job runs: nothing is delivered and no error escapes (pytest-qt fails
    the test on an exception in a slot, e.g. touching the deleted status label)."""
    panel = JobPanel()
    results, seen = [], []

    def counting(values, *, progress=None, cancel=None):
        for k, value in enumerate(values):
            seen.append(value)
            time.sleep(0.01)
            report(progress, k + 1, len(values), cancel)
        return sum(values)

    worker = panel.run(counting, list(range(100)), on_result=results.append, label="sum")
    with qtbot.waitSignal(worker.finished, timeout=20000):
        qtbot.wait(50)
        panel.deleteLater()
    qtbot.wait(50)
    assert results == []
    assert len(seen) == 100  # the job itself ran to its end


def warns(*, progress=None, cancel=None):
    warnings.warn("Vol is derived", UserWarning)
    warnings.warn("Vol is derived", UserWarning)
    warnings.warn("mean of empty slice", RuntimeWarning)
    return 1


def test_user_warnings_become_one_notification_each_and_reach_on_warning(qtbot):
    panel = JobPanel()
    qtbot.addWidget(panel)
    seen, shown = [], []
    with patch("napari_causal_lattice._napari._jobs.show_warning", shown.append):
        panel.run(warns, on_result=lambda _value: None, on_warning=seen.append, label="fit")
        qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    assert shown == ["fit: Vol is derived"]  # once per message; numeric RuntimeWarnings stay quiet
    assert [str(w) for w in seen] == ["Vol is derived", "Vol is derived"]
    assert all(isinstance(w, UserWarning) for w in seen)


def test_link_layer_is_a_categorical_map_on_its_lattice_site(make_napari_viewer):
    viewer = make_napari_viewer()
    lattice = Lattice(origin=(30.0, 40.0), v1=(0.0, 10.0), v2=(10.0, 0.0))
    codes = np.array([[0, 1, 2], [3, 1, 0]])
    layer = add_map_layer(viewer, link_layer_tuple(codes, lattice.affine, name="link", names=LINK_TYPES,
                                                   colors=LINK_COLORS))
    assert isinstance(layer, Labels) and layer.data.dtype == np.int32
    np.testing.assert_array_equal(layer.data, codes)
    np.testing.assert_allclose(layer.data_to_world((1, 2)), (40.0, 60.0))
    assert list(layer.features["link"]) == list(LINK_TYPES)
    assert layer.colormap.map(0)[3] == 0.0 and layer.colormap.map(3)[3] == 1.0  # none is transparent


def test_plot_canvas_is_in_the_theme_before_its_first_plot(qtbot):
    """No white box in a dark dock: an empty canvas already has the theme's background."""
    from matplotlib.colors import to_hex
    from napari.utils.theme import get_theme

    from napari_causal_lattice._napari._mpl import MplCanvas

    canvas = MplCanvas(theme=lambda: "dark")
    qtbot.addWidget(canvas)
    assert to_hex(canvas.figure.get_facecolor()) == get_theme("dark").background.as_hex()


def test_signed_maps_are_clear_near_zero_in_the_docks_colours():
    """Near-zero couplings leave the atoms visible; the hues are the dock heatmaps' (RdBu_r)."""
    import matplotlib

    from napari_causal_lattice._napari.layers import SIGNED_CMAP, clear_centre_colormap
    assert SIGNED_CMAP == "RdBu_r"  # plot_adjacency's signed default, used by the docks' heatmaps
    cmap = clear_centre_colormap()
    centre, end = cmap.map(np.array([0.5, 1.0]))
    assert centre[3] == 0.0 and end[3] == 1.0
    np.testing.assert_allclose(end[:3], matplotlib.colormaps[SIGNED_CMAP](1.0)[:3], atol=1e-6)
