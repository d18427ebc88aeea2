"""The "Descriptors" dock widget: unit cells and their 8 descriptors from the current column layers.

Uses the CURRENT data of the A and B Points layers (after any manual edits), re-measures the column
intensities on the image with :func:`~napari_causal_lattice.columns.columns_from_positions`, builds the
cells with :func:`~napari_causal_lattice.cells.build_cells` in a worker thread (its form, :attr:`params`, is
generated from :class:`~napari_causal_lattice.options.CellsOptions`; the mean P's, :attr:`mean_p_params`, from
:class:`~napari_causal_lattice.options.PolarizationOptions`; both with the defaults of ``analyze``), then adds

- the map of the descriptor picked in "Show map" (``"Px [pm]"``...), each cell's value painted on its own
  region of the image around its B column (:func:`~napari_causal_lattice.placement.cell_regions`, computed in
  the worker), so maps follow curved lattices, below the column layers, with a colour bar (signed Px / Py: diverging colormap,
  robust symmetric limits); picking another descriptor later adds its map on demand and hides the others;
- ``i, j`` and the descriptors as features of the B Points layer (NaN for B columns without a complete cell)
  and ``metadata[META_KEY]["cells"]`` (and ``["cell_raster"]``, the regions) on it; the summary counts the
  flagged cells by reason;
- on demand ("Polarization arrows"), a Vectors layer ``"Polarization"`` from each B column along its offset
  from the A-corner centroid (image frame, px), drawn ``length`` times longer, coloured by |P| or its angle.

Each layer is added in its own event-loop turn, so the window stays responsive while the results arrive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from napari.layers import Image, Points, Shapes, Vectors
from napari.utils.notifications import show_info
from skimage.draw import polygon2mask
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
)

from ..cells import Cells, build_cells, reference_cells
from ..lattice import DESCRIPTORS, DESCRIPTOR_LABELS
from ..placement import cell_regions
from ..registry import SIGNED
from ._combos import refill, track_user_picks
from ._scatter import CellScatter
from ._dock import DockWidget
from ._forms import form_options, options_form
from ._jobs import JobPanel
from .layers import (
    META_KEY,
    add_map_layer,
    cell_map_tuple,
    image_data_to_world,
    image_shape,
    is_map_layer,
    is_truth_layer,
    markers_check,
    newest_matching,
    plugin_meta,
    show_only,
    update_layer,
)

#: Descriptor whose map a build shows first.
DEFAULT_MAP = "Px"
#: Arrow colourings: feature of the Vectors layer and its colormap.
ARROW_COLOURS = {"|P|": ("P_abs", "viridis"), "angle": ("P_angle", "twilight")}


def _pixel_size_from_layer(layer) -> tuple[tuple[float, float] | None, str]:
    """(sy, sx) in pm/px from an image layer's scale and units, or None, and a note on where it came from."""
    scale = np.asarray(layer.scale[-2:], dtype=float)
    units = getattr(layer, "units", None)
    unit = units[-1] if units is not None else None
    if unit is not None and str(unit.dimensionality) == "[length]":
        factors = np.array([(1 * u).to("pm").magnitude for u in units[-2:]], dtype=float)
        return (float(scale[0] * factors[0]), float(scale[1] * factors[1])), f"from the image scale ({unit:~})"
    if np.allclose(scale, 1.0):
        return None, "unknown: the image has no scale; lengths in px unless you enter it"
    return (float(scale[0]), float(scale[1])), "image scale, assumed pm/px"


def _positions_in_image_px(points, image) -> np.ndarray:
    """(N, 2) yx of a Points layer's data in the image layer's pixel frame."""
    data = np.asarray(points.data, dtype=float)[:, -2:]
    to_image = np.linalg.inv(image_data_to_world(image)) @ image_data_to_world(points)
    homog = np.column_stack([data, np.ones(len(data))])
    return (homog @ to_image.T)[:, :2]


#: Reference choice meaning "no reference region".
NO_REFERENCE = "(none)"


