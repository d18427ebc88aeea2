"""The "Causal discovery" dock widget: DirectLiNGAM on the unit-cell descriptors, graph and heatmaps.

Cell sources are Points layers carrying a ``Cells`` object in ``metadata[META_KEY]["cells"]`` (the B-column
layer after the Descriptors step) or descriptor columns in their features (units, if any, from a dict
``metadata[META_KEY]["units"]``), and tables loaded from CSV (``"Px [pm]"`` headers give units).
The fit runs in a worker thread (progress, Cancel between bootstrap chunks); the result is drawn in the dock
and stored on the source layer's metadata (``metadata[META_KEY]["lingam"]``).

Edges are decided by the calibrated test of ``docs/confidence.md`` (alpha, optional FDR control, set in the form):
the summary states the criterion, the graph and heatmap show only the significant edges by default, and the
"Edges" tab lists every edge with its p-value, ``significant`` and ``link`` columns.  A near-deterministic
descriptor (``DeterministicDescriptorWarning``, e.g. Vol = a b sin(alpha)) is a notification and a line in the
dock with a button that leaves it out and fits again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from napari.layers import Points
from magicgui.widgets import CheckBox, Container, FloatSpinBox
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..causal import DEFAULT_EXOGENOUS, DeterministicDescriptorWarning, fit_lingam
from ..lattice import DESCRIPTORS
from ..null import instrument_null
from ..figures import plot_adjacency, plot_causal_graph
from ..provenance import jsonable
from ._dock import DockWidget
from ._edges import criterion_text
from ._forms import form_options, option_widgets, options_form
from ._jobs import JobPanel
from ._mpl import MplCanvas, draw_graph
from .layers import META_KEY

_UNIT_HEADER = re.compile(r"^\s*(.+?)\s*\[(.*)\]\s*$")


#: CausalOptions shown first in the dock's form (the others follow in field order; prior knowledge has its own
#: boxes above it).
CAUSAL_FORM_FIRST = ("n_bootstrap", "seed")
#: Images of the instrument null the dock proposes.
NULL_IMAGES = 20


def _split_edges(text: str) -> list[str]:
    return [e.strip() for e in re.split(r"[,;\n]", text) if e.strip()]


class _CheckGrid(QWidget):
    """A grid of check boxes, one per name."""

    def __init__(self, columns: int = 4, parent=None):
        super().__init__(parent)
        self._columns = columns
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self.boxes: dict[str, QCheckBox] = {}

    def set_names(self, names, checked) -> None:
        for box in self.boxes.values():
            self._grid.removeWidget(box)
            box.deleteLater()
        self.boxes = {}
        for k, name in enumerate(names):
            box = QCheckBox(name)
            box.setChecked(name in checked)
            self._grid.addWidget(box, k // self._columns, k % self._columns)
            self.boxes[name] = box

    def checked(self) -> list[str]:
        return [n for n, b in self.boxes.items() if b.isChecked()]

    def set_checked(self, names) -> None:
        for n, b in self.boxes.items():
            b.setChecked(n in names)


class CausalWidget(DockWidget):
    """Dock widget "Causal discovery".

    Public methods used by tests and scripts: :meth:`refresh_sources`, :meth:`load_table`,
    :meth:`set_variables`, :meth:`set_exogenous`, :meth:`run` (returns the started worker),
    :meth:`redraw`, :meth:`edges_table`, :meth:`leave_out_deterministic`, :meth:`export_csv`,
    :meth:`export_json`.  The last fit is in :attr:`result`; the edge-decision options are in :attr:`options`
    (``alpha``, ``fdr``, ``significant_only``, ``drop_deterministic``).
    """

    title = "Causal discovery"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.result = None
        self.null = None
        self._tables: dict[str, tuple[pd.DataFrame, dict]] = {}
        self._source_of_result: str | None = None
        self._shown: tuple | None = None  # (source, candidate columns) the check boxes were built for
        self._watched: set[int] = set()
        src_row = self._build_source()
        var_box, prior_box = self._build_variables()
        opts = self._build_options()
        self._build_null()
        self._build_messages()
        exp_row = self._build_results()
        layout = self.body_layout
        layout.addWidget(QLabel("Cells"))
        layout.addLayout(src_row)
        layout.addWidget(var_box)
        layout.addWidget(prior_box)
        layout.addLayout(opts)
        layout.addWidget(self.run_button)
        layout.addWidget(self.null_form.native)
        layout.addWidget(self.null_button)
        layout.addWidget(self.jobs)
        layout.addWidget(self.summary)
        layout.addWidget(self.deterministic_box)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(exp_row)
        self.listen_layers(self.refresh_sources)
        self.listen(self.viewer.events.theme, lambda _event: self._retheme())
        self.refresh_sources()

    def _build_source(self) -> QVBoxLayout:
        """The cells' source: a layer picker, Refresh and Load CSV..."""
        self.source = QComboBox()
        self.source.currentIndexChanged.connect(self._on_source_changed)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Re-scan the layers (e.g. after running Descriptors).")
        refresh.clicked.connect(lambda: self.refresh_sources())
        load = QPushButton("Load CSV...")
        load.setToolTip("A table with one row per unit cell and one column per descriptor ('Px [pm]' headers ok).")
        load.clicked.connect(self._ask_table)
        src_row = QVBoxLayout()
        src_row.addWidget(self.source)
        buttons = QHBoxLayout()
        buttons.addWidget(refresh)
        buttons.addWidget(load)
        src_row.addLayout(buttons)
        return src_row

    def _build_variables(self) -> tuple[QGroupBox, QGroupBox]:
        """The variables' and the prior knowledge's check boxes and path fields."""
        self.variables = _CheckGrid()
        self.exogenous = _CheckGrid()
        self.required = QLineEdit()
        self.required.setPlaceholderText("e.g. Py <- I5, Px <- Py")
        self.required.setToolTip("Directed paths known to exist ('effect <- cause'); they fix the order.")
        self.forbidden = QLineEdit()
        self.forbidden.setPlaceholderText("e.g. I5 <- Px")
        self.forbidden.setToolTip("Directed paths known NOT to exist ('effect <- cause').")
        var_box = QGroupBox("Variables")
        QVBoxLayout(var_box).addWidget(self.variables)
        prior_box = QGroupBox("Prior knowledge")
        prior_form = QFormLayout(prior_box)
        exogenous_label = QLabel("Exogenous (no cause among the variables):")
        exogenous_label.setWordWrap(True)
        prior_form.addRow(exogenous_label)
        prior_form.addRow(self.exogenous)
        prior_form.addRow("Required paths", self.required)
        prior_form.addRow("Forbidden paths", self.forbidden)
        return var_box, prior_box

    def _build_options(self) -> QFormLayout:
        """The fit's options (a form generated from CausalOptions) and the display choices."""
        # a magicgui form (typed, scriptable: ``widget.options.n_bootstrap.value = 50``), the Qt widgets underneath
        # reachable as attributes; the fit's options come from CausalOptions (defaults of a whole analysis, as the
        # CLI's), the last three only choose what is shown
        self.options = Container(widgets=[
            *option_widgets("lingam", CAUSAL_FORM_FIRST),
            FloatSpinBox(name="min_probability", label="Min probability", min=0.0, max=1.0, step=0.05,
                         value=0.5, tooltip="Without 'significant edges only': edges with a lower bootstrap "
                                            "probability are not drawn, listed or exported."),
            CheckBox(name="in_units", text="physical units (e.g. pm per pm)",
                     tooltip="Off: standardised coefficients (std of effect per std of cause)."),
            CheckBox(name="significant_only", text="significant edges only", value=True,
                     tooltip="Draw and list only the edges that pass the calibrated test (and the instrument "
                             "null, once it is run)."),
        ])
        self.n_bootstrap = self.options.n_bootstrap.native
        self.seed = self.options.seed.native
        self.min_probability = self.options.min_probability.native
        self.in_units = self.options.in_units.native
        self.options.min_probability.changed.connect(self.redraw)
        self.options.min_probability.enabled = False  # only used without "significant edges only"
        self.options.in_units.changed.connect(self.redraw)
        self.options.significant_only.changed.connect(self.redraw)
        opts = QFormLayout()
        opts.addRow(self.options.native)
        return opts

    def _build_null(self) -> None:
        """The Run button and the instrument null's form (NullOptions) and button."""
        self.run_button = QPushButton("Run causal discovery")
        self.run_button.clicked.connect(self.guarded(self.run))
        # the instrument null: images re-rendered from the image's own model without the physics
        self.null_form = options_form("null")
        self.null_form.n_images.value = NULL_IMAGES
        self.null_button = QPushButton("Test against the instrument null")
        self.null_button.setToolTip("Re-render the image without its physics (P = 0, no strain; the measured column "
                                    "profile, intensities, noise and scan jitter) and measure it the same way: edges "
                                    "the null reproduces are labelled 'instrument' and no longer count as "
                                    "significant. Needs cells made in napari from a found image.")
        self.null_button.clicked.connect(self.guarded(self.run_null))
        self.null_button.setEnabled(False)

    def _build_messages(self) -> None:
        """The job panel, the summary and the near-deterministic descriptors' message."""
        self.jobs = JobPanel()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.deterministic_label = QLabel("")
        self.deterministic_label.setWordWrap(True)
        self.deterministic_label.setStyleSheet("color: #E69F00")
        self.leave_out_button = QPushButton("Leave them out and run again")
        self.leave_out_button.setToolTip("Tick 'leave out deterministic descriptors' and fit again.")
        self.leave_out_button.clicked.connect(self.guarded(self.leave_out_deterministic))
        self.deterministic_box = QWidget()
        deterministic_layout = QVBoxLayout(self.deterministic_box)
        deterministic_layout.setContentsMargins(0, 0, 0, 0)
        deterministic_layout.addWidget(self.deterministic_label)
        deterministic_layout.addWidget(self.leave_out_button)
        self.deterministic_box.setVisible(False)
        self.deterministic_warnings: list[Warning] = []

    def _build_results(self) -> QHBoxLayout:
        """The result tabs (graph, adjacency, probability, edges) and the export buttons."""
        theme = lambda: self.viewer.theme  # noqa: E731
        self.graph_canvas = MplCanvas(theme=theme, min_height=340)
        self.adjacency_canvas = MplCanvas(theme=theme, min_height=340)
        self.probability_canvas = MplCanvas(theme=theme, min_height=340)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.graph_canvas, "Graph")
        self.tabs.addTab(self.adjacency_canvas, "Adjacency")
        self.tabs.addTab(self.probability_canvas, "Probability")
        self.edges_view = QTableWidget()
        self.edges_view.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.edges_view.setMinimumHeight(240)
        self.tabs.addTab(self.edges_view, "Edges")
        self.export_csv_button = QPushButton("Export edges CSV...")
        self.export_csv_button.clicked.connect(lambda: self._ask_export("csv"))
        self.export_json_button = QPushButton("Export JSON...")
        self.export_json_button.clicked.connect(lambda: self._ask_export("json"))
        for b in (self.export_csv_button, self.export_json_button):
            b.setEnabled(False)
        exp_row = QHBoxLayout()
        exp_row.addWidget(self.export_csv_button)
        exp_row.addWidget(self.export_json_button)
        return exp_row

    def _retheme(self) -> None:
        for canvas in (self.graph_canvas, self.adjacency_canvas, self.probability_canvas):
            canvas.retheme()

    # ------------------------------------------------------------------ sources
    def _layer_table(self, layer) -> tuple[pd.DataFrame, dict] | None:
        meta = layer.metadata.get(META_KEY) or {}
        cells = meta.get("cells") if isinstance(meta, dict) else None
        if cells is not None and hasattr(cells, "table"):
            return cells.table, dict(getattr(cells, "units", {}) or {})
        features = getattr(layer, "features", None)
        if features is not None and sum(c in features.columns for c in DESCRIPTORS) >= 2:
            units = meta.get("units") if isinstance(meta, dict) else None
            return features, dict(units) if isinstance(units, dict) else {}
        return None

    def refresh_sources(self, *_args) -> None:
        """Rebuild the list of cell sources (Points layers with descriptors, loaded tables)."""
        current = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, Points) and id(layer) not in self._watched:
                # the Descriptors step adds columns to an existing layer: follow it
                self._watched.add(id(layer))
                self.listen(layer.events.features, self.refresh_sources)
                self.listen(layer.events.metadata, self.refresh_sources)
            if isinstance(layer, Points) and self._layer_table(layer) is not None:
                self.source.addItem(f"layer: {layer.name}", f"layer:{layer.name}")
        for key in self._tables:
            self.source.addItem(f"table: {key}", f"table:{key}")
        if self.source.count() == 0:
            self.source.addItem("(no cells: run Descriptors or load a CSV table)", None)
        index = self.source.findData(current) if current else -1
        if index < 0:  # prefer the newest layer with Cells
            index = 0
            for k in range(self.source.count()):
                data = self.source.itemData(k)
                if data and data.startswith("layer:"):
                    meta = self.viewer.layers[data[6:]].metadata.get(META_KEY) or {}
                    if isinstance(meta, dict) and "cells" in meta:
                        index = k
        self.source.setCurrentIndex(index)
        self.source.blockSignals(False)
        self.run_button.setEnabled(bool(self.source.currentData()))
        source = self._source_of_result
        if self.result is not None and source and source.startswith("layer:") and source[6:] not in self.viewer.layers:
            self.clear_result()
        self._on_source_changed()

    def clear_result(self) -> None:
        """Forget the last fit (its cells layer is gone): no summary, plots, edge table or export."""
        self.result = None
        self.null = None
        self._source_of_result = None
        self.summary.setText("")
        self.deterministic_box.setVisible(False)
        for canvas in (self.graph_canvas, self.adjacency_canvas, self.probability_canvas):
            canvas.plot(lambda figure: None)
        self.edges_view.clear()
        self.edges_view.setRowCount(0)
        self.edges_view.setColumnCount(0)
        for button in (self.export_csv_button, self.export_json_button, self.null_button):
            button.setEnabled(False)

    def current_table(self) -> tuple[pd.DataFrame, dict]:
        """The selected source as (table, units).

        Raises
        ------
        ValueError
            If there is no usable source.
        """
        data = self.source.currentData()
        if not data:
            raise ValueError("No cells to analyse: run the Descriptors step or load a CSV table first.")
        kind, key = data.split(":", 1)
        if kind == "table":
            return self._tables[key]
        if key not in self.viewer.layers:
            raise ValueError(f"The layer {key!r} is gone; press Refresh.")
        found = self._layer_table(self.viewer.layers[key])
        if found is None:
            raise ValueError(f"The layer {key!r} has no descriptor columns; run the Descriptors step on it.")
        return found

    def _on_source_changed(self, *_args) -> None:
        try:
            table, _ = self.current_table()
        except (ValueError, KeyError):
            table = pd.DataFrame()
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        candidates = [c for c in DESCRIPTORS if c in numeric] or [
            c for c in numeric if c not in ("i", "j", "y", "x")
        ]
        shown = (self.source.currentData(), tuple(candidates))
        if shown == self._shown:  # keep the user's ticks
            return
        self._shown = shown
        self.variables.set_names(candidates, candidates)
        self.exogenous.set_names(candidates, [c for c in DEFAULT_EXOGENOUS if c in candidates])

    def load_table(self, path) -> str:
        """Load a CSV table of cells (one row per cell) and select it; returns its source name.

        Column headers like ``"Px [pm]"`` give the unit of ``Px``.
        """
        path = Path(path)
        try:
            table = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(f"Cannot read {path.name} as a CSV table: {err}") from None
        units, rename = {}, {}
        for col in table.columns:
            match = _UNIT_HEADER.match(str(col))
            if match:
                rename[col] = match.group(1)
                units[match.group(1)] = match.group(2)
        table = table.rename(columns=rename)
        key = path.name
        self._tables[key] = (table, units)
        self.refresh_sources()
        self.source.setCurrentIndex(self.source.findData(f"table:{key}"))
        return key

    def _ask_table(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a table of cells", "", "CSV (*.csv);;All files (*)")
        if path:
            try:
                self.load_table(path)
            except ValueError as err:
                show_error(str(err))

    # ------------------------------------------------------------------ settings
    def set_variables(self, names) -> None:
        """Tick exactly these variables."""
        self.variables.set_checked(list(names))

    def set_exogenous(self, names) -> None:
        """Tick exactly these variables as exogenous."""
        self.exogenous.set_checked(list(names))

    def prior_knowledge(self, names) -> dict:
        """Prior knowledge of the form, restricted to the chosen variables (argument of ``fit_lingam``)."""
        return {
            "exogenous": [n for n in self.exogenous.checked() if n in names],
            "required": _split_edges(self.required.text()),
            "forbidden": _split_edges(self.forbidden.text()),
        }

    # ------------------------------------------------------------------ run
    def run(self):
        """Start the fit in a worker thread and return the worker (None if a job is already running).

        Raises
        ------
        ValueError
            No source, or fewer than 2 variables ticked.
        """
        table, units = self.current_table()
        names = self.variables.checked()
        if len(names) < 2:
            raise ValueError("Tick at least 2 variables for a causal analysis.")
        self._source_of_result = self.source.currentData()
        self.deterministic_warnings = []
        self.deterministic_box.setVisible(False)
        options = form_options("lingam", self.options, prior_knowledge=self.prior_knowledge(names))
        grid = [c for c in ("i", "j") if c in table.columns and c not in names]  # spatially honest p-values
        return self.jobs.run(
            fit_lingam,
            table[names + grid],
            variables=names,
            units=units,
            options=options,
            on_result=self._on_result,
            on_warning=self._on_warning,
            label="Causal discovery",
        )

    def _on_warning(self, warning: Warning) -> None:
        """Show a near-deterministic descriptor in the dock (the job panel already notified)."""
        if not isinstance(warning, DeterministicDescriptorWarning):
            return
        self.deterministic_warnings.append(warning)
        self.deterministic_label.setText(str(warning))
        self.leave_out_button.setVisible(not self.options.drop_deterministic.value)
        self.deterministic_box.setVisible(True)

    def leave_out_deterministic(self):
        """Tick "leave out deterministic descriptors" and fit again; returns the started worker."""
        self.options.drop_deterministic.value = True
        return self.run()

    def _null_inputs(self):
        """(image plane, columns, cells) of the result's source layer, or None when it has no image model."""
        source = self._source_of_result
        if not (source and source.startswith("layer:") and source[6:] in self.viewer.layers):
            return None
        meta = self.viewer.layers[source[6:]].metadata.get(META_KEY) or {}
        columns, cells, image = meta.get("columns"), meta.get("cells"), meta.get("image")
        if columns is None or cells is None or image not in self.viewer.layers:
            return None
        plane = np.asarray(self.viewer.layers[image].data)
        return (plane if plane.ndim == 2 else None), columns, cells

    def run_null(self):
        """Test the current result against the instrument null of its image (worker); returns the worker.

        Raises
        ------
        ValueError
            No result yet, or its cells do not come from columns found in napari on an image still open.
        """
        if self.result is None:
            raise ValueError("Run the causal discovery first.")
        inputs = self._null_inputs()
        if inputs is None or inputs[0] is None:
            raise ValueError("The instrument null needs the image and its columns: build the cells with the "
                             "Atom columns and Descriptors docks on a 2D image that is still open.")
        image, columns, cells = inputs
        options = form_options("null", self.null_form)
        if options.n_images < 5:
            raise ValueError("The instrument null needs at least 5 images (20 is a good start).")
        return self.jobs.run(
            instrument_null, image, columns, cells, n_images=options.n_images, seed=self.seed.value(),
            shuffle_intensities=options.shuffle_intensities, result=self.result,
            on_result=self._on_null, label="Instrument null",
        )

    def _on_null(self, null) -> None:
        self.null = null
        self._on_result(null.apply(self.result))

    def _on_result(self, result) -> None:
        self.result = result
        self.redraw()
        for b in (self.export_csv_button, self.export_json_button):
            b.setEnabled(True)
        self.null_button.setEnabled(self._null_inputs() is not None)
        source = self._source_of_result
        if source and source.startswith("layer:") and source[6:] in self.viewer.layers:
            layer = self.viewer.layers[source[6:]]
            meta = dict(layer.metadata)
            entry = meta.get(META_KEY)
            meta[META_KEY] = {**(entry if isinstance(entry, dict) else {}), "lingam": result}
            layer.metadata = meta

    def shown_edges(self) -> np.ndarray:
        """(p, p) bool: the edges the summary counts, the graph draws and the table lists (one decision).

        With "significant edges only": the edges that pass the calibrated test and carry a coefficient in the fit
        (a pair linked without a resolved direction is shown once, in the fitted direction, with link
        ``a <-> b``; the reverse has no coefficient).  Otherwise every edge of the fit with a bootstrap
        probability of at least "min probability" (all of them without bootstrap).
        """
        res = self.result
        B = np.asarray(res.adjacency, dtype=float)
        present = np.isfinite(B) & (B != 0)
        if self.options.significant_only.value and res.significant is not None:
            return present & np.asarray(res.significant, dtype=bool)
        if res.probabilities is not None:
            present &= np.asarray(res.probabilities) >= self.min_probability.value()
        return present

    def redraw(self, *_args) -> None:
        """Redraw summary, graph, heatmaps and the edge table of :attr:`result` from one edge decision."""
        res = self.result
        self.options.min_probability.enabled = not (self.options.significant_only.value
                                                    and res is not None and res.significant is not None)
        if res is None:
            return
        in_units = self.in_units.isChecked()
        min_p = self.min_probability.value()
        dropped = f", {res.n_dropped} rows with NaN dropped" if res.n_dropped else ""
        order = " \u2192 ".join(res.names[k] for k in res.causal_order)
        left_out = res.params.get("dropped_deterministic") or []
        shown = self.shown_edges()
        tested = self.options.significant_only.value and res.significant is not None
        unresolved = int(np.sum(shown & np.asarray(res.significant, dtype=bool).T)) if tested else 0
        if tested:
            criterion = f"pass the {criterion_text(res.params)}"
            extra = int(np.sum(np.asarray(res.significant) & ~shown & ~shown.T))
            note = (f" ({unresolved} linked without a resolved direction: drawn in the fitted direction)"
                    if unresolved else "")
            if extra:
                note += f"; {extra} more pass the test but the pruned fit gives them no coefficient"
        else:
            criterion = ("in the fit" + (f" with bootstrap probability \u2265 {min_p:.2f}" if res.probabilities
                                         is not None else "") + " (no significance filter)")
            note = ""
        instrument = getattr(res, "instrument", None)
        labelled = [] if instrument is None else [f"{res.names[i]} <- {res.names[j]}"
                                                  for i, j in zip(*np.nonzero(instrument))]
        self.summary.setText(
            f"{res.n_samples} cells{dropped}; {res.n_bootstrap} resamples.\nCausal order: {order}\n"
            f"{int(shown.sum())} edges {criterion}{note}; graph and table show exactly these."
            + (f"\nLeft out as deterministic: {', '.join(left_out)}" if left_out else "")
            + (f"\nInstrument null ({self.null.n_images} images): {len(labelled)} edges the measurement itself "
               f"produces, not drawn: {', '.join(labelled) or 'none'}" if instrument is not None and self.null
               is not None else "")
        )
        B = res.adjacency_in_units() if in_units else res.adjacency
        prob = res.probabilities
        unit_label = "unit of effect / unit of cause" if in_units else "std / std"

        title = f"cause \u2192 effect ({'physical units' if in_units else 'standardised'})"
        self.graph_canvas.plot(lambda fig: draw_graph(
            plot_causal_graph, res, ax=fig.add_subplot(), in_units=in_units, keep=shown,
            fmt="{:+.3g}" if in_units else "{:+.2g}", title=title, node_radius=0.17, font_size=7.0,
        ))
        self.adjacency_canvas.plot(lambda fig: plot_adjacency(
            np.where(shown, B, 0.0), res.names, ax=fig.add_subplot(), signed=True, label=unit_label, fmt="{:.2g}",
            title="direct effects shown: effect \u2190 cause",
        ))

        def draw_probability(fig) -> None:
            ax = fig.add_subplot()
            if prob is None:
                ax.text(0.5, 0.5, "no bootstrap:\nset resamples > 0", ha="center", va="center")
                ax.set_axis_off()
            else:
                plot_adjacency(prob, res.names, ax=ax, signed=False, vmin=0.0, vmax=1.0, label="probability",
                               title=f"bootstrap probability ({res.n_bootstrap} resamples)")

        self.probability_canvas.plot(draw_probability)
        self._fill_edges_view()

    #: Columns of the "Edges" tab (a subset of ``LingamResult.edges()``).
    edge_columns = ("effect", "cause", "coefficient", "unit", "probability", "p_value", "significant", "link")

    def _fill_edges_view(self) -> None:
        """List the edges of :meth:`edges_table` in the "Edges" tab."""
        table = self.edges_table()
        columns = [c for c in self.edge_columns if c in table.columns]
        view = self.edges_view
        view.clear()
        view.setColumnCount(len(columns))
        view.setHorizontalHeaderLabels(columns)
        view.setRowCount(len(table))
        for row, record in enumerate(table[columns].itertuples(index=False)):
            for col, value in enumerate(record):
                if isinstance(value, (bool, np.bool_)):
                    text = "yes" if value else "no"
                elif isinstance(value, float):
                    text = "" if np.isnan(value) else f"{value:.3g}"
                else:
                    text = str(value)
                view.setItem(row, col, QTableWidgetItem(text))
        view.resizeColumnsToContents()

    # ------------------------------------------------------------------ export
    def edges_table(self) -> pd.DataFrame:
        """The edges of :meth:`shown_edges` (those the summary counts and the graph draws), in the chosen units
        (columns of ``LingamResult.edges()``, with ``p_value``, ``significant`` and ``link``)."""
        if self.result is None:
            raise ValueError("Run the causal discovery first.")
        res = self.result
        table = res.edges(in_units=self.in_units.isChecked())
        shown = self.shown_edges()
        keep = [bool(shown[res.index(e), res.index(c)]) for e, c in zip(table["effect"], table["cause"])]
        return table[np.asarray(keep, dtype=bool)].reset_index(drop=True)

    def export_csv(self, path) -> Path:
        """Write the edge table (cause, effect, coefficient, probability, ci_low, ci_high, std, unit)."""
        path = Path(path)
        self.edges_table().to_csv(path, index=False)
        return path

    def export_json(self, path) -> Path:
        """Write the whole result (order, matrices, bootstrap statistics, params, provenance) as JSON."""
        if self.result is None:
            raise ValueError("Run the causal discovery first.")
        res = self.result
        doc = {
            "convention": "adjacency[i][j] = direct effect of names[j] on names[i] (effect <- cause)",
            "adjacency_units": "std/std" if res.standardized else "data units",
            "adjacency_in_units": res.adjacency_in_units(),
            **{k: v for k, v in res.to_state().items() if k != "bootstrap_adjacency"},
            "edges": self.edges_table().to_dict(orient="records"),
        }
        path = Path(path)
        path.write_text(json.dumps(jsonable(doc), indent=1))
        return path

    def _ask_export(self, kind: str) -> None:
        filt = "CSV (*.csv)" if kind == "csv" else "JSON (*.json)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export causal result ({kind})", f"causal_edges.{kind}", filt)
        if not path:
            return
        try:
            out = self.export_csv(path) if kind == "csv" else self.export_json(path)
        except (ValueError, OSError) as err:
            show_error(f"Export failed: {err}")
            return
        show_info(f"Saved {out}")
