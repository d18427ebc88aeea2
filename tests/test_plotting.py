"""plot_causal_graph / plot_adjacency: what is drawn, with no pyplot state."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.patches import FancyArrowPatch

from napari_causal_lattice.causal import fit_lingam
from napari_causal_lattice.figures import new_axes, plot_adjacency, plot_causal_graph

NAMES = ["z0", "z1", "z2"]
B = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, -6.0, 0.0]])
P = np.array([[0.0, 0.1, 0.0], [1.0, 0.0, 0.0], [0.3, 0.9, 0.0]])


def arrows(ax):
    return [p for p in ax.patches if isinstance(p, FancyArrowPatch)]


def texts(ax):
    return [t.get_text() for t in ax.texts]


def test_graph_draws_one_arrow_per_edge_with_labels():
    ax = plot_causal_graph(B, NAMES, probabilities=P, min_probability=0.5)
    assert len(arrows(ax)) == 2
    labels = texts(ax)
    assert "+3.00\nP=1.00" in labels and "-6.00\nP=0.90" in labels
    assert set(NAMES) <= set(labels)
    widths = sorted(a.get_linewidth() for a in arrows(ax))
    assert widths[1] > widths[0]  # |-6| drawn thicker than |3|
    assert len(arrows(plot_causal_graph(B, NAMES, probabilities=P, min_probability=0.95))) == 1
    assert len(arrows(plot_causal_graph(B, NAMES, min_abs=4.0, layout="circle"))) == 1


def test_graph_from_result_and_layered_rows():
    rng = np.random.default_rng(0)
    z0 = rng.uniform(-1, 1, 1000)
    z1 = 3 * z0 + rng.uniform(-1, 1, 1000)
    z2 = -6 * z1 + rng.uniform(-1, 1, 1000)
    res = fit_lingam(np.c_[z0, z1, z2], variables=NAMES, n_bootstrap=5, seed=0)
    ax = plot_causal_graph(res, in_units=True, fmt="{:+.1f}")
    labels = texts(ax)
    assert any(t.startswith("+3.0") for t in labels) and any(t.startswith("-6.0") for t in labels)
    # layered: z0 above z1 above z2
    ys = {t.get_text(): t.get_position()[1] for t in ax.texts if t.get_text() in NAMES}
    assert ys["z0"] > ys["z1"] > ys["z2"]


def test_adjacency_heatmap_axes_and_colours():
    ax = plot_adjacency(B, NAMES, title="B")
    assert ax.get_xlabel() == "cause" and ax.get_ylabel() == "effect"
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    im = ax.images[0]
    assert im.get_cmap().name == "RdBu_r" and im.get_clim() == (-6.0, 6.0)
    assert "-6.00" in texts(ax) and "3.00" in texts(ax)
    ax2 = plot_adjacency(P, NAMES, signed=False, vmin=0, vmax=1)
    assert ax2.images[0].get_cmap().name == "viridis" and ax2.images[0].get_clim() == (0.0, 1.0)
    ax3 = new_axes()
    assert plot_adjacency(np.abs(B), NAMES, ax=ax3, signed=True) is ax3
    assert ax3.images[0].get_clim() == (-6.0, 6.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        plot_adjacency(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 names"):
        plot_causal_graph(np.zeros((2, 2)), NAMES)
    with pytest.raises(ValueError, match="shape"):
        plot_causal_graph(B, NAMES, probabilities=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="layout"):
        plot_causal_graph(B, NAMES, layout="spring")


def test_no_pyplot_qt_or_lingam_imported():
    code = (
        "import sys, numpy as np\n"
        "from napari_causal_lattice.figures import plot_causal_graph, plot_adjacency\n"
        "from napari_causal_lattice.causal import fit_lingam\n"
        "r = fit_lingam(np.random.default_rng(0).uniform(size=(50, 3)))\n"
        "plot_causal_graph(r); plot_adjacency(r)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PyQt5', 'PyQt6', 'qtpy', 'napari', 'lingam')]\n"
        "print('matplotlib.pyplot' in sys.modules, bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False []"


def test_layered_layout_puts_unconnected_variables_in_one_last_row():
    names = ["a", "b", "c", "d", "e"]
    B = np.zeros((5, 5))
    B[1, 0] = 0.5  # a -> b; c, d, e have no edge
    ax = plot_causal_graph(B, names)
    pos = {t.get_text(): t.get_position() for t in ax.texts if t.get_text() in names}
    loose_y = {pos[n][1] for n in "cde"}
    assert len(loose_y) == 1, "unconnected variables share one row"
    assert loose_y.pop() < pos["b"][1] < pos["a"][1]
    assert len({pos[n][0] for n in "cde"}) == 3, "spread across the width, not stacked"
    assert "no edge shown" in texts(ax)


def test_keep_mask_units_and_non_overlapping_labels():
    rng = np.random.default_rng(1)
    z0 = rng.uniform(-1, 1, 800)
    z1 = 3 * z0 + rng.uniform(-1, 1, 800)
    z2 = -6 * z1 + 2 * z0 + rng.uniform(-1, 1, 800)
    res = fit_lingam(np.c_[z0, z1, z2], variables=NAMES, units={"z0": "pm", "z1": "pm", "z2": "deg"})
    keep = np.zeros((3, 3), dtype=bool)
    keep[1, 0] = keep[2, 1] = True
    ax = plot_causal_graph(res, in_units=True, keep=keep, fmt="{:+.1f}")
    assert len(arrows(ax)) == 2
    labels = texts(ax)
    assert any(t.endswith("pm/pm") for t in labels) and any(t.endswith("deg/pm") for t in labels)
    with pytest.raises(ValueError, match="keep"):
        plot_causal_graph(res, keep=np.ones((2, 2), dtype=bool))
    full = plot_causal_graph(res, ax=new_axes((4.0, 4.0)))
    full.figure.draw_without_rendering()
    boxes = [t.get_window_extent() for t in full.texts if t.get_text() not in NAMES]
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for k, a in enumerate(boxes) for b in boxes[k + 1:]), "edge labels overlap"
