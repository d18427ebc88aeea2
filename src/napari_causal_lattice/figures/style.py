"""The look of every figure: named styles, journal page widths, the smallest font, robust colour limits.

Signed quantities use a diverging map symmetric about 0; the default maps (``RdBu_r``, ``viridis``) are
readable by colour-blind readers, and the ``"greyscale"`` style uses maps whose lightness grows monotonically
(readable printed in grey).  matplotlib is imported when a figure is made, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


#: File formats figures can be written in.
FIGURE_FORMATS = ("png", "svg", "pdf")


#: Figure widths of a journal page (inches): one column and two columns.
SINGLE_COLUMN = 3.5


DOUBLE_COLUMN = 7.2


#: Smallest font size (points) any figure text may have.
MIN_FONT = 7.0


@dataclass(frozen=True)
class FigureStyle:
    """Look of the figures.

    Attributes
    ----------
    name : str
    font_size : float
        Base font size in points (titles 1.1 x, tick labels 0.9 x).
    signed_cmap, sequential_cmap, image_cmap : str
        Colour maps of signed quantities, of positive ones and of the STEM image.
    map_alpha : float
        Opacity of a map over the image (0..1).
    """

    name: str
    font_size: float = 8.0
    signed_cmap: str = "RdBu_r"
    sequential_cmap: str = "viridis"
    image_cmap: str = "gray"
    map_alpha: float = 0.75

    @property
    def rc(self) -> dict:
        """matplotlib rc parameters of this style (editable text in SVG and PDF)."""
        return {
            "font.size": self.font_size,
            "axes.titlesize": 1.1 * self.font_size,
            "axes.labelsize": self.font_size,
            "xtick.labelsize": 0.9 * self.font_size,
            "ytick.labelsize": 0.9 * self.font_size,
            "legend.fontsize": 0.9 * self.font_size,
            "svg.fonttype": "none",
            "pdf.fonttype": 42,
        }


#: Named styles: ``"paper"`` (default), ``"slides"`` (larger text), ``"greyscale"`` (monotonic-lightness maps).
STYLES = {
    "paper": FigureStyle("paper"),
    "slides": FigureStyle("slides", font_size=11.0),
    "greyscale": FigureStyle("greyscale", signed_cmap="cividis", sequential_cmap="cividis", map_alpha=0.85),
}


def get_style(style) -> FigureStyle:
    """A :class:`FigureStyle` from its name (one of :data:`STYLES`) or itself."""
    if isinstance(style, FigureStyle):
        return style
    if style not in STYLES:
        raise ValueError(f"unknown figure style {style!r}; choose one of {', '.join(STYLES)}")
    return STYLES[style]


def _font(style, factor: float = 1.0) -> float:
    """``factor`` times the style's font size, never below :data:`MIN_FONT` points."""
    return max(MIN_FONT, factor * style.font_size)


def _figure(size, layout="constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout=layout)


def robust_limits(values, *, signed: bool, percentile: float = 98.0) -> tuple[float, float]:
    """Colour limits that ignore a few outliers.

    Parameters
    ----------
    values : array
        The mapped values (NaN ignored).
    signed : bool
        True: ``(-m, m)`` with ``m`` the ``percentile`` of ``|values|``; False: the ``100 - percentile``
        and ``percentile`` percentiles.
    percentile : float
        In (50, 100]; 100 gives the extremes.

    Returns
    -------
    (float, float)
        ``(vmin, vmax)``, never equal (a constant map gets a unit-wide range around its value).
    """
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (-1.0, 1.0) if signed else (0.0, 1.0)
    if signed:
        top = float(np.percentile(np.abs(finite), percentile))
        top = top if top > 0 else float(np.abs(finite).max()) or 1.0
        return -top, top
    lo, hi = (float(v) for v in np.percentile(finite, [100.0 - percentile, percentile]))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _extend(values, lo: float, hi: float) -> str:
    finite = values[np.isfinite(values)]
    below, above = bool(finite.size and finite.min() < lo), bool(finite.size and finite.max() > hi)
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[(below, above)]
