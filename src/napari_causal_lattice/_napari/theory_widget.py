"""The "Theory (LGD)" dock widget: Eqs. 15-16 plotted live, and a measured coupling profile across a drawn wall.

Top: spin boxes for the doping factor ``eps``, the wall width ``Lc`` (px), the field ratio ``r = e2*/e1*``,
the electrostriction coefficients and ``P0``; the plots of Eq. 15 (``dP2/dP1``) and Eq. 16 (strain
couplings) vs distance follow every change.  Bottom: pick a Shapes layer whose line is the wall and a
source layer (a sliding-result overlay, or the B columns Points layer after Descriptors), a coupling, and
"Measure profile" runs :func:`~napari_causal_lattice.walls.wall_profile` in a worker; the measured profile,
its tanh fit and the theory shape with the current ``Lc`` are drawn under the theory.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Points, Shapes
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
)

from .. import theory
from ..lattice import DESCRIPTORS
from ..options import LGDOptions
from ._combos import refill, track_user_picks
from ._dock import DockWidget
from ._forms import form_options, options_form
from ._jobs import JobPanel
from ._mpl import MplCanvas
from .layers import META_KEY, image_data_to_world


#: Decimals of the LGD parameters' spin boxes (each is also an attribute of the dock: ``dock.Lc.value()``).
_LGD_DECIMALS = {"eps": 3, "Lc": 2, "r": 3, "Q11": 4, "Q12": 4, "Q44": 4, "P0": 3}
#: Wall-profile options shown first in the form (the others of WallOptions follow in field order).
WALL_FORM_FIRST = ("bin_width", "n_bootstrap", "seed")


def _is_sliding(obj) -> bool:
    return hasattr(obj, "element") and hasattr(obj, "adjacency") and hasattr(obj, "window")


def _is_cells(obj) -> bool:
    return hasattr(obj, "table") and hasattr(obj, "lattice") and hasattr(obj, "grid_shape")


def find_source(layer):
    """The SlidingResult or Cells a wall profile can be measured on, riding on ``layer``, or None.

    Sliding-result overlays carry a SlidingResult; the B columns Points layer carries the cells.  Descriptor and
    PCA maps are not sources (a map of one descriptor is not a coupling; its cells are on the B columns layer).
    """
    meta = layer.metadata.get(META_KEY) if hasattr(layer, "metadata") else None
    if not isinstance(meta, dict):
        return None
    sliding = meta.get("sliding")
    if sliding is not None and _is_sliding(sliding):
        return sliding
    cells = meta.get("cells")
    if isinstance(layer, Points) and cells is not None and _is_cells(cells):
        return cells
    return None


def _px_to_world(viewer, source_layer, source) -> np.ndarray:
    """(3, 3) image px -> world of the image a source layer belongs to.

    Points layers hold image px.  Overlays record the image they are aligned on (``metadata[META_KEY]["image"]``);
    an overlay without it is taken as placed with the source's lattice (window index -> image px).
    """
    if isinstance(source_layer, Points):
        return image_data_to_world(source_layer)
    meta = source_layer.metadata.get(META_KEY) or {}
    image = meta.get("image")
    if viewer is not None and image in viewer.layers:
        return image_data_to_world(viewer.layers[image])
    return image_data_to_world(source_layer) @ np.linalg.inv(source.lattice.affine)


def line_in_image_px(shapes_layer, source_layer, source, viewer=None) -> np.ndarray:
    """(2, 2) first and last vertex of the wall shape, as image px of the source.

    Uses the selected shape of ``shapes_layer`` (else its last shape).  Points layers hold image px; an overlay is
    taken back to the px of the image it is aligned on (found in ``viewer``), or through the source's lattice.
    """
    if len(shapes_layer.data) == 0:
        raise ValueError(f"the Shapes layer {shapes_layer.name!r} is empty; draw the wall as a line on it first")
    selected = sorted(shapes_layer.selected_data)
    vertices = np.asarray(shapes_layer.data[selected[-1] if selected else -1], dtype=float)[:, -2:]
    ends = vertices[[0, -1]]
    if np.allclose(ends[0], ends[1]):
        raise ValueError("the wall shape starts and ends at the same point; draw it as a line across the image")
    to_px = np.linalg.inv(_px_to_world(viewer, source_layer, source)) @ image_data_to_world(shapes_layer)
    return (np.column_stack([ends, np.ones(2)]) @ to_px.T)[:, :2]


class TheoryWidget(DockWidget):
    """LGD linearized theory plots and measured coupling profiles across a drawn domain wall.

    Attributes
    ----------
    jobs : JobPanel
        Runs the profile measurement.
    profile : WallProfile or None
        Last measured profile.
    figure : matplotlib Figure
        Plots: Eq. 15, Eq. 16 and the measured profile.
    """

    title = "Theory (LGD)"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.profile = None
        self._profile_source: str | None = None
        layout = self.body_layout
        layout.addWidget(self._build_theory_form())
        layout.addWidget(self._build_measure_form())
        self.jobs = JobPanel()
        layout.addWidget(self.jobs)
        self.plot = MplCanvas(figsize=(5, 6.5), toolbar=False, theme=lambda: self.viewer.theme, min_height=480)
        self.figure = self.plot.figure
        layout.addWidget(self.plot)
        self._connect()
        self.refresh_layers()
        self.redraw()

    def _build_theory_form(self) -> QGroupBox:
        """The LGD parameters: a form generated from LGDOptions (eps also on a slider) and the plotted range."""
        params = QGroupBox("LGD parameters")
        column = QVBoxLayout(params)
        self.lgd_form = options_form("lgd")
        for name, decimals in _LGD_DECIMALS.items():
            spin = self.lgd_form[name].native
            spin.setDecimals(decimals)
            spin.setKeyboardTracking(False)
            setattr(self, name, spin)
        self.eps.setRange(-1.0, 0.99)
        self.Lc.setMinimum(0.1)
        self.eps_slider = QSlider(Qt.Orientation.Horizontal)
        self.eps_slider.setRange(-100, 99)
        self.eps_slider.setValue(int(round(self.eps.value() * 100)))
        self.eps_slider.setToolTip(self.lgd_form.eps.tooltip)
        self.eps_slider.valueChanged.connect(lambda v: self.eps.setValue(v / 100.0))
        self.eps.valueChanged.connect(lambda v: self.eps_slider.setValue(int(round(v * 100))))
        column.addWidget(self.eps_slider)
        column.addWidget(self.lgd_form.native)
        self.extent = QDoubleSpinBox()
        self.extent.setRange(1.0, 1e5)
        self.extent.setDecimals(1)
        self.extent.setSingleStep(10.0)
        self.extent.setValue(200.0)
        self.extent.setKeyboardTracking(False)
        self.extent.setToolTip("half-width of the plotted distance range")
        extent_row = QFormLayout()
        extent_row.addRow("range +- [px]", self.extent)
        column.addLayout(extent_row)
        return params

    def _build_measure_form(self) -> QGroupBox:
        """The measured profile: wall and source layers, the coupling, the wall profile's options (a form
        generated from WallOptions), the buttons and the fit's text."""
        measure = QGroupBox("Measured profile")
        mform = QFormLayout(measure)
        self.wall_layer = QComboBox()
        self.source_layer = QComboBox()
        track_user_picks(self.wall_layer, self.source_layer)
        mform.addRow("wall (Shapes line)", self.wall_layer)
        mform.addRow("source", self.source_layer)
        self.effect = QComboBox()
        self.cause = QComboBox()
        pair = QHBoxLayout()
        pair.addWidget(self.effect)
        pair.addWidget(QLabel("<-"))
        pair.addWidget(self.cause)
        mform.addRow("coupling", pair)
        self.wall_form = options_form("wall", WALL_FORM_FIRST)
        self.bin_width = self.wall_form.bin_width.native
        self.n_bootstrap = self.wall_form.n_bootstrap.native
        self.seed = self.wall_form.seed.native
        mform.addRow(self.wall_form.native)
        buttons = QHBoxLayout()
        self.measure_button = QPushButton("Measure profile")
        self.use_fit_button = QPushButton("Use fitted Lc")
        self.use_fit_button.setEnabled(False)
        buttons.addWidget(self.measure_button)
        buttons.addWidget(self.use_fit_button)
        mform.addRow(buttons)
        self.fit_label = QLabel("")
        self.fit_label.setWordWrap(True)
        mform.addRow(self.fit_label)
        return measure

    def _connect(self) -> None:
        """Redraw on every theory change; follow the layer pickers, the buttons, the layer list and the theme."""
        self.source_layer.currentIndexChanged.connect(lambda _index: self._update_names())
        self.wall_layer.currentIndexChanged.connect(self._update_buttons)
        self.source_layer.currentIndexChanged.connect(self._update_buttons)
        self.measure_button.clicked.connect(self.guarded(self.run))
        self.use_fit_button.clicked.connect(self.use_fitted_lc)
        self.lgd_form.changed.connect(self.redraw)
        self.extent.valueChanged.connect(self.redraw)
        self.listen_layers(self.refresh_layers)
        self.listen(self.viewer.events.theme, lambda _event: self.plot.retheme())

    def refresh_layers(self, event=None) -> None:
        """Refill the layer choices: Shapes layers for the wall; sliding overlays and B columns with cells.

        The source defaults to the newest sliding overlay (a coupling per window, what the fit needs), else the
        newest B columns layer with cells; a hand pick stays.  A profile whose source layer is gone is cleared.
        """
        walls = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        sources = [layer for layer in self.viewer.layers if find_source(layer) is not None]
        overlays = [layer.name for layer in sources if _is_sliding(find_source(layer))]
        names = [layer.name for layer in sources]
        refill(self.wall_layer, walls, walls[-1] if walls else None)
        changed = refill(self.source_layer, names, (overlays or names or [None])[-1])
        if self._profile_source is not None and self._profile_source not in self.viewer.layers:
            self.clear_profile()
        self._update_names(follow_overlay=changed)
        self._update_buttons()

    def _update_buttons(self, *args) -> None:
        ready = bool(self.wall_layer.currentText()) and bool(self.source_layer.currentText())
        self.measure_button.setEnabled(ready)
        self.measure_button.setToolTip("" if ready else "Needs a Shapes layer with the wall line and a source: a "
                                       "sliding overlay, or the B columns after Descriptors")

    def _update_names(self, *args, follow_overlay: bool = True) -> None:
        layer, source = self._source()
        names = list(getattr(source, "names", ())) if _is_sliding(source) else list(DESCRIPTORS)
        meta = (layer.metadata.get(META_KEY) or {}) if layer is not None else {}
        for combo, key, default in ((self.effect, "effect", "Px"), (self.cause, "cause", "Py")):
            current = combo.currentText() or default
            if follow_overlay and meta.get(key) in names:
                current = meta[key]  # an overlay's own coupling
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)

    def _source(self):
        name = self.source_layer.currentText()
        if not name or name not in self.viewer.layers:
            return None, None
        layer = self.viewer.layers[name]
        return layer, find_source(layer)

    def parameters(self) -> dict:
        """Current theory parameters (``Lc`` in px, ``Q`` in m^4/C^2, ``P0`` in C/m^2), as a plain dict of
        :meth:`theory_options`."""
        return self.theory_options().to_dict()

    def theory_options(self) -> LGDOptions:
        """The validated LGD parameters of the form."""
        return form_options("lgd", self.lgd_form)

    def redraw(self, *args) -> None:
        """Redraw Eq. 15, Eq. 16 and (if measured) the profile with the current parameters."""
        p = self.theory_options()
        x = np.linspace(-self.extent.value(), self.extent.value(), 801)
        self.plot.plot(lambda figure: self._draw(figure, x, p))

    def _draw(self, figure, x, p) -> None:
        ax15, ax16, axm = figure.subplots(3, 1, sharex=True)
        ratio = theory.dp2_dp1(x, options=p)
        finite = np.abs(ratio[np.isfinite(ratio)])
        top = max(min(float(np.percentile(finite, 95)) * 1.2, 10.0), 1e-3) if finite.size else 1.0
        # break the line at the poles instead of joining +inf to -inf
        ax15.plot(x, np.where(np.abs(ratio) > 5 * top, np.nan, ratio), color="C3")
        ax15.set_ylim(-top, top)
        ax15.set_ylabel("dP2/dP1")
        ax15.set_title(f"Eq. 15: eps = {p.eps:g}, r = {p.r:g}, Lc = {p.Lc:g} px", fontsize="small")
        couplings = theory.strain_couplings(x, options=p)
        for name, values in couplings.items():
            ax16.plot(x, values, label=name)
        ax16.set_ylabel("[m^2/C]")
        ax16.set_title("Eq. 16: strain-polarization couplings", fontsize="small")
        ax16.legend(fontsize="x-small", ncol=2)
        for ax in (ax15, ax16):
            ax.axvline(0.0, color="0.6", lw=0.8)
            ax.axhline(0.0, color="0.6", lw=0.8)
        self._draw_profile(axm, x, p)
        axm.set_xlim(x[0], x[-1])

    def _draw_profile(self, ax, x, p) -> None:
        ax.set_xlabel("distance from wall [px]")
        if self.profile is None:
            ax.text(0.5, 0.5, "draw the wall as a line on a Shapes layer,\nthen press Measure profile",
                    ha="center", va="center", transform=ax.transAxes, fontsize="small", color="0.4")
            ax.set_yticks([])
            return
        from ..figures import plot_wall_profile

        plot_wall_profile(ax, self.profile)
        fit = self.profile.params
        if fit and not self.profile.fit_problem():
            shape = fit["amplitude"] * np.tanh((x - fit["shift"]) / p.Lc) + fit["offset"]
            ax.plot(x, shape, "--", color="C3", lw=1.0, label=f"theory shape, Lc = {p.Lc:g} px")
            ax.legend(fontsize="x-small")
        ax.set_title(f"measured {self.profile.effect} <- {self.profile.cause}", fontsize="small")

    def run(self):
        """Measure the chosen coupling across the wall line; returns the started worker.

        The previous profile and its fit text are cleared first, so a failure never shows an old result.
        """
        from ..walls import wall_profile

        self.clear_profile()
        if not self.wall_layer.currentText():
            raise ValueError("add a Shapes layer and draw the wall as a line on it")
        layer, source = self._source()
        if source is None:
            raise ValueError("choose a source: a sliding overlay, or the B columns after Descriptors")
        shapes = self.viewer.layers[self.wall_layer.currentText()]
        line = line_in_image_px(shapes, layer, source, self.viewer)
        options = form_options("wall", self.wall_form, effect=self.effect.currentText(),
                               cause=self.cause.currentText())
        name = layer.name

        def done(profile):
            self._profile_source = name
            self._on_profile(profile)

        return self.jobs.run(wall_profile, source, line, options=options, on_result=done, label="wall profile")

    def clear_profile(self) -> None:
        """Forget the measured profile: no fit text, no "Use fitted Lc", the plot without it."""
        had = self.profile is not None or bool(self.fit_label.text())
        self.profile = None
        self._profile_source = None
        self.fit_label.setText("")
        self.use_fit_button.setEnabled(False)
        if had:
            self.redraw()

    def _on_profile(self, profile) -> None:
        self.profile = profile
        fit = profile.params
        problem = profile.fit_problem()
        where = f"{profile.effect} <- {profile.cause} ({profile.method})"
        if problem:
            self.fit_label.setText(f"{where}: fit failed: {problem}. Draw the line across the wall, further into "
                                   "both domains, or pick another coupling.")
        else:
            self.fit_label.setText(
                f"{where}: Lc = {fit['Lc']:.3g} ± {fit['Lc_err']:.2g} px, A = {fit['amplitude']:.3g} ± "
                f"{fit['amplitude_err']:.2g}, c = {fit['offset']:.3g}, wall at {fit['shift']:+.3g} px from the "
                f"line; sign change: {'yes' if profile.sign_change else 'no'}"
            )
        self.fit_label.setStyleSheet("color: #E69F00" if problem else "")
        self.use_fit_button.setEnabled(not problem)
        reach = float(profile.table["distance"].abs().max()) + profile.bin_width
        if not problem and reach > self.extent.value():
            self.extent.setValue(reach)
        self.redraw()

    def use_fitted_lc(self) -> None:
        """Set the theory ``Lc`` to the fitted wall width (only a fit that did not fail)."""
        if self.profile is not None and self.profile.params and not self.profile.fit_problem():
            self.Lc.setValue(self.profile.params["Lc"])