def mean_p_job(cells, image, columns, *, options, reference=None, progress=None, cancel=None):
    """:func:`~napari_causal_lattice.cells.mean_polarization` of ``cells`` with the PolarizationOptions
    ``options`` (a worker's job: the fit-model variants re-measure the columns on ``image``); ``reference`` (a
    mask or cell indices, e.g. from a Shapes layer) replaces ``options.reference`` (grid ranges) when given."""
    from ..cells import mean_polarization

    return mean_polarization(cells, None if options.variants else {}, image=image, columns=columns,
                             reference=options.reference if reference is None else reference,
                             warn_sigma=options.warn_sigma)


def _unchanged(found, a_positions, b_positions) -> bool:
    """True when the A and B points are exactly the columns ``found`` (none added, moved or deleted)."""
    if found is None:
        return False
    a, b = np.asarray(a_positions, dtype=float), np.asarray(b_positions, dtype=float)
    a_found, b_found = found.positions[found.a], found.positions[found.b]
    return (a.shape == a_found.shape and b.shape == b_found.shape and np.allclose(a, a_found, rtol=0, atol=1e-9)
            and np.allclose(b, b_found, rtol=0, atol=1e-9))


def compute_cells(
    image,
    a_positions,
    b_positions,
    *,
    pixel_size=None,
    options=None,
    radius=None,
    intensity="gaussian",
    found=None,
    progress=None,
    cancel=None,
):
    """Columns at the given positions (intensities re-measured on ``image``) and their cells.

    When the positions are exactly the columns ``found`` (the Points layers as Find made them), those columns are
    used as they are (with their profile fit, scan-jitter estimate and faint flags), so the dock gives the same
    cells as :func:`~napari_causal_lattice.pipeline.run_pipeline`; points added, moved or deleted by hand are
    re-measured (:func:`~napari_causal_lattice.columns.columns_from_positions`).

    Parameters
    ----------
    image : (H, W) array
        The STEM image.
    a_positions, b_positions : (Na, 2), (Nb, 2) arrays
        A and B column positions (y, x) in px of the image.
    pixel_size : float, (sy, sx) pair or None
        pm/px.
    options : CellsOptions, optional
        The quality gates and polarization frame of :func:`~napari_causal_lattice.cells.build_cells`.
    radius : float, optional
        Fit-patch radius in px (the one ``find_columns`` used, so intensities mean the same).
    intensity : {"gaussian", "disk"}
        How column intensities are measured.
    found : Columns, optional
        The columns Find made (the Points layers' metadata).

    Returns
    -------
    dict
        ``columns`` (Columns), ``cells`` (Cells), ``b_rows`` (n,) row of each cell's B column in
        ``b_positions``, ``offset_px`` (n, 2) B offset from its A-corner centroid (y, x) in px and ``raster``
        (:class:`~napari_causal_lattice.placement.CellRaster`, each cell's region of the image, where its maps
        are painted).
    """
    from scipy.spatial import cKDTree

    from ..columns import columns_from_positions

    # Columns record a single (square) pixel size; a (sy, sx) pair goes to build_cells only
    square = None if pixel_size is None or np.ndim(pixel_size) else float(pixel_size)
    if _unchanged(found, a_positions, b_positions) and (square is None or square == found.pixel_size):
        columns = found  # the points are those Find made: the same columns as a script or `analyze` gets
    else:
        columns = columns_from_positions(
            image, a_positions, b_positions, pixel_size=square, radius=radius, intensity=intensity
        )
    cells = build_cells(columns, pixel_size=pixel_size, options=options, progress=progress, cancel=cancel)
    b_pos = columns.positions[cells.b_index]
    _, b_rows = cKDTree(np.asarray(b_positions, dtype=float)).query(b_pos)
    offset = b_pos - columns.positions[cells.corners].mean(axis=1)
    raster = cell_regions(cells, np.shape(image))
    return {"columns": columns, "cells": cells, "b_rows": b_rows, "offset_px": offset, "raster": raster}


