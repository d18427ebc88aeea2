"""A matplotlib figure inside a Qt widget, drawn in napari's theme (pyplot is never used)."""

from __future__ import annotations

from typing import Callable

from qtpy.QtWidgets import QSizePolicy, QVBoxLayout, QWidget


def theme_rc(theme_name: str) -> dict:
    """matplotlib rcParams that match napari's theme ``theme_name`` (background, text, axes colours)."""
    from napari.utils.theme import available_themes, get_theme

    theme = get_theme(theme_name if theme_name in available_themes() else "dark")
    background, text, edge = theme.background.as_hex(), theme.text.as_hex(), theme.secondary.as_hex()
    return {
        "figure.facecolor": background,
        "axes.facecolor": background,
        "savefig.facecolor": background,
        "text.color": text,
        "axes.labelcolor": text,
        "axes.titlecolor": text,
        "axes.edgecolor": edge,
        "xtick.color": text,
        "ytick.color": text,
        "legend.facecolor": background,
        "legend.edgecolor": edge,
    }


class MplCanvas(QWidget):
    """A ``Figure`` on a Qt canvas, optionally with matplotlib's navigation toolbar, in the viewer's theme.

    Draw with :meth:`plot` (a function of the figure); it is redrawn when napari's theme changes
    (:meth:`retheme`).

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    canvas : FigureCanvasQTAgg
    """

    def __init__(self, parent: QWidget | None = None, *, figsize=(4.5, 3.6), toolbar: bool = True,
                 theme: Callable[[], str] | None = None, min_height: int = 260):
        super().__init__(parent)
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
        from matplotlib.figure import Figure

        self._theme = theme or (lambda: "dark")
        self._draw_fn: Callable | None = None
        self.figure = Figure(figsize=figsize, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(min_height)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        if toolbar:
            self.toolbar = NavigationToolbar2QT(self.canvas, self)
            layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas)
        self.retheme()  # the empty figure in the theme's colours too, never a white box before the first plot

    def plot(self, draw: Callable) -> None:
        """Clear the figure, run ``draw(figure)`` with the theme's colours and render now."""
        self._draw_fn = draw
        self.retheme()

    def retheme(self) -> None:
        """Redraw the last plot in the viewer's current theme (nothing to do before the first plot)."""
        import matplotlib

        rc = theme_rc(self._theme())
        self.figure.clear()
        self.figure.set_facecolor(rc["figure.facecolor"])
        if self._draw_fn is not None:
            with matplotlib.rc_context(rc):
                self._draw_fn(self.figure)
        self.canvas.draw()


def pruned(result, *, min_abs: float = 0.05, keep=None):
    """A copy of a LingamResult for drawing: edges with ``|adjacency| <= min_abs`` (in the result's own scale,
    standardized for standardized fits) or outside the bool mask ``keep`` (p, p) set to 0, so that near-zero
    couplings are not drawn as "+0.00" arrows."""
    import dataclasses

    import numpy as np

    adjacency = np.asarray(result.adjacency, dtype=float)
    mask = np.abs(adjacency) > min_abs
    if keep is not None:
        mask &= np.asarray(keep, dtype=bool)
    return dataclasses.replace(result, adjacency=np.where(mask, adjacency, 0.0))


def draw_graph(draw: Callable, *args, **kwargs):
    """Call a causal-graph plotting function with dark node labels: the nodes are light discs whatever the
    theme, while titles keep the theme's text colour (``axes.titlecolor``)."""
    import matplotlib

    with matplotlib.rc_context({"text.color": "black"}):
        return draw(*args, **kwargs)
