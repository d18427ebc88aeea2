"""The "Sliding LiNGAM" dock widget: windowed causal adjacency, aligned overlays, window inspector and PCA.

Source: the B-columns Points layer after "Descriptors" (``metadata[META_KEY]["cells"]``, or features with
``i, j`` and the descriptors) and the STEM image layer the maps are aligned on.  "Run" fits every window in a
worker thread (progress bar, Cancel); then

- the default overlay and "Add overlay" add an ``effect <- cause`` coefficient map (``"Px <- Py (window 20)"``,
  diverging colormap, robust symmetric limits), its bootstrap probability (``"P(Px <- Py) (window 20)"``), the
  coefficient in the windows where the edge passes the calibrated test only (``"Px <- Py, significant (window
  20)"``, the other windows transparent) or the link-type map of the pair (``"link Px, Py (window 20)"``, a labels
  layer: none / Px <- Py / Py <- Px / both, with a legend in the dock).  With cells on an image, each cell shows
  the value of its nearest window painted on its own region of the image (``placement.window_values_per_cell``
  and the cells' ``cell_regions``, computed in the worker), so maps follow curved lattices; otherwise the
  layer's pixels sit on the window centres.  Only the newest map is visible, below the column layers, with its
  colour bar;
- clicking on the canvas shows the adjacency matrix and the causal graph of the significant edges of the window
  under the cursor, with the edge criterion (e.g. "order t-test, alpha 0.01, BH");
- "Run PCA" computes the principal adjacency components in a worker (optionally of the significant elements
  only), reports the outlier windows it left out, shows the components as heatmaps and adds the loading picked
  in "Show loading" (``"PCA loading 1"``); other loadings are added when picked.

The forms are generated from the options classes with the defaults of ``analyze`` (``_forms.py``): ``params``
from :class:`~napari_causal_lattice.options.SlidingOptions` (window and stride, "auto" at their lowest value; the
edge decision: ``alpha``, FDR control none / BH / BY over the run, leaving out deterministic descriptors such as
Vol = a b sin(alpha)) and ``pca_params`` from :class:`~napari_causal_lattice.options.PCAOptions`; a
``DeterministicDescriptorWarning`` is shown as a notification and in the summary.

Layers are only added after a job finished (one per event-loop turn): a cancelled or failed run leaves the layer
list untouched, and a dock closed meanwhile adds nothing.  The significance mask of a result
(``SlidingResult.significant``; None for results of older versions) drives the "significant only" and "link type"
overlays, the inspector (:func:`significant_edge`) and the PCA option.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from napari.layers import Image, Points
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..lattice import DESCRIPTORS, Lattice, fit_lattice
from ..pca import AdjacencyPCA, adjacency_pca
from ..placement import CellRaster, cell_regions, window_values_per_cell
from ..figures import plot_adjacency, plot_causal_graph
from ..sliding import SlidingResult, sliding_lingam
from ._combos import refill, track_user_picks
from ._dock import DockWidget
from ._edges import LINK_COLORS, criterion_text, link_legend_html, link_names
from ._forms import form_options, options_form
from ._jobs import JobPanel
from ._mpl import MplCanvas, draw_graph, pruned
from .layers import (
    META_KEY,
    add_map_layer,
    aligned_affine,
    image_shape,
    is_map_layer,
    is_truth_layer,
    link_layer_tuple,
    map_layer_tuple,
    plugin_meta,
    raster_affine,
    show_only,
    update_layer,
)

KIND_COEFFICIENT = "coefficient"
KIND_PROBABILITY = "probability"
KIND_SIGNIFICANT = "significant only"
KIND_LINK = "link type"
OVERLAY_KINDS = (KIND_COEFFICIENT, KIND_PROBABILITY, KIND_SIGNIFICANT, KIND_LINK)
#: SlidingOptions shown first in the dock's form (the others follow in field order).
SLIDING_FORM_FIRST = ("window", "stride", "n_bootstrap", "seed")


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
    return table.reset_index(drop=True), fit_lattice(table[["y", "x"]].to_numpy(), table[["i", "j"]].to_numpy())


def significant_edge(result: SlidingResult, ky: int, kx: int) -> np.ndarray | None:
    """(p, p) bool: the calibrated edge decision of window ``(ky, kx)``, None when the result has none."""
    significant = getattr(result, "significant", None)
    return None if significant is None else np.asarray(significant[ky, kx], dtype=bool)


def sliding_job(cells, *, raster: CellRaster | None = None, image_shape: tuple | None = None, progress=None,
                cancel=None, **options) -> tuple[SlidingResult, CellRaster | None]:
    """:func:`~napari_causal_lattice.sliding.sliding_lingam` of ``cells`` with ``options``, then the cells'
    regions on an image of ``image_shape`` (H, W) px (:func:`~napari_causal_lattice.placement.cell_regions`),
    unless ``raster`` is given or there is no image; returns ``(result, raster or None)``."""
    result = sliding_lingam(cells, progress=progress, cancel=cancel, **options)
    if raster is None and image_shape is not None:
        raster = cell_regions(cells, image_shape)
    return result, raster


def pca_job(result: SlidingResult, *, options, progress=None, cancel=None) -> AdjacencyPCA:
    """:func:`~napari_causal_lattice.pca.adjacency_pca` with PCAOptions ``options`` and the job panel's
    progress/cancel arguments."""
    pca = adjacency_pca(result, options=options)
    if progress is not None:
        progress(1, 1)
    return pca


def overlay_name(effect: str, cause: str, window: int, *, probability: bool = False, kind: str | None = None) -> str:
    """Layer name of an overlay of ``kind`` (one of :data:`OVERLAY_KINDS`; ``probability=True`` is
    :data:`KIND_PROBABILITY`), e.g. ``"Px <- Py (window 20)"``, ``"P(Px <- Py) (window 20)"``,
    ``"Px <- Py, significant (window 20)"`` or ``"link Px, Py (window 20)"``."""
    kind = kind or (KIND_PROBABILITY if probability else KIND_COEFFICIENT)
    edge = f"{effect} <- {cause}"
    label = {
        KIND_COEFFICIENT: edge,
        KIND_PROBABILITY: f"P({edge})",
        KIND_SIGNIFICANT: f"{edge}, significant",
        KIND_LINK: f"link {effect}, {cause}",
    }[kind]
    return f"{label} (window {window})"


def outlier_text(pca: AdjacencyPCA) -> str:
    """One line on the windows the PCA left out as outliers (and the caller's exclusions), e.g.
    ``"PCA of 33 windows (significant elements only); 2 outlier windows left out: (0, 3), (4, 6)"``."""
    params = pca.provenance.get("params", {})
    text = f"PCA of {params.get('n_windows', '?')} windows" + (
        " (significant elements only)" if pca.significant_only else "")
    outliers = np.argwhere(pca.outliers) if pca.outliers is not None else np.zeros((0, 2), dtype=int)
    if len(outliers):
        listed = ", ".join(f"({ky}, {kx})" for ky, kx in outliers[:6]) + (" ..." if len(outliers) > 6 else "")
        text += f"; {len(outliers)} outlier window{'s' if len(outliers) > 1 else ''} left out: {listed}"
    else:
        text += "; no outlier window left out"
    return text


class SlidingWidget(DockWidget):
    """Sliding LiNGAM over the cell grid, with aligned overlays, a window inspector and PCA.

    Attributes
    ----------
    jobs : JobPanel
        Runs the sliding fit and the PCA in a worker thread.
    result : SlidingResult or None
        The last finished sliding result.
    pca : AdjacencyPCA or None
        The last PCA.
    overlay_layers, pca_layers : list
        Layers added by this widget.
    selected_window : (int, int) or None
        Window shown in the inspector.
    warnings : list of Warning
        Warnings of the last run (e.g. ``DeterministicDescriptorWarning``), also shown as notifications.
    """

    title = "Sliding LiNGAM"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.result: SlidingResult | None = None
        self.pca: AdjacencyPCA | None = None
        self.overlay_layers: list = []
        self.pca_layers: list = []
        self.selected_window: tuple[int, int] | None = None
        self.warnings: list[Warning] = []
        self._image_layer = None
        self._placement: tuple | None = None
        form = self._build_form()
        overlay_box = self._build_overlay()
        pca_box = self._build_pca()
        layout = self.body_layout
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.keep_layers_check())
        layout.addWidget(self.jobs)
        layout.addWidget(self.summary)
        layout.addWidget(overlay_box)
        layout.addWidget(pca_box)
        layout.addWidget(self._build_plots())
        self._set_result_controls(False)
        self.listen_layers(self.refresh_layers)
        self.listen(self.viewer.events.theme, lambda _event: self._retheme())
        self.add_mouse_callback(self._on_click)
        self.refresh_layers()

    def _build_form(self) -> QFormLayout:
        """The cells and image pickers, the sliding fit's options (a form generated from SlidingOptions), Run."""
        self.source_combo = QComboBox()
        self.source_combo.setToolTip("B columns Points layer after 'Descriptors' (carries the unit cells)")
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("STEM image the maps are aligned on")
        self.source_combo.currentTextChanged.connect(lambda text: self.run_button.setEnabled(bool(text)))
        track_user_picks(self.source_combo, self.image_combo)
        # the parameters: a magicgui form (typed, scriptable: ``widget.params.window.value = 12``) generated from
        # SlidingOptions, with the defaults of a whole analysis (the CLI's): one definition.  Window and stride
        # read "auto" at their lowest value; the Qt spin boxes underneath stay reachable as attributes for scripts
        self.params = options_form("sliding", SLIDING_FORM_FIRST)
        self.window_spin = self.params.window.native
        self.stride_spin = self.params.stride.native
        self.boot_spin = self.params.n_bootstrap.native
        self.seed_spin = self.params.seed.native
        form = QFormLayout()
        form.addRow("Cells (B columns)", self.source_combo)
        form.addRow("Align on image", self.image_combo)
        form.addRow(self.params.native)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.guarded(self.run))
        self.jobs = JobPanel(self)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        return form

    def _build_overlay(self) -> QGroupBox:
        """The overlay controls: the coupling (effect <- cause), the kind of map and Add overlay."""
        self.effect_combo = QComboBox()
        self.cause_combo = QComboBox()
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(list(OVERLAY_KINDS))
        self.kind_combo.setToolTip("Coefficient, bootstrap probability, coefficient where the edge is significant "
                                   "(other windows transparent), or the link type of the pair")
        self._fill_names(DESCRIPTORS)
        edge_row = QHBoxLayout()
        edge_row.addWidget(self.effect_combo)
        edge_row.addWidget(QLabel("<-"))
        edge_row.addWidget(self.cause_combo)
        self.overlay_button = QPushButton("Add overlay")
        self.overlay_button.clicked.connect(self.guarded(self.add_overlay))
        overlay_box = QGroupBox("Overlay (effect <- cause)")
        overlay_layout = QVBoxLayout(overlay_box)
        overlay_layout.addLayout(edge_row)
        kind_row = QHBoxLayout()
        kind_row.addWidget(self.kind_combo, 1)
        kind_row.addWidget(self.overlay_button)
        overlay_layout.addLayout(kind_row)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.setVisible(False)
        overlay_layout.addWidget(self.legend)
        return overlay_box

    def _build_pca(self) -> QGroupBox:
        """The PCA's options (a form generated from PCAOptions), Run PCA and the loading-map picker."""
        # the PCA's options: generated from PCAOptions (defaults of a whole analysis, as the CLI's)
        self.pca_params = options_form("pca", ("n_components", "use"))
        self.components_spin = self.pca_params.n_components.native
        self.use_combo = self.pca_params.use.native
        self.significant_only_check = self.pca_params.significant_only.native
        self.pca_button = QPushButton("Run PCA")
        self.pca_button.clicked.connect(self.guarded(self.run_pca))
        self.loading_combo = QComboBox()
        self.loading_combo.setToolTip("Loading map shown on the image (added when first picked)")
        self.loading_combo.currentIndexChanged.connect(self.guarded(lambda: self.show_loading()))
        pca_form = QFormLayout()
        pca_form.addRow(self.pca_params.native)
        pca_form.addRow(self.pca_button)
        self.pca_summary = QLabel("")
        self.pca_summary.setWordWrap(True)
        pca_form.addRow(self.pca_summary)
        pca_form.addRow("Show loading", self.loading_combo)
        pca_box = QGroupBox("PCA of the window adjacency")
        pca_box.setLayout(pca_form)
        return pca_box

    def _build_plots(self) -> QTabWidget:
        """The tabs: the clicked window's graph and matrices, and the PCA components."""
        self.window_label = QLabel("Run, then click on the image to inspect a window.")
        self.window_label.setWordWrap(True)
        theme = lambda: self.viewer.theme  # noqa: E731
        self.window_plot = MplCanvas(figsize=(4.2, 6.4), toolbar=False, theme=theme, min_height=440)
        self.window_figure = self.window_plot.figure
        window_tab = QWidget()
        window_layout = QVBoxLayout(window_tab)
        window_layout.addWidget(self.window_label)
        window_layout.addWidget(self.window_plot)
        self.pca_plot = MplCanvas(figsize=(4.2, 4.0), toolbar=False, theme=theme)
        self.pca_figure = self.pca_plot.figure
        self.tabs = QTabWidget()
        self.tabs.addTab(window_tab, "Window")
        self.tabs.addTab(self.pca_plot, "PCA components")
        return self.tabs


    # ----------------------------------------------------------------- helpers
    def _retheme(self) -> None:
        self.window_plot.retheme()
        self.pca_plot.retheme()

    def _fill_names(self, names) -> None:
        for combo, default in ((self.effect_combo, "Px"), (self.cause_combo, "Py")):
            current = combo.currentText()
            combo.clear()
            combo.addItems(list(names))
            pick = current if current in names else default if default in names else names[0]
            combo.setCurrentText(pick)

    def _set_result_controls(self, enabled: bool) -> None:
        for control in (self.overlay_button, self.pca_button, self.effect_combo, self.cause_combo, self.kind_combo,
                        self.components_spin, self.use_combo):
            control.setEnabled(enabled)
        has_mask = enabled and self.result is not None and self.result.significant is not None
        self.significant_only_check.setEnabled(has_mask)
        self.loading_combo.setEnabled(enabled and self.pca is not None)

    @staticmethod
    def _has_cells(layer) -> bool:
        meta = layer.metadata.get(META_KEY)
        if isinstance(meta, dict) and meta.get("cells") is not None:
            return True
        return {"i", "j"} <= set(layer.features.columns)

    def refresh_layers(self, event=None) -> None:
        """Refill the layer choices: the newest layer with cells and its image, unless picked by hand."""
        sources = [layer.name for layer in self.viewer.layers if isinstance(layer, Points) and self._has_cells(layer)]
        images = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Image) and not is_map_layer(layer)
        ]
        usable = [n for n in sources if not is_truth_layer(self.viewer.layers[n])]
        with_cells = [n for n in usable if plugin_meta(self.viewer, n).get("cells") is not None]
        refill(self.source_combo, sources, (with_cells or usable or [None])[-1], auto_first=False)
        meta = plugin_meta(self.viewer, self.source_combo.currentText())
        refill(self.image_combo, images, meta.get("image"))
        self.run_button.setEnabled(bool(self.source_combo.currentText()))
        if self.result is not None and self._image_layer is not None and self._image_layer not in self.viewer.layers:
            self.clear_result()

    def clear_result(self) -> None:
        """Forget the last result (its image is gone): no summary, inspector, PCA or result buttons."""
        self.result, self.pca, self._placement, self._image_layer = None, None, None, None
        self.overlay_layers, self.pca_layers = [], []
        self.selected_window = None
        self.summary.setText("")
        self.pca_summary.setText("")
        self.legend.setVisible(False)
        self.loading_combo.clear()
        self.window_label.setText("Run, then click on the image to inspect a window.")
        self.window_plot.plot(lambda figure: None)
        self.pca_plot.plot(lambda figure: None)
        self._set_result_controls(False)

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
        """Start the sliding fit in a worker; returns the started worker.

        Raises
        ------
        ValueError
            No usable cells source (the Run button shows it as a notification).
        """
        cells, lattice, image_layer = self._source()
        options = form_options("sliding", self.params)
        self.warnings = []
        # per-window maps are painted on the cells' regions of the image (a Cells source on an image only)
        placed = lattice is None and image_layer is not None
        shape = image_shape(image_layer) if placed else None
        raster = plugin_meta(self.viewer, self.source_combo.currentText()).get("cell_raster") if placed else None
        if raster is not None and tuple(raster.image_shape) != shape:
            raster = None

        def done(out: tuple[SlidingResult, CellRaster | None]):
            result, regions = out
            return self._on_result(result, image_layer, None if regions is None else (cells, regions))

        return self.jobs.run(
            sliding_job,
            cells,
            raster=raster,
            image_shape=shape,
            lattice=lattice,
            options=options,
            on_result=done,
            on_warning=self.warnings.append,
            label="Sliding LiNGAM",
        )

    def _on_result(self, result: SlidingResult, image_layer, placement: tuple | None = None):
        """Generator run by the job panel: summary, then the default overlay, then the inspector.

        ``placement`` is ``(cells, CellRaster)`` to paint per-window maps on the cells' regions, None to place
        them with the window lattice.
        """
        if result.lattice is None:
            raise ValueError("the cells carry no lattice, so the maps cannot be placed on the image")
        # the overlays that the new result can draw are refreshed; the PCA layers (no variables) go
        recycled = self.recycle_own_layers([*self.overlay_layers, *self.pca_layers],
                                           usable=lambda layer: self._same_variables(layer, result))
        old_overlays = [layer for layer in recycled if layer is not None]
        self.overlay_layers, self.pca_layers = [], []
        self.result = result
        self._placement = placement
        self.pca = None
        self.pca_summary.setText("")
        self.loading_combo.clear()
        self._image_layer = image_layer
        self._fill_names(result.names)
        self._set_result_controls(True)
        fitted = int(result.fitted.sum())
        ny, nx = result.shape
        text = f"{fitted} of {ny * nx} windows fitted ({ny} x {nx}, window {result.window}, stride {result.stride})"
        if fitted < ny * nx:
            reasons = pd.Series(result.reasons[~result.fitted]).value_counts()
            text += f"; skipped: {reasons.index[0]}" + (" ..." if len(reasons) > 1 else "")
        params = result.provenance.get("params", {})
        text += f".\nEdges: {criterion_text(params)}"
        if result.significant is not None:
            shown = result.significant[result.fitted]
            off_diagonal = shown.shape[0] * result.significant.shape[-1] * (result.significant.shape[-1] - 1)
            text += f" ({int(shown.sum())} of {off_diagonal} window edges pass)"
        dropped = params.get("dropped_deterministic") or []
        if dropped:
            text += f".\nLeft out as deterministic: {', '.join(dropped)}"
        elif self.warnings:
            text += ".\nWarning: " + " ".join(str(w) for w in self.warnings)
        self.summary.setText(text)
        for layer in old_overlays:  # the overlays shown before, refreshed in place (a removal blocks ~1 s)
            yield
            meta = layer.metadata[META_KEY]
            self.overlay_layers.append(update_layer(layer, self._overlay_tuple(meta["effect"], meta["cause"],
                                                                               meta["kind"])))
        yield
        self.add_overlay()
        yield
        first = np.argwhere(result.fitted)[0]
        self.show_window(int(first[0]), int(first[1]))

    @staticmethod
    def _same_variables(layer, result: SlidingResult) -> bool:
        """True if the overlay ``layer`` of an earlier result can be drawn from ``result``: its variables are
        there, and so are the bootstrap probabilities or the significance mask its kind needs."""
        meta = layer.metadata.get(META_KEY, {})
        needs = {KIND_PROBABILITY: result.probabilities, KIND_SIGNIFICANT: result.significant,
                 KIND_LINK: result.significant}.get(meta.get("kind"), result.names)
        return meta.get("effect") in result.names and meta.get("cause") in result.names and needs is not None

    def _image_name(self) -> str | None:
        """Name of the image the maps are aligned on (recorded on each map, e.g. for the Theory dock)."""
        return None if self._image_layer is None else self._image_layer.name

    # ----------------------------------------------------------------- overlays
    def add_overlay(self, effect: str | None = None, cause: str | None = None, *, probability: bool | None = None,
                    kind: str | None = None):
        """Add an ``effect <- cause`` map of the last result; returns the layer.

        ``kind`` is one of :data:`OVERLAY_KINDS` (default: the picker; ``probability=True`` means
        :data:`KIND_PROBABILITY`, ``False`` :data:`KIND_COEFFICIENT`).  "significant only" is the coefficient
        with NaN (transparent) where the edge fails the calibrated test; "link type" is a labels layer of the
        pair's :data:`~napari_causal_lattice.sliding.LINK_TYPES` codes, explained by the legend under the picker.
        An overlay that already exists for this result is shown instead of being added again.

        Raises
        ------
        ValueError
            No result yet, the same variable twice, or no bootstrap probabilities / significance mask.
        """
        if self.result is None:
            raise ValueError("run the sliding LiNGAM first")
        result = self.result
        effect = effect or self.effect_combo.currentText()
        cause = cause or self.cause_combo.currentText()
        if kind is None:
            kind = self.kind_combo.currentText() if probability is None else (
                KIND_PROBABILITY if probability else KIND_COEFFICIENT)
        if kind not in OVERLAY_KINDS:
            raise ValueError(f"unknown overlay kind {kind!r}; choose one of {', '.join(OVERLAY_KINDS)}")
        if effect == cause:
            raise ValueError(f"choose two different variables (got {effect} <- {cause})")
        name = overlay_name(effect, cause, result.window, kind=kind)
        self._show_legend(effect, cause, kind)
        for layer in self.overlay_layers:
            if layer in self.viewer.layers and layer.metadata[META_KEY]["sliding"] is result and layer.name == name:
                show_only(self.viewer, layer)
                return layer
        layer = add_map_layer(self.viewer, self._overlay_tuple(effect, cause, kind), image_layer=self._image_layer)
        self.overlay_layers.append(layer)
        return layer

    def _overlay_tuple(self, effect: str, cause: str, kind: str) -> tuple:
        """LayerDataTuple of the ``effect <- cause`` overlay of kind ``kind`` of the last result."""
        result = self.result
        name = overlay_name(effect, cause, result.window, kind=kind)
        metadata = {META_KEY: {"sliding": result, "effect": effect, "cause": cause, "kind": kind,
                               "probability": kind == KIND_PROBABILITY, "image": self._image_name()}}
        if kind == KIND_LINK:
            codes, affine = self._window_map(result.link_type(effect, cause), categorical=True)
            return link_layer_tuple(
                codes, affine, name=name, names=link_names(effect, cause), colors=LINK_COLORS,
                image_layer=self._image_layer, metadata=metadata,
            )
        return self._value_tuple(result, effect, cause, kind, name, metadata)

    def _value_tuple(self, result: SlidingResult, effect: str, cause: str, kind: str, name: str,
                     metadata: dict) -> tuple:
        """LayerDataTuple of a coefficient, probability or significant-only coefficient overlay."""
        if kind == KIND_PROBABILITY:
            values, units, signed = result.probability(effect, cause), "probability", False
        else:
            values, units, signed = result.element(effect, cause), result.element_units(effect, cause), True
        if kind == KIND_SIGNIFICANT:
            values = np.where(result.significance(effect, cause), values, np.nan)
        values, affine = self._window_map(values)
        data, kwargs, layer_kind = map_layer_tuple(
            values,
            affine,
            name=name,
            image_layer=self._image_layer,
            signed=signed,
            units=units,
            colormap=None if signed else "magma",
            metadata=metadata,
        )
        if kind == KIND_PROBABILITY:
            kwargs["contrast_limits"] = (0.0, 1.0)
        if self._image_layer is not None:
            kwargs["units"] = self._image_layer.units
        return data, kwargs, layer_kind

    def _window_map(self, values: np.ndarray, *, categorical: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """A per-window map ``values`` (ny, nx) as layer data and its affine to image px.

        With a placement (a Cells source on an image) each cell takes its nearest window's value
        (:func:`~napari_causal_lattice.placement.window_values_per_cell`) painted on its region, so the map
        follows curved lattices: float32 with NaN outside the cells, or int32 codes with 0 outside
        (``categorical``).  Otherwise the window grid itself, placed with the window lattice.
        """
        if self._placement is None:
            return values, self.result.lattice.affine
        cells, raster = self._placement
        per_cell = window_values_per_cell(self.result, cells, values)
        if categorical:
            codes = np.nan_to_num(per_cell).astype(np.int32)
            inside = raster.labels >= 0
            return np.where(inside, codes[np.where(inside, raster.labels, 0)], 0), raster_affine(raster)
        return raster.paint(per_cell), raster_affine(raster)

    def _show_legend(self, effect: str, cause: str, kind: str) -> None:
        """The legend under the overlay picker: link-type colours, or what the significant-only map hides."""
        params = self.result.provenance.get("params", {})
        if kind == KIND_LINK:
            text = f"{link_legend_html(effect, cause)}<br>Edges: {criterion_text(params)}"
        elif kind == KIND_SIGNIFICANT:
            text = f"Transparent: windows where {effect} &lt;- {cause} fails the test ({criterion_text(params)})"
        else:
            text = ""
        self.legend.setText(text)
        self.legend.setVisible(bool(text))

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

    def show_window(self, ky: int, kx: int, *, min_abs: float = 0.05) -> pd.DataFrame:
        """Show window ``(ky, kx)``'s adjacency heatmap and causal graph in the dock; returns its adjacency.

        Edges with ``|coefficient| <= min_abs`` (standardized) or outside the result's significance mask (when
        it has one) are left out of the graph; the label states the criterion and the edges that pass.
        """
        if self.result is None:
            raise ValueError("run the sliding LiNGAM first")
        result = self.result
        self.selected_window = (ky, kx)
        centre = result.centers_grid[ky, kx]
        text = (
            f"Window ({ky}, {kx}): centre cell (i, j) = ({centre[0]:g}, {centre[1]:g}), "
            f"{result.n_cells[ky, kx]} cells"
        )
        if not result.fitted[ky, kx]:
            self.window_label.setText(f"{text}; skipped: {result.reasons[ky, kx]}")
            self.window_plot.plot(lambda figure: None)
            return result.window_adjacency(ky, kx)
        order = " -> ".join(result.names[k] for k in result.orders[ky, kx])
        keep = significant_edge(result, ky, kx)
        criterion = criterion_text(result.provenance.get("params", {}))
        if keep is None:
            edges = "no significance mask: every edge with |b| above the threshold is drawn"
        else:
            passing = [f"{result.names[e]} <- {result.names[c]}" for e, c in np.argwhere(keep)]
            edges = f"significant edges ({criterion}): {', '.join(passing) or 'none'}"
        self.window_label.setText(f"{text}; causal order {order}.\n{edges}")
        scale = "std / std" if result.standardized else "descriptor units"
        adjacency = np.asarray(result.adjacency[ky, kx], dtype=float)
        shown = pruned(result.window_result(ky, kx), min_abs=min_abs, keep=keep)
        graph_title = f"{'causal graph' if keep is None else 'significant edges'} (|b| > {min_abs:g})"

        def draw(figure) -> None:
            heat, graph = figure.subplots(2, 1, height_ratios=(1, 1.15))
            plot_adjacency(adjacency, result.names, heat, title=f"window adjacency ({scale})", signed=True,
                           annotate=True, fmt="{:.2g}", colorbar=True, label=scale)
            draw_graph(plot_causal_graph, shown, ax=graph, fmt="{:+.2g}", title=graph_title)

        self.window_plot.plot(draw)
        self.tabs.setCurrentIndex(0)
        return result.window_adjacency(ky, kx)

    # ----------------------------------------------------------------- PCA
    def run_pca(self, n_components: int | None = None, *, use: str | None = None,
                significant_only: bool | None = None):
        """Start the PCA of the last result in a worker; returns the started worker.

        The options are those of the form (:attr:`pca_params`, PCAOptions), the arguments given here replacing
        them.  ``significant_only`` (default: the check box, when the result has a significance mask) zeroes the
        elements that fail the calibrated test first.  When it finishes, the component heatmaps are drawn in the
        dock, the outlier windows left out are reported under the button, and the first loading is added as the
        layer ``"PCA loading 1"`` (the others when picked in "Show loading").
        """
        if self.result is None:
            raise ValueError("run the sliding LiNGAM first")
        given = {"n_components": n_components, "use": use, "significant_only": significant_only}
        options = form_options("pca", self.pca_params, **{k: v for k, v in given.items() if v is not None})
        if self.result.significant is None and options.significant_only:
            options = replace(options, significant_only=False)  # no edge test in this result: nothing to zero
        return self.jobs.run(pca_job, self.result, options=options, on_result=self._on_pca, label="PCA")

    def _on_pca(self, pca: AdjacencyPCA):
        """Generator run by the job panel: the component heatmaps, then the first loading layer."""
        recycled = self.recycle_own_layers(
            self.pca_layers, usable=lambda layer: layer.metadata[META_KEY]["component"] < pca.n_components)
        old_loadings = [layer for layer in recycled if layer is not None]
        self.pca_layers = []
        self.pca = pca
        self.loading_combo.blockSignals(True)
        self.loading_combo.clear()
        self.loading_combo.addItems([f"PCA loading {k + 1}" for k in range(pca.n_components)])
        self.loading_combo.blockSignals(False)
        self._set_result_controls(True)
        self.pca_summary.setText(outlier_text(pca))
        self._draw_components(pca)
        for layer in old_loadings:  # the loadings shown before, refreshed in place
            yield
            component = layer.metadata[META_KEY]["component"]
            self.pca_layers.append(update_layer(layer, self._loading_tuple(component)))
        yield
        self.show_loading(0)

    def show_loading(self, component: int | None = None):
        """Show loading map ``component`` (0-based) of the last PCA, adding it on first use; returns the layer."""
        if self.pca is None or self.closed:
            return None
        if component is None:
            component = max(self.loading_combo.currentIndex(), 0)
        pca = self.pca
        for layer in self.pca_layers:
            meta = layer.metadata[META_KEY]
            if layer in self.viewer.layers and meta["pca"] is pca and meta["component"] == component:
                show_only(self.viewer, layer)
                return layer
        layer = add_map_layer(self.viewer, self._loading_tuple(component), image_layer=self._image_layer)
        self.pca_layers.append(layer)
        return layer

    def _loading_tuple(self, component: int) -> tuple:
        """LayerDataTuple of loading map ``component`` (0-based) of the last PCA."""
        values, affine = self._window_map(self.pca.loadings[component])
        data, kwargs, kind = map_layer_tuple(
            values,
            affine,
            name=f"PCA loading {component + 1}",
            image_layer=self._image_layer,
            signed=True,
            units="score",
            metadata={META_KEY: {"pca": self.pca, "component": component, "image": self._image_name()}},
        )
        if self._image_layer is not None:
            kwargs["units"] = self._image_layer.units
        return data, kwargs, kind

    def _draw_components(self, pca: AdjacencyPCA) -> None:
        k = pca.n_components
        cols = 1  # one heatmap per row: the dock is narrow
        rows = k
        self.pca_plot.canvas.setMinimumHeight(260 * rows)

        def draw(figure) -> None:
            axes = figure.subplots(rows, cols, squeeze=False)
            for index, ax in enumerate(axes.ravel()):
                if index >= k:
                    ax.remove()
                    continue
                plot_adjacency(
                    pca.components[index],
                    pca.names,
                    ax,
                    title=f"PC{index + 1}: {pca.explained_variance_ratio[index]:.0%} of the variance",
                    signed=True,
                    annotate=False,
                    colorbar=True,
                    label="weight",
                )
                if index % cols:
                    ax.set_yticklabels([])
                    ax.set_ylabel("")
                if index + cols < k:
                    ax.set_xticklabels([])
                    ax.set_xlabel("")

        self.pca_plot.plot(draw)
        self.tabs.setCurrentIndex(1)
