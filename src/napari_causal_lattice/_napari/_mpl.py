"""A matplotlib figure inside a Qt widget, for dock widgets (pyplot is never used)."""

from __future__ import annotations

from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget


class MplCanvas(QWidget):
    """A ``Figure`` on a Qt canvas, optionally with matplotlib's navigation toolbar.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        Draw on it with the object-oriented API (``figure.add_subplot()``, the functions of
        :mod:`napari_causal_lattice.plotting`), then call :meth:`draw`.
    canvas : FigureCanvasQTAgg
    """

    def __init__(self, parent: QWidget | None = None, *, figsize=(4.5, 3.6), toolbar: bool = True):
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=figsize, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(260)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if toolbar:
            self.toolbar = NavigationToolbar2QT(self.canvas, self)
            layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas)

    def clear(self):
        """Remove every axes; returns the figure."""
        self.figure.clear()
        return self.figure

    def draw(self) -> None:
        """Render the figure now (synchronous, so a screenshot right after shows it)."""
        self.canvas.draw()
