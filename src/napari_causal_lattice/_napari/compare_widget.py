"""The "Compare images" dock widget: causal couplings across several images grouped e.g. by composition.

A table lists the image layers (tick the ones to use, type a group label for each) and any results folders
added with "Add results folder..." (their cells are refitted with the shared parameters).  "Compare" runs
:func:`~napari_causal_lattice.compare.compare_stem_images` in a worker (columns -> cells -> fit per image,
progress over images), then shows three tabs: the causal graph of every group side by side (mean adjacency of
the group's images, edges with a mean bootstrap probability of at least "min probability"), the chosen coupling
vs group with confidence intervals (Figs. 5/7 of the paper), and the groups' adjacency matrices side by side.
The graphs share one node layout (a circle), so the same arrow sits at the same place in every group.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTabWidget,
    QTableWidget,
    QTableWidgetItem,
)

from ..lattice import DESCRIPTORS
from ._dock import DockWidget
from ._forms import form_options, options_form
from ._jobs import JobPanel
from ._mpl import MplCanvas, draw_graph
from .layers import META_KEY, is_map_layer

_USE, _NAME, _GROUP = range(3)
#: Options shown first in the form (the others of CompareOptions follow in field order).
COMPARE_FORM_FIRST = ("n_bootstrap", "seed")
#: Most causal-graph panels in one row of the "causal graphs" tab.
_GRAPH_COLUMNS = 3
#: Node order on the graphs' circle, clockwise from the top: the couplings the paper discusses (Px <- Py,
#: Vol <- a, Vol <- b, Py <- I5) become long chords instead of short arrows hidden under their labels.
_CIRCLE_ORDER = ("Vol", "I14", "a", "Px", "alpha", "I5", "b", "Py")


def is_stem_image(layer) -> bool:
    """True for a 2D grey image layer that is not one of our derived maps (descriptor, overlay, loading)."""
    return isinstance(layer, Image) and layer.ndim == 2 and not layer.rgb and not is_map_layer(layer)


def layer_pixel_size(layer) -> float | None:
    """pm per px of an image layer: the reader's / sample's ``metadata[META_KEY]["pixel_size"]``, else the
    layer scale when it carries a length unit, else None (lengths in px)."""
    meta = layer.metadata.get(META_KEY)
    if isinstance(meta, dict) and meta.get("pixel_size") is not None:
        return float(np.ravel(meta["pixel_size"])[-1])
    units = getattr(layer, "units", None)
    if units is None or str(units[-1].dimensionality) != "[length]":
        return None
    return float(layer.scale[-1] * (1 * units[-1]).to("pm").magnitude)


class CompareWidget(DockWidget):
    """Compare causal couplings across images and groups.

    Attributes
    ----------
    jobs : JobPanel
        Runs the comparison.
    result : ComparisonResult or None
        Last comparison.
    tabs : QTabWidget
        "causal graphs", "coupling vs group", "adjacency matrices".
    graph_figure : matplotlib Figure
        One causal graph per group (:func:`~napari_causal_lattice.plotting.plot_causal_graph`).
    figure : matplotlib Figure
        The chosen coupling vs group.
    matrix_figure : matplotlib Figure
        The groups' mean adjacency matrices on one colour scale (and a colour bar).
    """

    title = "Compare images"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.result = None
        self._folders: dict[str, object] = {}
        layout = self.body_layout
        self._build_image_table()
        layout.addLayout(self._build_form())
        layout.addWidget(self.run_button)
        layout.addWidget(self.jobs)
        layout.addWidget(self._build_tabs(), 1)
        self._connect()
        self.refresh_layers()
        self.redraw()

    def _build_image_table(self) -> None:
        """The table of images (use, name, group label) and the "Add results folder..." button."""
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["use", "image", "group"])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(_USE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_NAME, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(_GROUP, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(130)
        self.run_button = QPushButton("Compare")
        self.run_button.clicked.connect(self.guarded(self.run))
        self.jobs = JobPanel()
        intro = QLabel("Images (tick to use; type a group label, e.g. the composition):")
        intro.setWordWrap(True)
        self.body_layout.addWidget(intro)
        self.body_layout.addWidget(self.table)
        self.add_folder_button = QPushButton("Add results folder...")
        self.add_folder_button.clicked.connect(self._choose_folder)
        self.body_layout.addWidget(self.add_folder_button)

    def _build_form(self) -> QFormLayout:
        """The comparison's options (a form generated from CompareOptions) and the display choices."""
        form = QFormLayout()
        self.options = options_form("compare", COMPARE_FORM_FIRST)
        self.n_bootstrap = self.options.n_bootstrap.native
        self.seed = self.options.seed.native
        form.addRow(self.options.native)
        self.effect = QComboBox()
        self.cause = QComboBox()
        self.effect.addItems(DESCRIPTORS)
        self.cause.addItems(DESCRIPTORS)
        self.effect.setCurrentText("Px")
        self.cause.setCurrentText("Py")
        pair = QHBoxLayout()
        pair.addWidget(self.effect)
        pair.addWidget(QLabel("<-"))
        pair.addWidget(self.cause)
        form.addRow("coupling to plot", pair)
        self.min_probability = QDoubleSpinBox()
        self.min_probability.setRange(0.0, 1.0)
        self.min_probability.setSingleStep(0.05)
        self.min_probability.setValue(0.5)
        self.min_probability.setToolTip("graph arrows need at least this mean bootstrap probability in the group")
        form.addRow("graphs: min probability", self.min_probability)
        return form

    def _build_tabs(self) -> QTabWidget:
        """The three result tabs: causal graphs per group, the coupling vs group, the adjacency matrices."""
        theme = lambda: self.viewer.theme  # noqa: E731
        self.graph_canvas = MplCanvas(figsize=(6, 3.4), theme=theme)
        self.coupling_canvas = MplCanvas(figsize=(5, 3.4), theme=theme)
        self.matrix_canvas = MplCanvas(figsize=(6, 3.4), theme=theme)
        self.graph_figure = self.graph_canvas.figure
        self.figure = self.coupling_canvas.figure
        self.matrix_figure = self.matrix_canvas.figure
        self.tabs = QTabWidget()
        self.tabs.addTab(self.graph_canvas, "causal graphs")
        self.tabs.addTab(self.coupling_canvas, "coupling vs group")
        self.tabs.addTab(self.matrix_canvas, "adjacency matrices")
        self.tabs.setMinimumHeight(360)
        return self.tabs

    def _connect(self) -> None:
        """Redraw on a new coupling or threshold; follow the layer list and the theme."""
        self.effect.currentTextChanged.connect(self._coupling_changed)
        self.cause.currentTextChanged.connect(self._coupling_changed)
        self.min_probability.valueChanged.connect(self.draw_graphs)
        self.listen_layers(self.refresh_layers)
        self.listen(self.viewer.events.theme, lambda _event: self._retheme())

    def selection(self) -> dict[str, tuple[bool, str]]:
        """Image or folder name -> (ticked, group label), in table order."""
        out = {}
        for r in range(self.table.rowCount()):
            name = self.table.item(r, _NAME).text()
            use = self.table.item(r, _USE).checkState() == Qt.CheckState.Checked
            out[name] = (use, self.table.item(r, _GROUP).text())
        return out

    def refresh_layers(self, event=None) -> None:
        """List the 2D image layers and added results folders, keeping earlier ticks and group labels."""
        previous = self.selection()
        names = [layer.name for layer in self.viewer.layers if is_stem_image(layer)]
        names += list(self._folders)
        self.table.setRowCount(0)
        for name in names:
            use, group = previous.get(name, (True, "all"))
            r = self.table.rowCount()
            self.table.insertRow(r)
            check = QTableWidgetItem()
            check.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            check.setCheckState(Qt.CheckState.Checked if use else Qt.CheckState.Unchecked)
            label = QTableWidgetItem(name)
            label.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.table.setItem(r, _USE, check)
            self.table.setItem(r, _NAME, label)
            self.table.setItem(r, _GROUP, QTableWidgetItem(group))
        self.run_button.setEnabled(bool(names))
        self.run_button.setToolTip("" if names else "Needs an image layer or a results folder to compare")

    def set_group(self, name: str, group: str, *, use: bool = True) -> None:
        """Set the group label (and the tick) of the image or folder ``name``."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, _NAME).text() == name:
                self.table.item(r, _GROUP).setText(str(group))
                self.table.item(r, _USE).setCheckState(Qt.CheckState.Checked if use else Qt.CheckState.Unchecked)
                return
        raise ValueError(f"no image or results folder named {name!r} in the list")

    def add_results(self, path) -> str:
        """Add the cells of a results folder (from save_results / the CLI) as one more image; returns its name."""
        from ..store import load_results

        results = load_results(path)
        if results.cells is None:
            raise ValueError(f"{path} holds no cells; run the analysis up to Descriptors before comparing it")
        name = f"{Path(path).name} (results)"
        self._folders[name] = results.cells
        self.refresh_layers()
        return name

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Results folder")
        if path:
            try:
                self.add_results(path)
            except ValueError as exc:
                show_error(str(exc))

    def _retheme(self) -> None:
        for canvas in (self.graph_canvas, self.coupling_canvas, self.matrix_canvas):
            canvas.retheme()

    def run(self):
        """Start the comparison of the ticked images with the options of the form; returns the worker."""
        from ..compare import compare_stem_images

        images, groups, sizes = {}, {}, {}
        for name, (use, group) in self.selection().items():
            if not use:
                continue
            if not group.strip():
                raise ValueError(f"image {name!r} has no group label; type one (e.g. its composition)")
            if name in self._folders:
                images[name] = self._folders[name]
            else:
                layer = self.viewer.layers[name]
                images[name] = np.asarray(layer.data, dtype=float)
                sizes[name] = layer_pixel_size(layer)
            groups[name] = group.strip()
        if not images:
            raise ValueError("tick at least one image layer (or add a results folder) to compare")
        options = form_options("compare", self.options)
        return self.jobs.run(
            compare_stem_images, images, groups, pixel_size=sizes, options=options, on_result=self._on_result,
            label="compare images",
        )

    def _on_result(self, result) -> None:
        self.result = result
        self.redraw()
        self.tabs.setCurrentWidget(self.graph_canvas)

    def _coupling_changed(self, *args) -> None:
        self.draw_coupling()
        self.tabs.setCurrentWidget(self.coupling_canvas)

    #: Edges with |mean coefficient| at or below this are not drawn in the group graphs.
    min_abs = 0.01

    def redraw(self, *args) -> None:
        """Draw all three tabs from the last result (a hint when there is none yet)."""
        self.draw_graphs()
        self.draw_coupling()
        self.draw_matrices()

    def _hint(self, canvas) -> bool:
        """Show the "press Compare" hint on an empty canvas; True when there is no result to draw."""
        if self.result is not None:
            return False

        def draw(figure) -> None:
            ax = figure.add_subplot()
            ax.text(0.5, 0.5, "tick images, type their groups,\nthen press Compare", ha="center", va="center",
                    transform=ax.transAxes, color="0.5", fontsize="small")
            ax.set_axis_off()

        canvas.plot(draw)
        return True

    def draw_graphs(self, *args) -> None:
        """One causal graph per group, side by side (at most 3 per row), edges with P >= min probability."""
        from ..figures import plot_causal_graph

        if self._hint(self.graph_canvas):
            return
        result = self.result
        groups = result.group_names
        ncols = min(len(groups), _GRAPH_COLUMNS)
        nrows = -(-len(groups) // ncols)
        unit = "std/std" if result.standardized else "units of effect / cause"
        names = list(result.names)
        ordered = [n for n in _CIRCLE_ORDER if n in names] + [n for n in names if n not in _CIRCLE_ORDER]
        index = np.ix_([names.index(n) for n in ordered], [names.index(n) for n in ordered])
        min_probability = self.min_probability.value()

        def draw(figure) -> None:
            axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
            for ax in axes[len(groups):]:
                ax.set_axis_off()
            for ax, group in zip(axes, groups):
                n_images = sum(g == group for g in result.groups)
                draw_graph(plot_causal_graph, result.group_adjacency(group)[index], ordered, ax=ax,
                                  probabilities=group_probabilities(result, group)[index],
                                  min_probability=min_probability, min_abs=self.min_abs, fmt="{:+.2g}",
                                  layout="circle", title=f"{group} ({n_images} image{'s' if n_images != 1 else ''})")
            figure.suptitle(f"mean coefficients [{unit}]\nP = mean bootstrap probability >= {min_probability:.2f}",
                            fontsize=8)

        self.graph_canvas.canvas.setMinimumHeight(300 * nrows)
        self.graph_canvas.plot(draw)

    def draw_coupling(self, *args) -> None:
        """The chosen coupling ``effect <- cause`` vs group, with confidence intervals."""
        from ..figures import plot_coefficient_vs_group

        if self._hint(self.coupling_canvas):
            return
        effect, cause = self.effect.currentText(), self.cause.currentText()
        result = self.result

        def draw(figure) -> None:
            ax = figure.add_subplot()
            if effect != cause and effect in result.names and cause in result.names:
                plot_coefficient_vs_group(ax, result, effect, cause)
            else:
                ax.text(0.5, 0.5, "choose two different variables", ha="center", va="center",
                        transform=ax.transAxes)

        self.coupling_canvas.plot(draw)

    def draw_matrices(self, *args) -> None:
        """The groups' mean adjacency matrices side by side on one colour scale."""
        from ..figures import plot_group_adjacency

        if self._hint(self.matrix_canvas):
            return
        result = self.result

        def draw(figure) -> None:
            axes = figure.subplots(1, len(result.group_names), squeeze=False)[0]
            image = plot_group_adjacency(axes, result)
            label = "coefficient [std/std]" if result.standardized else "coefficient (symlog)"
            bar = figure.colorbar(image, ax=list(axes), shrink=0.8, label=label)
            top_value = image.norm.vmax
            ticks = (-top_value, -top_value / 100, 0.0, top_value / 100, top_value)
            bar.set_ticks(ticks)
            bar.set_ticklabels([f"{v:.2g}" for v in ticks])

        self.matrix_canvas.plot(draw)


def group_probabilities(result, group: str) -> np.ndarray:
    """(p, p) mean bootstrap probability of each edge ``effect <- cause`` over the images of ``group``.

    Read from the group rows of ``result.table``; 0 on the diagonal and for pairs without a row.
    """
    names = list(result.names)
    rows = result.table[(result.table["level"] == "group") & (result.table["group"] == group)]
    out = np.zeros((len(names), len(names)))
    effect = rows["effect"].map(names.index).to_numpy()
    cause = rows["cause"].map(names.index).to_numpy()
    out[effect, cause] = rows["probability"].to_numpy(dtype=float)
    return np.nan_to_num(out, nan=0.0)
