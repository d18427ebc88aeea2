"""The "Sliding LiNGAM" dock widget: windowed causal adjacency, aligned overlays, window inspector and PCA.

Source: the B-columns Points layer after "Descriptors" (``metadata[META_KEY]["cells"]``, or features with
``i, j`` and the descriptors) and the STEM image layer the maps are aligned on.  "Run" fits every window in a
worker thread (progress bar, Cancel); then

- "Add overlay" adds any ``effect <- cause`` coefficient map (``"Px <- Py (window 20)"``, diverging colormap,
  symmetric limits) or its bootstrap probability (``"P(Px <- Py) (window 20)"``) as an image layer whose pixels
  sit on the window centres, also for a rotated lattice;
- clicking on the canvas shows the adjacency matrix and causal graph of the window under the cursor;
- "Run PCA" shows the principal adjacency components as heatmaps and adds ``"PCA loading 1"``... layers.

Layers are only added after a job finished: a cancelled or failed run leaves the layer list untouched.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from napari.layers import Image, Layer, Points
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..lattice import DESCRIPTORS, Lattice
from ..pca import AdjacencyPCA, adjacency_pca
from ..plotting import plot_adjacency, plot_causal_graph
from ..sliding import SlidingResult, sliding_lingam
from ._mpl import MplCanvas
from ._combos import refill, track_user_picks
from .layers import META_KEY, aligned_affine, is_map_layer, map_layer_tuple, plugin_meta

KIND_COEFFICIENT = "coefficient"
KIND_PROBABILITY = "probability"


def _features_source(layer) -> tuple[pd.DataFrame, Lattice]:
    """Cell table and a fitted grid -> image-px lattice from a Points layer's ``i, j`` features."""
    features = layer.features
    if not {"i", "j"} <= set(features.columns):
        raise ValueError(
            f"layer {layer.name!r} carries no cells: run 'Descriptors' first (it adds i, j and the descriptors "
            "to the B columns layer)"
        )
    table = features.reset_index(drop=True).copy()
    yx = np.asarray(layer.data, dtype=float)[:, -2:]
    table["y"], table["x"] = yx[:, 0], yx[:, 1]
    table = table[np.isfinite(table["i"].to_numpy(dtype=float)) & np.isfinite(table["j"].to_numpy(dtype=float))]
    if len(table) < 3:
        raise ValueError(f"layer {layer.name!r} has fewer than 3 indexed cells; run 'Descriptors' first")
    design = np.column_stack([table["i"], table["j"], np.ones(len(table))])
    coef, *_ = np.linalg.lstsq(design, table[["y", "x"]].to_numpy(), rcond=None)
    return table.reset_index(drop=True), Lattice(origin=coef[2], v1=coef[1], v2=coef[0])


def overlay_name(effect: str, cause: str, window: int, *, probability: bool = False) -> str:
    """Layer name of an overlay, e.g. ``"Px <- Py (window 20)"`` or ``"P(Px <- Py) (window 20)"``."""
    edge = f"{effect} <- {cause}"
    return f"{'P(' + edge + ')' if probability else edge} (window {window})"


