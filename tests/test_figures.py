"""Paper figures of one analysis: maps on the image in nm with unit colour bars, the 8 x 8 grid, PCA, graphs, files."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch

from napari_causal_lattice.causal.result import LingamResult
from napari_causal_lattice.cli import build_parser
from napari_causal_lattice.figures import (
    check_figure_options,
    draw_map,
    edge_mask,
    figure_writers,
    plot_descriptor_maps,
    plot_global_graph,
    plot_image_columns,
    plot_overlay,
    plot_pca,
    plot_sliding_grid,
    robust_limits,
)
from napari_causal_lattice.lattice import DESCRIPTORS
from napari_causal_lattice.pipeline import run_pipeline
from napari_causal_lattice.synthetic import synthetic_perovskite

PIXEL = 28.0


@pytest.fixture(scope="module")
def analysis():
    sample = synthetic_perovskite(seed=3, shape_cells=(18, 18), pitch=14.0, pixel_size=PIXEL)
    return run_pipeline(sample, window=8, n_bootstrap=4, seed=5), sample.image


def colorbar_labels(fig) -> list[str]:
    axes = [a for ax in fig.axes for a in (ax, *ax.child_axes)]
    return [ax.get_ylabel() for ax in axes if hasattr(ax, "_colorbar")]


def map_axes(fig):
    return [ax for ax in fig.axes if ax.images and not hasattr(ax, "_colorbar")]


def test_descriptor_maps_on_the_image_in_nm_with_units(analysis):
    res, image = analysis
    fig = plot_descriptor_maps(image, res.cells)
    panels = map_axes(fig)
    assert len(panels) == 8
    for ax, name in zip(panels, DESCRIPTORS):
        assert ax.get_title() == name
        assert ax.get_xlabel() == "x (nm)" and ax.get_ylabel() == "y (nm)"
        # the image spans its physical size: 308 px * 28 pm = 8.6 nm
        assert ax.images[0].get_extent()[1] == pytest.approx((image.shape[1] - 0.5) * PIXEL / 1000)
        assert len(ax.images) == 2, "the map is drawn over the image"
    units = {name: res.cells.units[name] for name in DESCRIPTORS}
    assert colorbar_labels(fig) == [f"{n} ({units[n]})" for n in DESCRIPTORS]
    assert units["Px"] == "pm" and units["alpha"] == "deg" and units["Vol"] == "pm^2"
    px_mesh = panels[DESCRIPTORS.index("Px")].images[1]
    lo, hi = px_mesh.get_clim()
    assert lo == -hi, "signed maps are symmetric about 0"


def test_robust_limits_ignore_outliers_and_saturate(analysis):
    res, image = analysis
    values = np.random.default_rng(0).normal(0, 5, (30, 30))
    values[0, 0] = 100.0  # one outlier cell
    lo, hi = robust_limits(values, signed=True)
    assert -20 < lo == -hi < -8
    assert robust_limits(np.full(4, 3.0), signed=False) == (2.5, 3.5)
    with pytest.raises(ValueError, match="percentile"):
        robust_limits(values, signed=True, percentile=40)
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    cells = res.cells
    grid = np.where(np.isfinite(cells.maps()["Px"]), values[:18, :18], np.nan)
    mesh = draw_map(ax, image, PIXEL, cells.lattice, grid, label="Px (pm)", signed=True)
    assert mesh.get_clim()[1] < 30
    [bar] = [a._colorbar for a in ax.figure.axes if hasattr(a, "_colorbar")]
    assert bar.extend in ("max", "both")


def test_axes_fall_back_to_px_without_a_pixel_size(analysis):
    res, image = analysis
    fig = plot_image_columns(image, res.columns, None)
    ax = map_axes(fig)[0]
    assert ax.get_xlabel() == "x (px)" and ax.get_ylabel() == "y (px)"
    assert ax.get_legend() is not None


def test_large_image_is_block_averaged_without_moire():
    from matplotlib.figure import Figure

    from napari_causal_lattice.figures import draw_image

    y, x = np.mgrid[:2000, :2000]
    image = np.sin(2 * np.pi * x / 3.0)  # a period of 3 px: plain decimation would alias
    ax = Figure().add_subplot()
    draw_image(ax, image, 10.0, max_pixels=40_000)
    shown = ax.images[0].get_array()
    assert shown.shape == (200, 200)
    decimated = image[::10, ::10]  # what plain subsampling shows: a false full-contrast pattern
    assert np.ptp(shown) < 0.15 * np.ptp(decimated), "averaging suppresses the unresolved fringes"


def panel(fig, title):
    """The map panel of a figure titled ``title``."""
    return next(ax for ax in map_axes(fig) if ax.get_title() == title)


def assert_journal_size(fig) -> None:
    """3.5 in (one column) or 7.2 in (two columns) wide, and no text below 7 pt."""
    assert fig.get_size_inches()[0] in (3.5, 7.2)
    texts = [t for t in fig.findobj(lambda artist: hasattr(artist, "get_fontsize") and hasattr(artist, "get_text"))
             if t.get_text() and t.get_visible()]
    assert texts and min(t.get_fontsize() for t in texts) >= 7.0


def test_sliding_grid_shows_the_elements_that_matter_with_one_unit_colour_bar(analysis):
    from napari_causal_lattice.figures import significant_elements

    res, image = analysis
    sliding = res.sliding
    fig = plot_sliding_grid(image, sliding, PIXEL)
    assert_journal_size(fig)
    panels = map_axes(fig)
    elements = significant_elements(sliding)
    anywhere = (sliding.significant & (sliding.adjacency != 0)).any(axis=(0, 1))
    assert len(panels) == len(elements) == int(anywhere.sum()) < 56
    assert {ax.get_title() for ax in panels} == {f"{e} <- {c}" for e, c in elements}
    assert colorbar_labels(fig) == ["standardised coefficient (dimensionless)"]
    assert panels[-1].get_xlabel() == "x (nm)" and panels[0].get_ylabel() == "y (nm)"
    # windows without the edge are not coloured
    e, c = DESCRIPTORS.index("Vol"), DESCRIPTORS.index("a")
    mesh = panel(fig, "Vol <- a").images[1]
    zero = sliding.adjacency[:, :, e, c] == 0
    assert np.array_equal(np.ma.getmaskarray(mesh.get_array()).reshape(sliding.shape)[zero], np.ones(zero.sum(), bool))
    units = plot_sliding_grid(image, sliding, PIXEL, in_units=True)
    assert_journal_size(units)
    labels = colorbar_labels(units)
    assert len(labels) == len(elements) and "pm^2/pm" in labels


def test_sliding_grid_hides_windows_that_are_not_significant(analysis):
    res, image = analysis
    sliding = res.sliding
    decision = np.zeros(sliding.adjacency.shape, dtype=bool)
    e, c = DESCRIPTORS.index("Vol"), DESCRIPTORS.index("a")
    decision[0, 0, e, c] = True
    marked = dataclasses.replace(sliding, significant=decision)
    fig = plot_sliding_grid(image, marked, PIXEL)
    assert [ax.get_title() for ax in map_axes(fig)] == ["Vol <- a"]
    mask = np.ma.getmaskarray(panel(fig, "Vol <- a").images[1].get_array()).reshape(sliding.shape)
    assert mask[1:].all() and mask[0, 1:].all()
    empty = plot_sliding_grid(image, dataclasses.replace(sliding, significant=np.zeros_like(decision)), PIXEL)
    assert_journal_size(empty)
    assert "0 of 56 elements significant" in " ".join(t.get_text() for t in empty.axes[0].texts).replace("\n", " ")


def _value_under(mesh, yx_px, pixel):
    """The map value drawn at image position(s) ``yx_px`` (px) of a map image on nm axes."""
    x0, x1, y1, y0 = mesh.get_extent()
    data = np.ma.filled(mesh.get_array().astype(float), np.nan)
    rows = ((yx_px[:, 0] * pixel / 1000 - y0) / (y1 - y0) * data.shape[0]).astype(int)
    cols = ((yx_px[:, 1] * pixel / 1000 - x0) / (x1 - x0) * data.shape[1]).astype(int)
    return data[rows, cols]


def _bend(cells, amplitude_px=6.0):
    """A copy of ``cells`` on a curved lattice: every B column shifted along y by a sine of its x."""
    table = cells.table.copy()
    table["y"] = table["y"] + amplitude_px * np.sin(2 * np.pi * table["x"] / table["x"].max())
    return dataclasses.replace(cells, table=table)


def test_descriptor_maps_show_each_cell_under_its_own_b_column_and_flags(analysis):
    res, image = analysis
    cells = _bend(res.cells)
    table = cells.table.copy()
    flagged = np.zeros(len(table), bool)
    flagged[[3, 40, 77]] = True
    table.loc[flagged, "flag"] = "outlier"
    table.loc[flagged, list(DESCRIPTORS)] = np.nan
    cells = dataclasses.replace(cells, table=table)
    fig = plot_descriptor_maps(image, cells)
    ax = map_axes(fig)[DESCRIPTORS.index("Px")]
    yx = table[["y", "x"]].to_numpy()
    drawn = _value_under(ax.images[1], yx, PIXEL)
    expected = table["Px"].to_numpy(dtype=float)
    ok = ~flagged
    assert np.allclose(drawn[ok], expected[ok], atol=1e-3), "every cell's value under its own B column"
    assert np.isnan(drawn[flagged]).all()
    assert ax.get_legend().get_texts()[0].get_text() == "flagged (3)"
    assert "3 outlier" in fig._suptitle.get_text()


def test_sliding_maps_follow_the_cells(analysis):
    from napari_causal_lattice.placement import window_values_per_cell

    res, image = analysis
    cells = _bend(res.cells)
    sliding = res.sliding
    fig = plot_sliding_grid(image, sliding, PIXEL, cells=cells)
    e, c = DESCRIPTORS.index("Px"), DESCRIPTORS.index("Py")
    mesh = panel(fig, "Px <- Py").images[1]
    element = np.where(sliding.significant[:, :, e, c] & (sliding.adjacency[:, :, e, c] != 0),
                       sliding.adjacency[:, :, e, c], np.nan)
    expected = window_values_per_cell(sliding, cells, element)
    drawn = _value_under(mesh, cells.table[["y", "x"]].to_numpy(), PIXEL)
    assert np.allclose(drawn, expected, atol=1e-4, equal_nan=True)
    overlay = plot_overlay(image, sliding, PIXEL, cells=cells)
    assert map_axes(overlay)[0].images[1].get_array().shape[0] > sliding.shape[0], "drawn on the cells' regions"
    pca = plot_pca(image, res.pca, PIXEL, cells=cells, sliding=sliding)
    assert len([ax for ax in pca.axes if ax.get_xlabel() == "x (nm)"]) == res.pca.n_components


def test_pca_components_next_to_their_loading_maps(analysis):
    res, image = analysis
    fig = plot_pca(image, res.pca, PIXEL)
    k = res.pca.n_components
    heat = [ax for ax in fig.axes if ax.get_xlabel() == "cause"]
    maps = [ax for ax in fig.axes if ax.get_xlabel() == "x (nm)"]
    assert len(heat) == len(maps) == k
    assert all(ax.get_ylabel() == "effect" for ax in heat)
    labels = colorbar_labels(fig)
    assert labels.count("weight (unit-norm component)") == k and labels.count("score (dimensionless)") == k
    assert all("% of variance" in ax.get_title() for ax in heat)


def test_pca_flags_a_component_made_by_one_window(analysis):
    res, image = analysis
    loadings = np.zeros_like(res.pca.loadings)
    loadings[0, 0, 0] = 10.0
    loadings[0, 1, 1] = 0.1
    fig = plot_pca(image, dataclasses.replace(res.pca, loadings=loadings), PIXEL)
    titles = [ax.get_title() for ax in fig.axes if ax.get_xlabel() == "x (nm)"]
    assert "outlier" in titles[0]


def _result(B, prob, standardized=True):
    names = ("p", "q", "r", "s")
    return LingamResult(names=names, causal_order=[0, 1, 2, 3], adjacency=B, probabilities=prob, n_samples=100,
                        units=dict.fromkeys(names, "pm"), scale=np.array([1.0, 2.0, 1.0, 1.0]),
                        standardized=standardized, bootstrap_adjacency=np.repeat(B[None], 3, axis=0))


def test_global_graph_shows_only_confident_edges_and_flags_collinear_ones():
    B = np.zeros((4, 4))
    B[1, 0], B[2, 1], B[2, 0] = 0.5, 17.9, -0.4
    prob = np.zeros((4, 4))
    prob[1, 0], prob[2, 1], prob[2, 0] = 0.95, 0.9, 0.23
    res = _result(B, prob)
    assert edge_mask(res, 0.5).sum() == 2
    fig = plot_global_graph(res, min_probability=0.5)
    graph, heat = fig.axes[0], fig.axes[1]
    arrows = [p for p in graph.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 2, "the edge with P = 0.23 is not drawn"
    dashed = [a for a in arrows if a.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert any(t.get_text().startswith("+17.90 !") for t in graph.texts)
    assert "collinear" in fig._suptitle.get_text()
    assert heat.get_xlabel() == "cause" and heat.get_ylabel() == "effect"
    assert "-0.40" not in {t.get_text() for t in heat.texts}
    assert colorbar_labels(fig) == ["coefficient, standardised (dimensionless)"]
    assert "layered layout" in graph.get_title()
    assert "bootstrap probability >= 0.50" in graph.get_title()


def test_global_graph_uses_the_calibrated_decision_and_states_it(analysis):
    from napari_causal_lattice.figures import edge_criterion

    res, _ = analysis
    lingam = res.lingam
    assert np.array_equal(edge_mask(lingam), lingam.significant)
    criterion = edge_criterion(lingam)
    assert criterion.startswith("calibrated: order t-test p <= ")
    fig = plot_global_graph(lingam)
    shown = " ".join(fig.axes[0].get_title().replace("\u00a0", " ").split())  # wrapped to the panel's width
    assert criterion in shown


def test_figure_files_in_every_format(analysis, tmp_path):
    res, image = analysis
    writers = figure_writers(res, image, formats=("png", "svg", "pdf"), dpi=40, style="greyscale")
    names = {"image_columns", "scan_jitter", "descriptor_maps", "causal_graph", "sliding_grid", "overlay_Px_Py",
             "pca"}
    assert set(writers) == {f"figures/{n}.{f}" for n in names for f in ("png", "svg", "pdf")}
    for rel in ("figures/overlay_Px_Py.png", "figures/overlay_Px_Py.svg", "figures/overlay_Px_Py.pdf"):
        writers[rel](tmp_path / rel.split("/")[1])
    assert (tmp_path / "overlay_Px_Py.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "overlay_Px_Py.pdf").read_bytes()[:4] == b"%PDF"
    assert b"<svg" in (tmp_path / "overlay_Px_Py.svg").read_bytes()[:500]
    assert set(figure_writers(res, None)) == {"figures/causal_graph.png", "figures/scan_jitter.png"}, \
        "maps need the image"
    fig = plot_overlay(image, res.sliding, PIXEL, style="greyscale")
    assert map_axes(fig)[0].images[1].get_cmap().name == "cividis"
    assert colorbar_labels(fig) == ["Px <- Py (pm/pm)"]


def test_bad_figure_options_are_refused():
    with pytest.raises(ValueError, match="figure formats"):
        check_figure_options(("png", "jpg"))
    with pytest.raises(ValueError, match="dpi"):
        check_figure_options(dpi=5)
    with pytest.raises(ValueError, match="style"):
        check_figure_options(style="neon")
    args = build_parser().parse_args(["analyze", "a.tif", "--out", "o", "--figure-format", "png,pdf", "--dpi", "300",
                                      "--style", "greyscale"])
    assert (args.figure_format, args.dpi, args.style) == ("png,pdf", 300, "greyscale")


def test_importing_the_package_does_not_import_matplotlib():
    code = ("import sys; import napari_causal_lattice, napari_causal_lattice.figures, napari_causal_lattice.report, "
            "napari_causal_lattice.pipeline; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_every_figure_fits_a_journal_page(analysis):
    """3.5 in or 7.2 in wide, no text below 7 pt: the figures go into a paper as they are."""
    from matplotlib import rc_context

    from napari_causal_lattice.figures import _makers, get_style

    res, image = analysis
    style = get_style("paper")
    too_small = {}
    for name, make in _makers(res, image).items():
        with rc_context(style.rc):
            fig = make(style)
        width = fig.get_size_inches()[0]
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
                 if t.get_text() and t.get_visible()]
        smallest = min(t.get_fontsize() for t in texts)
        if width not in (3.5, 7.2) or smallest < 7.0:
            too_small[name] = (width, smallest, [t.get_text()[:30] for t in texts if t.get_fontsize() < 7][:4])
    assert not too_small


@pytest.mark.parametrize("module, name", [
    ("plotting", "plot_causal_graph"), ("plotting", "plot_adjacency"), ("plotting", "coupling_unit"),
    ("compare", "plot_coefficient_vs_group"), ("compare", "plot_group_adjacency"), ("walls", "plot_wall_profile"),
    ("theory", "plot_figure8"), ("theory", "plot_figure9"), ("report", "plot_summary"),
])
def test_drawing_helpers_moved_to_figures_keep_their_old_names_with_a_warning(module, name):
    import importlib

    from napari_causal_lattice import figures

    old = importlib.import_module(f"napari_causal_lattice.{module}")
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{name} has moved; use napari_causal_lattice\.figures"):
        assert getattr(old, name) is getattr(figures, name)
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018


def test_computing_modules_hold_no_drawing_code():
    code = ("import sys; import napari_causal_lattice as ncl, napari_causal_lattice.compare, napari_causal_lattice.walls, "
            "napari_causal_lattice.theory, napari_causal_lattice.sliding, napari_causal_lattice.pca; "
            "ncl.plot_causal_graph; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