#: Flag reasons (``Cells.table["flag"]``) in the user's words; the code stays in brackets.
FLAG_WORDS = {
    "fit": "a column fit failed",
    "b_near_a": "B column too close to an A column",
    "b_off_lattice": "B column off its lattice site",
    "outlier": "outlier",
}


def flag_summary(cells: Cells) -> str:
    """The flagged cells by reason, e.g. ``"flagged: 3 a column fit failed (fit), 1 outlier (kept with NaN
    descriptors)"``."""
    counts = cells.flag_counts()
    if not counts:
        return "no cell flagged"

    def words(reason: str) -> str:
        text = FLAG_WORDS.get(reason)
        return reason if text is None or text == reason else f"{text} ({reason})"

    listed = ", ".join(f"{n} {words(reason)}" for reason, n in sorted(counts.items(), key=lambda item: -item[1]))
    return f"flagged: {listed} (kept with NaN descriptors)"


class DescriptorsWidget(DockWidget):
    """Build unit cells from the column layers; show one descriptor map at a time and, on demand, the arrows.

    Attributes
    ----------
    jobs : JobPanel
        Runs the build in a worker thread.
    cells : Cells or None
        The last built cells.
    map_layers : dict
        Descriptor name -> map layer of the last build (added when first shown).
    vectors_layer : Vectors or None
        The polarization arrows of the last build, once shown.
    params, mean_p_params : magicgui Container
        The build's CellsOptions and the mean P's PolarizationOptions, one widget per form field
        (``widget.params.frame.value = "image"``).
    """

    title = "Descriptors"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.cells: Cells | None = None
        self.map_layers: dict = {}
        self.vectors_layer = None
        self._built: dict | None = None  # result, image layer and B layer of the last build
        layout = self.body_layout
        layout.addLayout(self._build_form())
        layout.addWidget(self.build_button)
        layout.addWidget(self.keep_layers_check())
        layout.addWidget(self.jobs)
        layout.addWidget(self.summary)
        layout.addLayout(self._build_arrows())
        layout.addLayout(self._build_reference())
        layout.addWidget(self.export_button)
        layout.addWidget(self._build_scatter())
        layout.addStretch(1)
        self._connect()
        self.listen_layers(self.refresh_layers)
        self.refresh_layers()

    def _build_form(self) -> QFormLayout:
        """The image and columns pickers, the pixel size, the build's options (a form generated from CellsOptions),
        the map picker, Build cells and its job panel."""
        self.image_combo = QComboBox()
        self.a_combo = QComboBox()
        self.b_combo = QComboBox()
        # the build's options: generated from CellsOptions (defaults of a whole analysis, as the CLI's)
        self.params = options_form("cells", ("frame",))
        self.frame_combo = self.params.frame.native
        self.pixel_y = self._pixel_spin()
        self.pixel_x = self._pixel_spin()
        self.pixel_note = QLabel("")
        self.pixel_note.setWordWrap(True)
        pixel_row = QHBoxLayout()
        pixel_row.addWidget(QLabel("y"))
        pixel_row.addWidget(self.pixel_y)
        pixel_row.addWidget(QLabel("x"))
        pixel_row.addWidget(self.pixel_x)
        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("A columns", self.a_combo)
        form.addRow("B columns", self.b_combo)
        form.addRow("Pixel size (pm/px)", pixel_row)
        form.addRow("", self.pixel_note)
        form.addRow(self.params.native)
        self.map_combo = QComboBox()
        for name in DESCRIPTORS:
            self.map_combo.addItem(name)
            self.map_combo.setItemData(self.map_combo.count() - 1, DESCRIPTOR_LABELS[name], 3)  # Qt.ToolTipRole
        self.map_combo.setCurrentText(DEFAULT_MAP)
        self.map_combo.setToolTip("Descriptor map shown on the image (one at a time; others are hidden)")
        self.map_combo.currentTextChanged.connect(self.guarded(lambda: self.show_map()))
        form.addRow("Show map", self.map_combo)
        self.build_button = QPushButton("Build cells")
        self.build_button.clicked.connect(self.guarded(self.run))
        self.jobs = JobPanel(self)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        return form

    def _build_arrows(self) -> QFormLayout:
        """The polarization arrows (shown, colour, length), the markers check and Export CSV..."""
        self.arrows_check = QCheckBox("Polarization arrows")
        self.arrows_check.setToolTip("Add (or show) arrows from each B column along its offset P")
        self.arrows_check.toggled.connect(self.guarded(lambda: self.show_arrows(self.arrows_check.isChecked())))
        self.arrow_colour = QComboBox()
        self.arrow_colour.addItems(list(ARROW_COLOURS))
        self.arrow_colour.setToolTip("Colour of the arrows: the length |P| or the direction of P")
        self.arrow_colour.currentTextChanged.connect(lambda _text: self._colour_arrows())
        self.length_spin = QDoubleSpinBox()
        self.length_spin.setRange(0.1, 1000.0)
        self.length_spin.setDecimals(1)
        self.length_spin.setValue(10.0)
        self.length_spin.setToolTip("Polarization arrows are drawn this many times longer than the B offset")
        self.length_spin.valueChanged.connect(self.set_vector_length)
        self.arrow_legend = QLabel("")
        self.arrow_legend.setWordWrap(True)
        self.markers = markers_check(self.viewer)
        self.export_button = QPushButton("Export CSV...")
        self.export_button.clicked.connect(self.guarded(self.export_csv))
        arrows = QFormLayout()
        arrows.addRow(self.arrows_check, self.arrow_colour)
        arrows.addRow("Arrow length x", self.length_spin)
        arrows.addRow("", self.arrow_legend)
        arrows.addRow(self.markers)
        return arrows

    def _build_reference(self) -> QFormLayout:
        """The mean P: a reference region, its options (a form generated from PolarizationOptions) and Mean P."""
        # absolute polarization: the mean P, against a reference region of known P drawn on a Shapes layer
        self.reference_combo = QComboBox()
        self.reference_combo.setToolTip("A Shapes layer drawn over cells of known polarization (a substrate, a "
                                        "centrosymmetric region): its mean P is subtracted (tilt and probe "
                                        "asymmetry shift all B columns alike)")
        self.mean_p_button = QPushButton("Mean P")
        self.mean_p_button.setToolTip("Mean polarization of the unflagged cells with its statistical and "
                                      "fit-model uncertainty, referenced to the region when one is chosen")
        self.mean_p_button.clicked.connect(self.guarded(self.run_mean_p))
        self.mean_p_text = QLabel("")
        self.mean_p_text.setWordWrap(True)
        # the mean P's options: generated from PolarizationOptions (a reference as grid ranges, the variants)
        self.mean_p_params = options_form("polarization")
        reference = QFormLayout()
        reference.addRow("Reference region", self.reference_combo)
        reference.addRow(self.mean_p_params.native)
        reference.addRow(self.mean_p_button)
        reference.addRow(self.mean_p_text)
        return reference

    def _build_scatter(self) -> CellScatter:
        """The scatter plot of two descriptors over the cells (drawn only when opened)."""
        self.scatter = CellScatter(lambda: self.viewer.theme)
        self.scatter.setCheckable(True)
        self.scatter.setChecked(False)  # drawn only when opened: the dock stays short and fast
        self.scatter.toggled.connect(lambda _on: self._update_scatter())
        return self.scatter

    def _connect(self) -> None:
        """Follow the pickers: the pixel size of the image, the buttons, the user's own picks."""
        self.image_combo.currentTextChanged.connect(self._update_pixel_size)
        for combo in (self.image_combo, self.a_combo, self.b_combo):
            combo.currentTextChanged.connect(lambda _text: self._update_buttons())
        track_user_picks(self.image_combo, self.a_combo, self.b_combo)

    @staticmethod
    def _pixel_spin() -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, 1e6)
        spin.setDecimals(3)
        spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        spin.setMinimumWidth(80)
        spin.setSpecialValueText("unknown")
        spin.setToolTip("pm per px; 'unknown' (0) keeps lengths in px")
        return spin

    # ----------------------------------------------------------------- layer choice
    def refresh_layers(self, event=None) -> None:
        """Refill the layer choices from the viewer.

        The defaults follow the newest "A columns" / "B columns" layers (e.g. after a second Find); truth layers
        of the synthetic sample are listed but never picked automatically; a hand pick stays.
        """
        layers = list(self.viewer.layers)
        images = [layer.name for layer in layers if isinstance(layer, Image) and not is_map_layer(layer)]
        points = [layer.name for layer in layers if isinstance(layer, Points)]
        candidates = [layer for layer in layers if isinstance(layer, Points) and not is_truth_layer(layer)]
        refill(self.a_combo, points, newest_matching(candidates, "A columns"), auto_first=False)
        refill(self.b_combo, points, newest_matching(candidates, "B columns"), auto_first=False)
        refill(self.reference_combo, [NO_REFERENCE] + [layer.name for layer in layers if isinstance(layer, Shapes)],
               NO_REFERENCE)
        meta = plugin_meta(self.viewer, self.a_combo.currentText())
        refill(self.image_combo, images, meta.get("image") if meta.get("image") in images else None)
        self._update_pixel_size(self.image_combo.currentText())
        if self._built is not None and any(self._built[k] not in self.viewer.layers for k in ("image", "b")):
            self.clear()
        self._update_buttons()

    def _update_scatter(self) -> None:
        """Give the scatter the cells of the last build (when it is open), linked with their B columns layer."""
        built = self._built if self.scatter.isChecked() else None
        if built is None or built["b"] not in self.viewer.layers:
            self.scatter.set_cells(None, None, None)
        else:
            self.scatter.set_cells(self.cells, built["b"], built["result"]["b_rows"])

    def reference_mask(self):
        """(H, W) bool mask of the chosen reference Shapes layer on the built image (None: no reference)."""
        name = self.reference_combo.currentText()
        if not name or name == NO_REFERENCE or name not in self.viewer.layers:
            return None
        shapes, image_layer = self.viewer.layers[name], self._built["image"]
        shape = image_shape(image_layer)
        mask = np.zeros(shape, dtype=bool)
        for vertices in shapes.data:
            world = [shapes.data_to_world(v) for v in np.asarray(vertices)]
            px = np.array([image_layer.world_to_data(v)[-2:] for v in world])
            mask |= polygon2mask(shape, px)
        if not mask.any():
            raise ValueError(f"the shapes of {name!r} do not cover the image; draw the reference over cells")
        return mask

    def run_mean_p(self):
        """The mean P of the built cells (worker: the fit-model variants re-measure the columns)."""
        if self._built is None:
            raise ValueError("Build the cells first.")
        result, image_layer = self._built["result"], self._built["image"]
        options = form_options("polarization", self.mean_p_params)
        mask = self.reference_mask()
        if mask is not None and options.reference is not None:
            raise ValueError(f"two references: the Shapes layer {self.reference_combo.currentText()!r} and the grid "
                             f"ranges {options.reference!r}; choose '{NO_REFERENCE}' or empty the ranges")
        if options.reference is not None:
            reference_cells(self.cells, options.reference)  # bad ranges: a message now, not a failed job
        image = np.asarray(image_layer.data[0] if image_layer.multiscale else image_layer.data, dtype=float)
        where = self.reference_combo.currentText() if mask is not None else f"grid cells {options.reference}"
        return self.jobs.run(mean_p_job, self.cells, image, result["columns"], options=options, reference=mask,
                             on_result=lambda mean: self._show_mean_p(mean, where), label="Mean P")

    def _show_mean_p(self, mean, where: str) -> None:
        unit = self.cells.units.get("Px", "")
        ref = (f"referenced to {where} ({mean.n_reference} cells)" if mean.n_reference
               else "no reference: an absolute P needs one (tilt and probe asymmetry give a uniform offset)")
        self.mean_p_text.setText(
            f"mean P = ({mean.mean[0]:+.2f}, {mean.mean[1]:+.2f}) \u00b1 ({mean.sigma[0]:.2f}, {mean.sigma[1]:.2f}) "
            f"{unit} over {mean.n_cells} cells (statistical and fit-model, {len(mean.variants)} variants); {ref}"
            + (f". {mean.note}" if mean.note else ""))

    def clear(self) -> None:
        """Forget the last build (its image or B columns layer is gone): no cells, no summary, no arrows."""
        self.scatter.set_cells(None, None, None)
        self.cells = None
        self._built = None
        self.map_layers = {}
        self.vectors_layer = None
        self.summary.setText("")
        self.mean_p_text.setText("")
        self.arrow_legend.setText("")
        self.arrows_check.blockSignals(True)
        self.arrows_check.setChecked(False)
        self.arrows_check.blockSignals(False)

    def _update_buttons(self) -> None:
        has_inputs = all(combo.currentText() for combo in (self.image_combo, self.a_combo, self.b_combo))
        self.build_button.setEnabled(has_inputs)
        built = self.cells is not None
        for control in (self.export_button, self.arrows_check, self.arrow_colour, self.length_spin,
                        self.mean_p_button):
            control.setEnabled(built)

    def _update_pixel_size(self, name: str) -> None:
        if name not in self.viewer.layers:
            return
        size, note = _pixel_size_from_layer(self.viewer.layers[name])
        self.pixel_y.setValue(0.0 if size is None else size[0])
        self.pixel_x.setValue(0.0 if size is None else size[1])
        self.pixel_note.setText(note)

    @property
    def pixel_size(self) -> float | tuple[float, float] | None:
        """pm/px from the spin boxes: None when unknown, a float for square pixels, else (sy, sx)."""
        sy, sx = self.pixel_y.value(), self.pixel_x.value()
        if sy <= 0 and sx <= 0:
            return None
        if sy <= 0 or sx <= 0:
            raise ValueError("enter the pixel size for both y and x (or set both to 'unknown')")
        return sx if sy == sx else (sy, sx)

    def _layer(self, combo: QComboBox, kind, what: str):
        name = combo.currentText()
        if not name or name not in self.viewer.layers or not isinstance(self.viewer.layers[name], kind):
            raise ValueError(f"pick the {what} layer (none is selected or it was removed)")
        return self.viewer.layers[name]

    # ----------------------------------------------------------------- build
    def run(self):
        """Build cells from the current layer data in a worker; returns the started worker.

        Raises
        ------
        ValueError, TypeError
            A form value the CellsOptions do not allow, or a missing or unusable layer choice or pixel size (the
            button shows it in the dock and as a notification).
        """
        options = form_options("cells", self.params)
        image_layer = self._layer(self.image_combo, Image, "image")
        a_layer = self._layer(self.a_combo, Points, "A columns")
        b_layer = self._layer(self.b_combo, Points, "B columns")
        if a_layer is b_layer:
            raise ValueError("the A and B columns must be two different Points layers")
        data = image_layer.data[0] if image_layer.multiscale else image_layer.data
        image = np.asarray(data, dtype=float)
        if image.ndim != 2:
            raise ValueError(f"the image must be 2D (one STEM frame), got shape {image.shape}")
        a_pos = _positions_in_image_px(a_layer, image_layer)
        b_pos = _positions_in_image_px(b_layer, image_layer)
        pixel_size = self.pixel_size

        # measure intensities as the column finder did, so I14 / I5 mean the same as in scripts
        found = plugin_meta(self.viewer, b_layer.name).get("columns")
        params = found.provenance.get("params", {}) if found is not None else {}

        def done(result):
            return self._show(result, image_layer, b_layer)

        return self.jobs.run(
            compute_cells, image, a_pos, b_pos, pixel_size=pixel_size, options=options,
            radius=params.get("radius"), intensity=params.get("intensity", "gaussian"), found=found, on_result=done,
            label="Build cells",
        )

    def _show(self, result: dict, image_layer, b_layer):
        """Generator run by the job panel: one layer change per event-loop turn."""
        cells: Cells = result["cells"]
        *maps, old_vectors = self.recycle_own_layers([*self.map_layers.values(), self.vectors_layer])
        old_maps = dict(zip(self.map_layers, maps))
        self.cells = cells
        self.map_layers = {}
        self.vectors_layer = None
        self._built = {"result": result, "image": image_layer, "b": b_layer}
        self.summary.setText(
            f"{len(cells)} cells on a {cells.grid_shape[0]} x {cells.grid_shape[1]} grid; "
            f"{cells.n_excluded} B columns without 4 A corners excluded; lengths in {cells.length_unit}; "
            f"{flag_summary(cells)}"
        )
        self._update_buttons()
        yield
        # before the map: its insertion refreshes pickers
        self._annotate_b_layer(b_layer, cells, result["b_rows"], result["raster"])
        for name, layer in old_maps.items():  # the maps shown before, refreshed in place (a removal blocks ~1 s)
            if layer is not None:
                yield
                self.map_layers[name] = update_layer(layer, self._map_tuple(name))
        yield
        self.show_map()
        self._update_scatter()
        if old_vectors is not None:
            yield
            self._refresh_vectors(old_vectors)
        elif self.arrows_check.isChecked():
            yield
            self.show_arrows(True)

    @staticmethod
    def _annotate_b_layer(b_layer, cells: Cells, b_rows, raster) -> None:
        """Write i, j and the descriptors as features of the B layer and the cells (and their regions on the
        image, ``"cell_raster"``) into its metadata."""
        n_b = len(b_layer.data)
        extra = pd.DataFrame(np.nan, index=range(n_b), columns=["i", "j", *DESCRIPTORS])
        extra.iloc[b_rows] = cells.table[["i", "j", *DESCRIPTORS]].to_numpy()
        features = b_layer.features.reset_index(drop=True)
        features = features.drop(columns=[c for c in extra.columns if c in features.columns])
        b_layer.features = pd.concat([features, extra], axis=1)
        meta = dict(b_layer.metadata)
        meta[META_KEY] = {**meta.get(META_KEY, {}), "cells": cells, "cell_raster": raster}
        b_layer.metadata = meta

    # ----------------------------------------------------------------- maps
    def show_map(self, name: str | None = None):
        """Show descriptor ``name``'s map of the last build (added on first use), hiding the other maps.

        Returns the layer, or None before the first build.
        """
        if name is not None:
            self.map_combo.blockSignals(True)
            self.map_combo.setCurrentText(name)
            self.map_combo.blockSignals(False)
        name = self.map_combo.currentText()
        if self.cells is None or self.closed:
            return None
        layer = self.map_layers.get(name)
        if layer is not None and layer in self.viewer.layers:
            show_only(self.viewer, layer)
            return layer
        layer = add_map_layer(self.viewer, self._map_tuple(name), image_layer=self._built["image"])
        self.map_layers[name] = layer
        return layer

    def _map_tuple(self, name: str) -> tuple:
        """LayerDataTuple of descriptor ``name``'s map of the last build."""
        return cell_map_tuple(self.cells, name, image_layer=self._built["image"], signed=name in SIGNED,
                              raster=self._built["result"]["raster"])

    # ----------------------------------------------------------------- arrows
    def show_arrows(self, visible: bool = True):
        """Show (adding on first use) or hide the polarization arrows of the last build; returns the layer."""
        if self.cells is None or self.closed:
            return None
        if self.vectors_layer is not None and self.vectors_layer in self.viewer.layers:
            self.vectors_layer.visible = visible
            return self.vectors_layer
        if not visible:
            return None
        self.vectors_layer = self.viewer.add_layer(self._vectors(self.cells, self._built["result"],
                                                                 self._built["image"]))
        self._colour_arrows()
        return self.vectors_layer

    def _vectors(self, cells: Cells, result: dict, image_layer) -> Vectors:
        """One arrow per unflagged cell (flagged cells have NaN polarization: no arrow, and no NaN colour that
        would stop the whole layer from drawing)."""
        table = cells.table.reset_index(drop=True)
        keep = np.isfinite(table["Px"].to_numpy(dtype=float)) & np.isfinite(table["Py"].to_numpy(dtype=float))
        if "flag" in table.columns:
            keep &= table["flag"].fillna("").astype(str).eq("").to_numpy()
        start = table[["y", "x"]].to_numpy()[keep]
        vectors = np.stack([start, np.asarray(result["offset_px"])[keep]], axis=1)
        features = table.loc[keep, ["i", "j", "Px", "Py"]].reset_index(drop=True)
        features["P_abs"] = np.hypot(features["Px"], features["Py"])
        features["P_angle"] = np.degrees(np.arctan2(features["Py"], features["Px"]))
        return Vectors(
            vectors, name="Polarization", length=self.length_spin.value(), edge_width=0.15 * self._pitch(cells),
            vector_style="arrow", scale=image_layer.scale, translate=image_layer.translate,
            rotate=image_layer.rotate, shear=image_layer.shear, affine=image_layer.affine, units=image_layer.units,
            features=features, edge_color="P_abs", edge_colormap="viridis",
            metadata={META_KEY: {"cells": cells, "units": "px (image frame), times length"}},
        )

    def _refresh_vectors(self, layer):
        """The arrows layer ``layer`` of an earlier build given the last build's arrows in place; returns it."""
        new = self._vectors(self.cells, self._built["result"], self._built["image"])
        layer.data = new.data
        layer.features = new.features
        layer.metadata = new.metadata
        layer.edge_width = new.edge_width
        self.vectors_layer = layer
        self._colour_arrows()
        return layer

    def _colour_arrows(self) -> None:
        """Colour the arrows by the chosen feature and write the colour legend under the controls."""
        layer = self.vectors_layer
        if layer is None or layer not in self.viewer.layers:
            return
        feature, colormap = ARROW_COLOURS[self.arrow_colour.currentText()]
        layer.edge_colormap = colormap
        layer.edge_color = feature
        values = layer.features[feature].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if feature == "P_abs":
            unit = self.cells.units.get("Px", "")
            low, high = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 0.0))
            layer.edge_contrast_limits = (float(low), float(high) if high > low else float(low) + 1.0)
            text = f"arrow colour |P|: {low:.3g} (dark) to {high:.3g} {unit} (yellow), viridis"
        else:
            layer.edge_contrast_limits = (-180.0, 180.0)
            text = "arrow colour: direction of P, -180 to 180 deg (cyclic 'twilight'; 0 deg = +Px)"
        self.arrow_legend.setText(text)

    @staticmethod
    def _pitch(cells: Cells) -> float:
        return float(min(cells.lattice.spacings))

    # ----------------------------------------------------------------- outputs
    def set_vector_length(self, value: float) -> None:
        """Draw the polarization arrows ``value`` times the B offset."""
        if self.vectors_layer is not None and self.vectors_layer in self.viewer.layers:
            self.vectors_layer.length = float(value)

    def export_csv(self, path=None):
        """Write the last cells as CSV (units in the headers); asks for a file when ``path`` is None.

        Returns the written path, or None when there is nothing to write or the dialog was cancelled.
        """
        if self.cells is None:
            show_info("Build the cells first.")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export cells as CSV", "cells.csv", "CSV (*.csv)")
            if not path:
                return None
        written = self.cells.to_csv(path)
        self.jobs.status.setText(f"saved {written}")
        return written