class SlidingWidget(QWidget):
    """Sliding LiNGAM over the cell grid, with aligned overlays, a window inspector and PCA.

    Attributes
    ----------
    jobs : JobPanel
        Runs the sliding fit in a worker thread.
    result : SlidingResult or None
        The last finished sliding result.
    pca : AdjacencyPCA or None
        The last PCA.
    overlay_layers, pca_layers : list
        Layers added by this widget.
    selected_window : (int, int) or None
        Window shown in the inspector.
    """

    def __init__(self, napari_viewer):
        from ._jobs import JobPanel

        super().__init__()
        self.viewer = napari_viewer
        self.result: SlidingResult | None = None
        self.pca: AdjacencyPCA | None = None
        self.overlay_layers: list = []
        self.pca_layers: list = []
        self.selected_window: tuple[int, int] | None = None
        self._image_layer = None

        self.source_combo = QComboBox()
        self.source_combo.setToolTip("B columns Points layer after 'Descriptors' (carries the unit cells)")
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("STEM image the maps are aligned on")
        track_user_picks(self.source_combo, self.image_combo)
        self.window_spin = self._spin(3, 10000, 20, "Window side in unit cells")
        self.stride_spin = self._spin(0, 10000, 0, "Step between windows in cells; auto = window / 2 (50 % overlap)")
        self.stride_spin.setSpecialValueText("auto")
        self.boot_spin = self._spin(0, 10000, 20, "Bootstrap resamples per window (0: no probabilities)")
        self.seed_spin = self._spin(0, 2**31 - 1, 0, "Seed of the bootstrap resampling (same seed, same maps)")
        form = QFormLayout()
        form.addRow("Cells (B columns)", self.source_combo)
        form.addRow("Align on image", self.image_combo)
        form.addRow("Window (cells)", self.window_spin)
        form.addRow("Stride (cells)", self.stride_spin)
        form.addRow("Bootstraps", self.boot_spin)
        form.addRow("Seed", self.seed_spin)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.jobs = JobPanel(self)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)

        self.effect_combo = QComboBox()
        self.cause_combo = QComboBox()
        self.kind_combo = QComboBox()
        self.kind_combo.addItems([KIND_COEFFICIENT, KIND_PROBABILITY])
        self._fill_names(DESCRIPTORS)
        edge_row = QHBoxLayout()
        edge_row.addWidget(self.effect_combo)
        edge_row.addWidget(QLabel("<-"))
        edge_row.addWidget(self.cause_combo)
        edge_row.addWidget(self.kind_combo)
        self.overlay_button = QPushButton("Add overlay")
        self.overlay_button.clicked.connect(lambda: self.add_overlay())
        overlay_box = QGroupBox("Overlay (effect <- cause)")
        overlay_layout = QVBoxLayout(overlay_box)
        overlay_layout.addLayout(edge_row)
        overlay_layout.addWidget(self.overlay_button)

        self.components_spin = self._spin(1, 64, 4, "Number of principal components")
        self.use_combo = QComboBox()
        self.use_combo.addItems(["adjacency", "abs_adjacency", "probabilities"])
        self.use_combo.setToolTip("Decompose signed coefficients, their magnitudes or bootstrap probabilities")
        self.pca_button = QPushButton("Run PCA")
        self.pca_button.clicked.connect(lambda: self.run_pca())
        pca_row = QHBoxLayout()
        pca_row.addWidget(QLabel("Components"))
        pca_row.addWidget(self.components_spin)
        pca_row.addWidget(self.use_combo)
        pca_row.addWidget(self.pca_button)
        pca_box = QGroupBox("PCA of the window adjacency")
        pca_box.setLayout(pca_row)

        self.window_label = QLabel("Run, then click on the image to inspect a window.")
        self.window_label.setWordWrap(True)
        self.window_plot = MplCanvas(figsize=(4.4, 2.8), toolbar=False)
        self.window_figure = self.window_plot.figure
        window_tab = QWidget()
        window_layout = QVBoxLayout(window_tab)
        window_layout.addWidget(self.window_label)
        window_layout.addWidget(self.window_plot)
        self.pca_plot = MplCanvas(figsize=(4.4, 4.0), toolbar=False)
        self.pca_figure = self.pca_plot.figure
        pca_scroll = QScrollArea()
        pca_scroll.setWidgetResizable(True)
        pca_scroll.setWidget(self.pca_plot)
        self.tabs = QTabWidget()
        self.tabs.addTab(window_tab, "Window")
        self.tabs.addTab(pca_scroll, "PCA components")

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.jobs)
        layout.addWidget(self.summary)
        layout.addWidget(overlay_box)
        layout.addWidget(pca_box)
        layout.addWidget(self.tabs)
        layout.addStretch(1)
        self._set_result_controls(False)

        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.viewer.mouse_drag_callbacks.append(self._on_click)
        self.destroyed.connect(self._disconnect)
        self.refresh_layers()

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _disconnect(self, *_) -> None:
        if self._on_click in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_click)

    def _fill_names(self, names) -> None:
        for combo, default in ((self.effect_combo, "Px"), (self.cause_combo, "Py")):
            current = combo.currentText()
            combo.clear()
            combo.addItems(list(names))
            pick = current if current in names else default if default in names else names[0]
            combo.setCurrentText(pick)

    def _set_result_controls(self, enabled: bool) -> None:
        for control in (self.overlay_button, self.pca_button, self.effect_combo, self.cause_combo, self.kind_combo):
            control.setEnabled(enabled)

    @staticmethod
    def _has_cells(layer) -> bool:
        meta = layer.metadata.get(META_KEY)
        if isinstance(meta, dict) and meta.get("cells") is not None:
            return True
        return {"i", "j"} <= set(layer.features.columns)

    def refresh_layers(self, event=None) -> None:
        """Refill the layer choices, keeping the current picks when they still exist."""
        sources = [layer.name for layer in self.viewer.layers if isinstance(layer, Points) and self._has_cells(layer)]
        images = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Image) and not is_map_layer(layer)
        ]
        with_cells = [n for n in sources if plugin_meta(self.viewer, n).get("cells") is not None]
        refill(self.source_combo, sources, (with_cells or sources or [None])[-1])
        meta = plugin_meta(self.viewer, self.source_combo.currentText())
        refill(self.image_combo, images, meta.get("image"))

    def _source(self):
        """(cells or table, lattice or None, image layer) from the current choices."""
        name = self.source_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise ValueError("pick the B columns layer with cells (run 'Descriptors' first)")
        layer = self.viewer.layers[name]
        image_name = self.image_combo.currentText()
        image_layer = self.viewer.layers[image_name] if image_name in self.viewer.layers else None
        cells = plugin_meta(self.viewer, name).get("cells")
        if cells is not None:
            return cells, None, image_layer
        table, lattice = _features_source(layer)
        return table, lattice, image_layer

    # ----------------------------------------------------------------- run
    def run(self):
        """Start the sliding fit in a worker; returns the started worker (None on bad input)."""
        try:
            cells, lattice, image_layer = self._source()
        except ValueError as exc:
            self.jobs.status.setText(str(exc))
            show_error(f"Sliding LiNGAM: {exc}")
            return None
        stride = self.stride_spin.value() or None

        def done(result: SlidingResult) -> None:
            self._on_result(result, image_layer)

        return self.jobs.run(
            sliding_lingam,
            cells,
            window=self.window_spin.value(),
            stride=stride,
            n_bootstrap=self.boot_spin.value(),
            seed=self.seed_spin.value(),
            lattice=lattice,
            on_result=done,
            label="Sliding LiNGAM",
        )

    def _on_result(self, result: SlidingResult, image_layer) -> None:
        if result.lattice is None:
            raise ValueError("the cells carry no lattice, so the maps cannot be placed on the image")
        self.result = result
        self.pca = None
        self._image_layer = image_layer
        self._fill_names(result.names)
        self._set_result_controls(True)
        fitted = int(result.fitted.sum())
        ny, nx = result.shape
        text = f"{fitted} of {ny * nx} windows fitted ({ny} x {nx}, window {result.window}, stride {result.stride})"
        if fitted < ny * nx:
            reasons = pd.Series(result.reasons[~result.fitted]).value_counts()
            text += f"; skipped: {reasons.index[0]}" + (" ..." if len(reasons) > 1 else "")
        self.summary.setText(text)
        self.add_overlay()
        first = np.argwhere(result.fitted)[0]
        self.show_window(int(first[0]), int(first[1]))

    # ----------------------------------------------------------------- overlays
    def add_overlay(self, effect: str | None = None, cause: str | None = None, *, probability: bool | None = None):
        """Add the ``effect <- cause`` coefficient (or probability) map of the last result; returns the layer."""
        if self.result is None:
            raise ValueError("run the sliding LiNGAM first")
        result = self.result
        effect = effect or self.effect_combo.currentText()
        cause = cause or self.cause_combo.currentText()
        if probability is None:
            probability = self.kind_combo.currentText() == KIND_PROBABILITY
        if effect == cause:
            raise ValueError(f"choose two different variables (got {effect} <- {cause})")
        if probability:
            values, units, signed = result.probability(effect, cause), "probability", False
        else:
            values, units, signed = result.element(effect, cause), result.element_units(effect, cause), True
        data, kwargs, kind = map_layer_tuple(
            values,
            result.lattice.affine,
            name=overlay_name(effect, cause, result.window, probability=probability),
            image_layer=self._image_layer,
            signed=signed,
            units=units,
            colormap=None if signed else "magma",
            metadata={META_KEY: {"sliding": result, "effect": effect, "cause": cause, "probability": probability}},
        )
        if probability:
            kwargs["contrast_limits"] = (0.0, 1.0)
        if self._image_layer is not None:
            kwargs["units"] = self._image_layer.units
        layer = self.viewer.add_layer(Layer.create(data, kwargs, kind))
        self.overlay_layers.append(layer)
        return layer

    # ----------------------------------------------------------------- window inspector
    def grid_to_world(self) -> np.ndarray:
        """(3, 3) matrix: window index ``(ky, kx, 1)`` -> world ``(y, x, 1)`` for the last result."""
        if self.result is None:
            raise ValueError("run the sliding LiNGAM first")
        return aligned_affine(self.result.lattice.affine, self._image_layer)

    def window_at(self, world_position) -> tuple[int, int] | None:
        """Window index ``(ky, kx)`` whose centre is nearest to a world position, None outside the windows."""
        if self.result is None:
            return None
        yx = np.asarray(world_position, dtype=float)[-2:]
        k = np.linalg.solve(self.grid_to_world(), np.array([yx[0], yx[1], 1.0]))[:2]
        ky, kx = (int(v) for v in np.round(k))
        ny, nx = self.result.shape
        return (ky, kx) if 0 <= ky < ny and 0 <= kx < nx else None

    def _on_click(self, viewer, event) -> None:
        if event.type != "mouse_press" or self.result is None:
            return
        index = self.window_at(event.position)
        if index is not None:
            self.show_window(*index)

    def show_window(self, ky: int, kx: int) -> pd.DataFrame:
        """Show window ``(ky, kx)``'s adjacency heatmap and causal graph in the dock; returns its adjacency."""
        if self.result is None:
            raise ValueError("run the sliding LiNGAM first")
        result = self.result
        self.selected_window = (ky, kx)
        centre = result.centers_grid[ky, kx]
        text = (
            f"Window ({ky}, {kx}): centre cell (i, j) = ({centre[0]:g}, {centre[1]:g}), "
            f"{result.n_cells[ky, kx]} cells"
        )
        self.window_figure.clear()
        if not result.fitted[ky, kx]:
            self.window_label.setText(f"{text}; skipped: {result.reasons[ky, kx]}")
            self.window_plot.draw()
            return result.window_adjacency(ky, kx)
        order = " -> ".join(result.names[k] for k in result.orders[ky, kx])
        self.window_label.setText(f"{text}; causal order {order}")
        heat, graph = self.window_figure.subplots(1, 2, width_ratios=(1, 1.3))
        scale = "standardized" if result.standardized else "descriptor units"
        plot_adjacency(result.adjacency[ky, kx], result.names, heat, title=f"adjacency ({scale})", signed=True,
                       annotate=False, colorbar=False)
        plot_causal_graph(result.window_result(ky, kx), ax=graph, title="causal graph")
        self.window_plot.draw()
        self.tabs.setCurrentIndex(0)
        return result.window_adjacency(ky, kx)

    # ----------------------------------------------------------------- PCA
    def run_pca(self, n_components: int | None = None, *, use: str | None = None) -> AdjacencyPCA | None:
        """PCA of the last result: component heatmaps in the dock, ``"PCA loading k"`` layers; returns the PCA."""
        if self.result is None:
            raise ValueError("run the sliding LiNGAM first")
        n_components = n_components or self.components_spin.value()
        use = use or self.use_combo.currentText()
        try:
            pca = adjacency_pca(self.result, n_components, use=use)
        except ValueError as exc:
            self.jobs.status.setText(str(exc))
            show_error(f"PCA: {exc}")
            return None
        self.pca = pca
        layers = []
        for k in range(pca.n_components):
            data, kwargs, kind = map_layer_tuple(
                pca.loadings[k],
                pca.lattice.affine,
                name=f"PCA loading {k + 1}",
                image_layer=self._image_layer,
                signed=True,
                units="score",
                metadata={META_KEY: {"pca": pca, "component": k}},
            )
            if self._image_layer is not None:
                kwargs["units"] = self._image_layer.units
            kwargs["visible"] = k == 0
            layers.append(self.viewer.add_layer(Layer.create(data, kwargs, kind)))
        self.pca_layers.extend(layers)
        self._draw_components(pca)
        return pca

    def _draw_components(self, pca: AdjacencyPCA) -> None:
        self.pca_figure.clear()
        k = pca.n_components
        cols = min(k, 2)
        rows = -(-k // cols)
        self.pca_plot.setMinimumHeight(200 * rows)
        axes = self.pca_figure.subplots(rows, cols, squeeze=False)
        for index, ax in enumerate(axes.ravel()):
            if index >= k:
                ax.remove()
                continue
            plot_adjacency(
                pca.components[index],
                pca.names,
                ax,
                title=f"PC{index + 1} ({pca.explained_variance_ratio[index]:.0%} of variance)",
                signed=True,
                annotate=False,
                colorbar=False,
            )
            if index % cols:
                ax.set_yticklabels([])
                ax.set_ylabel("")
            if index + cols < k:
                ax.set_xticklabels([])
                ax.set_xlabel("")
        self.pca_plot.draw()
        self.tabs.setCurrentIndex(1)
