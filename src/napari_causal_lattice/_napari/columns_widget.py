"""The "Atom columns" dock widget: find, refine and hand-edit the A and B atom columns of a STEM image.

Find runs :func:`~napari_causal_lattice.columns.find_columns` on the chosen image layer (for a stack, the
plane on screen) in a worker and adds two Points layers, "A columns" (orange) and "B columns" (cyan),
aligned with the image (its scale/translate/rotate/shear/affine copied, data in image px), with features
``intensity``, ``width`` and ``quality`` and ``metadata[META_KEY] = {"columns": Columns, "image": name}``.
Re-running Find replaces the layers of the previous Find, unless "keep the layers of earlier runs" is ticked:
then the new layers get a suffix (" [2]", ...).  The form of Find's parameters (:attr:`ColumnsWidget.params`)
is generated from :class:`~napari_causal_lattice.options.ColumnsOptions` (``_forms.py``), with the defaults of
``analyze``: "Projection" picks the crystal projection ("auto" detects [001] or [110] from the B site; the
summary names the one used), "Spacing" restricts the lattice search, and so on.  The pixel size is read from the
image layer; when the image file's scale had no unit and one was assumed (``io.load_image`` records it), the
pixel-size note says so.

Users then add, move or delete points with napari's Points tools; Refine re-fits only the points that
were added or moved since the last refinement (the others keep their positions) and rebuilds the
Columns on the layers; Undo restores the points from before the last Refine, or from before a repeated Find
(which refreshes the A and B layers in place).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from napari.layers import Image, Points
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
)
from scipy.spatial import cKDTree

from ..columns import Columns, as_image, columns_from_positions, find_columns, refine_columns
from ._combos import refill
from ._dock import DockWidget
from ._forms import form_options, options_form
from ._mpl import MplCanvas
from ._jobs import JobPanel
from .layers import META_KEY, is_map_layer, show_scale_bar, update_layer

#: ColumnsOptions shown first in the form (the others follow in field order).
COLUMNS_FORM_FIRST = ("projection", "spacing", "intensity", "b_brighter")
#: Face colours of the two Points layers.
COLORS = {"A": "orange", "B": "cyan"}
#: Feature columns written on the Points layers.
FEATURES = ("intensity", "width", "quality")


def pixel_size_from_layer(layer) -> tuple[float | None, str]:
    """Pixel size in pm/px from an image layer's scale and units, and a note on where it came from.

    Length units (nm, angstrom, pm...) are converted to pm; a scale without units is taken as pm/px;
    a scale of 1 without units means unknown (None).
    """
    scale = float(np.asarray(layer.scale, dtype=float)[-1])
    units = getattr(layer, "units", None)
    unit = units[-1] if units is not None else None
    if unit is not None and str(unit.dimensionality) == "[length]":
        return float(scale * (1 * unit).to("pm").magnitude), f"from the image scale ({unit:~})"
    if np.isclose(scale, 1.0):
        return None, "unknown (the image has no scale): positions stay in px"
    return scale, "image scale, assumed pm/px"


def scale_unit_note(layer) -> str:
    """What the reader assumed about a unit-less scale of the file (``""`` when nothing was assumed).

    Reads ``metadata[META_KEY]["image_info"]["scale_unit"]`` (``{"unit", "source"}``, from ``io.load_image``).
    """
    meta = layer.metadata.get(META_KEY)
    info = meta.get("image_info") if isinstance(meta, dict) else None
    scale_unit = info.get("scale_unit") if isinstance(info, dict) else None
    if not isinstance(scale_unit, dict):
        return ""
    unit = scale_unit.get("unit", "?")
    if scale_unit.get("source") == "assumed":
        return (f"the file's axis scale has no unit; {unit} was assumed (HyperSpy's usual unit): check the pixel "
                "size")
    return f"the file's axis scale has no unit; read in {unit} as given"


def image_plane(layer, viewer) -> np.ndarray:
    """The 2D plane of an image layer shown in the viewer (RGB kept as (H, W, 3|4)), as a numpy array."""
    data = layer.data[0] if layer.multiscale else layer.data
    spatial = layer.ndim
    lead = spatial - 2
    if lead > 0:
        point = layer.world_to_data(viewer.dims.point)
        index = tuple(int(np.clip(np.rint(point[k]), 0, data.shape[k] - 1)) for k in range(lead))
        data = data[index]
    return np.asarray(data)


def _transform_kwargs(layer) -> dict:
    """scale/translate/rotate/shear/affine/units of the image's last two (spatial) dimensions."""
    if layer.ndim == 2:
        kwargs = {
            "scale": tuple(layer.scale),
            "translate": tuple(layer.translate),
            "rotate": np.asarray(layer.rotate),
            "shear": np.asarray(layer.shear),
            "affine": np.asarray(layer.affine.affine_matrix),
        }
    else:
        affine = np.asarray(layer.affine.affine_matrix)
        keep = [layer.ndim - 2, layer.ndim - 1, layer.ndim]
        kwargs = {
            "scale": tuple(layer.scale[-2:]),
            "translate": tuple(layer.translate[-2:]),
            "rotate": np.asarray(layer.rotate)[-2:, -2:],
            "affine": affine[np.ix_(keep, keep)],
        }
    units = getattr(layer, "units", None)
    if units is not None:
        kwargs["units"] = tuple(str(u) for u in units[-2:])
    return kwargs


def _unique_name(viewer, base: str) -> str:
    names = {layer.name for layer in viewer.layers}
    if base not in names:
        return base
    k = 2
    while f"{base} [{k}]" in names:
        k += 1
    return f"{base} [{k}]"


def refine_edits(plane, a_data, b_data, a_ref, b_ref, *, radius, pixel_size, intensity, progress=None,
                 cancel=None) -> dict:
    """Re-fit the points added or moved since the last refinement and rebuild the Columns.

    Parameters
    ----------
    plane : (H, W) array
        The image the columns were found in.
    a_data, b_data : (Na, 2), (Nb, 2) arrays
        Current A and B positions (y, x) in px.
    a_ref, b_ref : (n, 2) arrays
        Positions after the last refinement; points found there (within 1e-6 px) are left alone.
    radius : float
        Fit radius in px.

    Returns
    -------
    dict
        ``a``, ``b``: new positions; ``changed_a``, ``changed_b``: (N,) bool of the refined points;
        ``columns``: Columns over all current points.
    """
    out = {}
    for name, data, ref in (("a", a_data, a_ref), ("b", b_data, b_ref)):
        data = np.asarray(data, dtype=float).reshape(-1, 2)
        if len(ref) and len(data):
            dist, _ = cKDTree(ref).query(data)
            changed = dist > 1e-6
        else:
            changed = np.ones(len(data), dtype=bool)
        new = data.copy()
        if changed.any():
            # B points are fitted with the (already refined) A columns peeled off, as find_columns does
            new[changed] = refine_columns(plane, data[changed], radius=radius, intensity=intensity,
                                          peel=out["a"] if name == "b" else None, cancel=cancel).positions
        out[name], out[f"changed_{name}"] = new, changed
    if progress is not None:
        progress(1, 2)
    out["columns"] = columns_from_positions(plane, out["a"], out["b"], pixel_size=pixel_size, radius=radius,
                                            intensity=intensity)
    return out


def _measurement_text(columns) -> str:
    """What the measurement says about the instrument: the line jitter and the faint columns."""
    parts = []
    scan = getattr(columns, "scan", None)
    if scan is not None:
        pm = "" if scan.rms_pm is None else f" ({scan.rms_pm:.1f} pm)"
        done = "corrected" if scan.applied else "not corrected"
        note = (scan.provenance or {}).get("note")
        parts.append(f"line jitter {scan.rms_px:.2f} px{pm} rms, {done}" + (f": {note}" if note else ""))
    faint = getattr(columns, "faint", None)
    if faint is not None and faint.any():
        parts.append(f"{int(faint.sum())} faint columns (barely above the noise; their cells are flagged)")
    return "".join(f"; {p}" for p in parts)


class ColumnsWidget(DockWidget):
    """Find A and B atom columns on an image layer; refine hand-edited points.

    Attributes
    ----------
    jobs : JobPanel
        Runs Find and Refine in a worker thread.
    columns : Columns or None
        The columns on the current A/B layers.
    a_layer, b_layer : Points or None
        The layers made by the last Find.
    params : magicgui Container
        Find's parameters, one widget per ColumnsOptions form field (``widget.params.projection.value = "[001]"``).
    """

    title = "Atom columns"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.columns: Columns | None = None
        self.a_layer: Points | None = None
        self.b_layer: Points | None = None
        self._plane: np.ndarray | None = None
        self._refined: dict[str, np.ndarray] = {}
        self._undo: dict | None = None

        self.image_combo = QComboBox()
        self.pixel_spin = self._spin(1e6, "pm per px; 'unknown' keeps lengths in px")
        self.pixel_note = QLabel("")
        self.pixel_note.setWordWrap(True)
        # Find's parameters: generated from ColumnsOptions (defaults of a whole analysis, as the CLI's)
        self.params = options_form("columns", COLUMNS_FORM_FIRST)
        self.projection_combo = self.params.projection.native

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Pixel size (pm/px)", self.pixel_spin)
        form.addRow("", self.pixel_note)
        form.addRow(self.params.native)

        self.find_button = QPushButton("Find")
        self.find_button.setToolTip("Find, refine and classify the columns (replaces the layers of the previous Find "
                                    "unless 'keep the layers of earlier runs' is ticked)")
        self.find_button.clicked.connect(self.guarded(self.run))
        self.refine_button = QPushButton("Refine")
        self.refine_button.setToolTip("Re-fit only the points added or moved since the last refinement")
        self.refine_button.clicked.connect(self.guarded(self.refine))
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Restore the points from before the last Refine, or from before a repeated Find")
        self.undo_button.clicked.connect(self.guarded(self.undo_refine))
        buttons = QHBoxLayout()
        buttons.addWidget(self.refine_button)
        buttons.addWidget(self.undo_button)
        self.jobs = JobPanel(self)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        # the scan-line jitter find_columns estimated: shift of each scan line (shown after a Find)
        self.jitter_plot = MplCanvas(figsize=(4.0, 1.8), toolbar=False, theme=lambda: self.viewer.theme,
                                     min_height=150)
        self.jitter_plot.setVisible(False)

        layout = self.body_layout
        layout.addLayout(form)
        layout.addWidget(self.find_button)
        layout.addWidget(self.keep_layers_check())
        layout.addLayout(buttons)
        layout.addWidget(self.jobs)
        layout.addWidget(self.summary)
        layout.addWidget(self.jitter_plot)
        layout.addStretch(1)

        self.image_combo.currentTextChanged.connect(self._update_pixel_size)
        self.listen_layers(self.refresh_layers)
        self.refresh_layers()

    @staticmethod
    def _spin(maximum: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(0.0, maximum)
        spin.setDecimals(3)
        spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        spin.setSpecialValueText("unknown")
        spin.setToolTip(tip)
        return spin

    # ----------------------------------------------------------------- layer choice
    def refresh_layers(self, event=None) -> None:
        """Refill the image choice from the viewer, keeping the current pick when it still exists."""
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image) and not is_map_layer(layer)]
        if refill(self.image_combo, names):
            self._update_pixel_size(self.image_combo.currentText())
        self._update_buttons()

    def _update_pixel_size(self, name: str) -> None:
        if name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        size, note = pixel_size_from_layer(layer)
        assumed = scale_unit_note(layer)
        self.pixel_spin.setValue(0.0 if size is None else size)
        self.pixel_note.setText(f"{note}; {assumed}" if assumed else note)
        self.params.spacing.native.setSuffix(" px" if size is None else " pm")

    def _update_buttons(self) -> None:
        self.find_button.setEnabled(self.image_combo.count() > 0)
        made = self.a_layer is not None and self.a_layer in self.viewer.layers
        self.refine_button.setEnabled(made)
        self.undo_button.setEnabled(made and self._undo is not None)

    @property
    def pixel_size(self) -> float | None:
        value = self.pixel_spin.value()
        return None if value <= 0 else float(value)

    def image_layer(self) -> Image:
        name = self.image_combo.currentText()
        if name not in self.viewer.layers:
            raise ValueError("pick an image layer first (open a STEM image or File > Open Sample)")
        return self.viewer.layers[name]

    # ----------------------------------------------------------------- Find
    def options(self):
        """The ColumnsOptions of the form (validated: a value they do not allow is a ValueError/TypeError naming
        the field, which the Find button shows in the dock)."""
        return form_options("columns", self.params)

    def run(self):
        """Find the columns on the chosen image (current plane) in a worker; returns the started worker."""
        options = self.options()
        layer = self.image_layer()
        plane = image_plane(layer, self.viewer)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plane = as_image(plane)
        for item in caught:
            show_info(str(item.message))
        return self.jobs.run(
            find_columns,
            plane,
            pixel_size=self.pixel_size,
            options=options,
            on_result=lambda cols: self._add_layers(cols, layer, plane),  # a generator: one layer per turn
            label="Find columns",
        )

    def _points_kwargs(self, name: str, sub: str, columns: Columns, image_layer) -> dict:
        idx = columns.a if sub == "A" else columns.b
        frame = columns.to_frame().iloc[idx]
        size = 0.18 * min(columns.lattice.spacings)
        return {
            "name": _unique_name(self.viewer, name),
            "face_color": COLORS[sub],
            "border_color": "black",
            "border_width": 0.05,
            "size": size,
            "features": frame[list(FEATURES)].reset_index(drop=True),
            "metadata": {META_KEY: {"columns": columns, "image": image_layer.name}},
            **_transform_kwargs(image_layer),
        }

    def _add_layers(self, columns: Columns, image_layer, plane):
        """Generator run by the job panel: the A layer, then (next event-loop turn) the B layer.

        A re-run refreshes the layers of the last Find in place (a layer removal costs about a second in the GUI
        thread), after a snapshot that Undo restores (the points as they were, edits included)."""
        old = self.recycle_own_layers([self.a_layer, self.b_layer])
        undo = self._snapshot() if all(layer is not None for layer in old) else None
        self.columns = columns
        self._plane = plane
        self.a_layer = self._points_layer(old[0], "A columns", "A", columns, image_layer)
        yield
        self.b_layer = self._points_layer(old[1], "B columns", "B", columns, image_layer)
        show_scale_bar(self.viewer, image_layer)
        self._refined = {"A": self.a_layer.data.copy(), "B": self.b_layer.data.copy()}
        self._undo = undo
        self._update_buttons()
        s1, s2 = columns.lattice.spacings
        unit = "px"
        if columns.pixel_size is not None:
            s1, s2, unit = s1 * columns.pixel_size, s2 * columns.pixel_size, "pm"
        self.summary.setText(
            f"{len(columns.a)} A and {len(columns.b)} B columns; lattice {s1:.1f} x {s2:.1f} {unit}, "
            f"angle {columns.lattice.angle:.1f} deg; projection {columns.motif.name}; "
            f"median fit quality {np.median(columns.quality):.2f}" + _measurement_text(columns)
        )
        self._show_jitter(columns.scan)

    def _points_layer(self, old, name: str, sub: str, columns: Columns, image_layer):
        """The Points layer of sublattice ``sub``: ``old`` refreshed in place, or a new layer when None."""
        data = columns.positions[columns.a if sub == "A" else columns.b]
        if old is None:
            return self.viewer.add_points(data, **self._points_kwargs(name, sub, columns, image_layer))
        kwargs = {**self._points_kwargs(name, sub, columns, image_layer), "name": old.name}
        return update_layer(old, (data, kwargs, "points"))

    def _show_jitter(self, scan) -> None:
        """Plot the shift of each scan line (hidden when the columns carry no estimate)."""
        self.jitter_plot.setVisible(scan is not None)
        if scan is None:
            return

        def draw(figure):
            ax = figure.subplots()
            rows = np.arange(len(scan.shifts))
            ax.fill_between(rows, scan.shifts - scan.sigma, scan.shifts + scan.sigma, color="0.5", alpha=0.4, lw=0)
            ax.plot(rows, scan.shifts, lw=0.7)
            ax.set_xlabel("scan line", fontsize=7)
            ax.set_ylabel("shift (px)", fontsize=7)
            ax.tick_params(labelsize=7)

        self.jitter_plot.plot(draw)

    # ----------------------------------------------------------------- Refine / Undo
    def _check_made_layers(self) -> None:
        if self.a_layer is None or self.a_layer not in self.viewer.layers or self.b_layer not in self.viewer.layers:
            raise ValueError("run Find first: Refine works on the A/B columns layers this widget made")

    def refine(self):
        """Re-fit the points added or moved since the last refinement (worker); returns the started worker."""
        self._check_made_layers()
        radius = float(self.columns.provenance.get("params", {}).get("radius") or 0.0) or None
        return self.jobs.run(
            refine_edits,
            self._plane,
            np.asarray(self.a_layer.data)[:, -2:],
            np.asarray(self.b_layer.data)[:, -2:],
            self._refined["A"],
            self._refined["B"],
            radius=radius,
            pixel_size=self.columns.pixel_size,
            intensity=self.columns.provenance.get("params", {}).get("intensity", "gaussian"),
            on_result=self._apply_refined,
            label="Refine columns",
        )

    def _snapshot(self) -> dict:
        return {
            "A": (self.a_layer.data.copy(), self.a_layer.features.copy()),
            "B": (self.b_layer.data.copy(), self.b_layer.features.copy()),
            "refined": {k: v.copy() for k, v in self._refined.items()},
            "columns": self.columns,
        }

    def _apply_refined(self, out: dict) -> None:
        self._check_made_layers()
        self._undo = self._snapshot()
        columns = out["columns"]
        frame = columns.to_frame()
        for sub, layer, key in (("A", self.a_layer, "a"), ("B", self.b_layer, "b")):
            idx = columns.a if sub == "A" else columns.b
            layer.data = out[key]
            layer.features = pd.DataFrame(frame.iloc[idx][list(FEATURES)].reset_index(drop=True))
            layer.metadata[META_KEY] = {**layer.metadata.get(META_KEY, {}), "columns": columns}
        self.columns = columns
        self._refined = {"A": np.asarray(out["a"]).copy(), "B": np.asarray(out["b"]).copy()}
        n = int(out["changed_a"].sum() + out["changed_b"].sum())
        self.summary.setText(f"refined {n} added/moved point(s); {len(columns.a)} A and {len(columns.b)} B columns")
        self._update_buttons()

    def undo_refine(self) -> None:
        """Restore the points (positions and features) from before the last Refine or repeated Find."""
        if self._undo is None:
            show_info("nothing to undo: no Refine or repeated Find since the first Find")
            return
        self._check_made_layers()
        snap, self._undo = self._undo, None
        for sub, layer in (("A", self.a_layer), ("B", self.b_layer)):
            data, features = snap[sub]
            layer.data = data
            layer.features = features
            layer.metadata[META_KEY] = {**layer.metadata.get(META_KEY, {}), "columns": snap["columns"]}
        self._refined = snap["refined"]
        self.columns = snap["columns"]
        self.summary.setText("restored the points from before the last Refine or Find")
        self._update_buttons()
