"""Figures of one analysis for a paper: maps on the image in nm, the 8 x 8 sliding grid, PCA, causal graphs.

Every map is drawn over the image it was measured on, on axes in nm (px when the pixel size is unknown),
with robust colour limits (a few outlier cells or windows cannot wash the map out: the limits are
percentiles, values beyond them saturate and the colour bar shows an arrow) and a colour bar in the
quantity's unit.  Signed quantities use a diverging map symmetric about 0; the default maps (``RdBu_r``,
``viridis``) are readable by colour-blind readers, and the ``"greyscale"`` style uses maps whose lightness
grows monotonically (readable printed in grey).

Only the object-oriented matplotlib API is used (no pyplot, Agg-compatible), and matplotlib is imported
when a figure is made, never when the package is imported.  :func:`figure_writers` gives the files of a
results folder (PNG, SVG, PDF) for :func:`napari_causal_lattice.pipeline.write_outputs`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np

from .lattice import DESCRIPTORS
from .registry import SIGNED

__all__ = [
    "FIGURE_FORMATS",
    "STYLES",
    "FigureStyle",
    "cell_raster",
    "check_figure_options",
    "draw_flagged",
    "edge_criterion",
    "edge_mask",
    "figure_writers",
    "get_style",
    "plot_descriptor_maps",
    "plot_global_graph",
    "plot_image_columns",
    "plot_overlay",
    "plot_pca",
    "plot_scan_jitter",
    "plot_sliding_grid",
    "robust_limits",
    "window_values",
]

#: File formats figures can be written in.
FIGURE_FORMATS = ("png", "svg", "pdf")
#: The sliding map drawn alone in ``figures/overlay_Px_Py.*``: the paper's most structured element.
OVERLAY = ("Px", "Py")


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


# ----------------------------------------------------------------------------------------- the image


def _figure(size, layout="constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=size, layout=layout)


def _pixel_scale(pixel_size) -> tuple[float, float, str]:
    """(y, x) length of one px in the axis unit, and the unit: nm from a pixel size in pm/px, else px."""
    if pixel_size is None:
        return 1.0, 1.0, "px"
    sy, sx = (pixel_size, pixel_size) if np.isscalar(pixel_size) else pixel_size
    return float(sy) / 1000.0, float(sx) / 1000.0, "nm"


def _display_image(image: np.ndarray, max_pixels: int) -> tuple[np.ndarray, int]:
    """The image averaged over ``step x step`` blocks (an anti-aliasing box filter, no moire) so it has at
    most ``max_pixels`` pixels, cropped to whole blocks; returns it and ``step`` (px per shown pixel)."""
    from skimage.transform import downscale_local_mean

    step = max(1, int(np.ceil(np.sqrt(image.size / max_pixels))))
    if step == 1:
        return image, 1
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    return downscale_local_mean(image[:h, :w], (step, step)), step


def draw_image(ax, image, pixel_size=None, *, style="paper", max_pixels: int = 1_000_000, axis_labels=True):
    """Show the STEM image on ``ax`` with axes in nm (px without a pixel size).

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W) array
    pixel_size : float, (sy, sx) or None
        pm per px.
    style : str or FigureStyle
    max_pixels : int
        Larger images are block-averaged first (anti-aliased: no moire) to at most this many pixels.
    axis_labels : bool
        Label the axes ``x (nm)``, ``y (nm)``.

    Returns
    -------
    (float, float, str)
        The (y, x) size of one image px in the axis unit, and that unit; maps drawn on top use them.
    """
    style = get_style(style)
    fy, fx, unit = _pixel_scale(pixel_size)
    shown, step = _display_image(np.asarray(image, dtype=float), max_pixels)
    lo, hi = np.percentile(shown, [0.5, 99.5])
    h, w = shown.shape[0] * step, shown.shape[1] * step
    ax.imshow(shown, cmap=style.image_cmap, vmin=lo, vmax=hi, interpolation="antialiased",
              extent=(-0.5 * fx, (w - 0.5) * fx, (h - 0.5) * fy, -0.5 * fy))
    if axis_labels:
        ax.set_xlabel(f"x ({unit})")
        ax.set_ylabel(f"y ({unit})")
    return fy, fx, unit


def _place(ax, values, where, scale, **style):
    """Draw a map (of cells or of windows) on the image where its cells are.

    This is the one place that maps values to image positions.  With a :class:`~.placement.CellRaster`
    (from :func:`~.placement.cell_regions`) each cell's value fills the cell's own region around its B
    column, so the map follows curved and distorted lattices; a map of windows is first spread over the
    cells with :func:`window_values`.  Without the cells (only a grid and its ``Lattice``) the grid is
    carried by the lattice's one global affine, exact only on a straight lattice.  Either way the map is
    one image, so neighbouring cells meet without seams in PNG, SVG and PDF.

    Parameters
    ----------
    ax : matplotlib Axes
    values : (n_cells,) or (ni, nj) float array
        One value per row of ``cells.table`` with a CellRaster, one per grid cell with a Lattice; NaN where
        nothing is drawn.
    where : CellRaster or Lattice
    scale : (float, float)
        (y, x) length of one image px in the axis unit (from :func:`draw_image`).
    **style
        ``cmap``, ``vmin``, ``vmax``, ``alpha`` ... of ``imshow``.

    Returns
    -------
    AxesImage
    """
    from matplotlib.transforms import Affine2D

    from .placement import CellRaster

    fy, fx = scale
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    if isinstance(where, CellRaster):
        painted = where.paint(values)
        h, w = painted.shape[0] * where.step, painted.shape[1] * where.step
        image = ax.imshow(np.ma.masked_invalid(painted), interpolation="nearest",
                          extent=(-0.5 * fx, (w - 0.5) * fx, (h - 0.5) * fy, -0.5 * fy), **style)
    else:
        grid_to_axes = np.array([[where.v1[1] * fx, where.v2[1] * fx, where.origin[1] * fx],  # (j, i) -> x
                                 [where.v1[0] * fy, where.v2[0] * fy, where.origin[0] * fy],  # (j, i) -> y
                                 [0.0, 0.0, 1.0]])
        image = ax.imshow(np.ma.masked_invalid(values), interpolation="nearest",
                          extent=(-0.5, values.shape[1] - 0.5, values.shape[0] - 0.5, -0.5), **style)
        image.set_transform(Affine2D(grid_to_axes) + ax.transData)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    return image


def cell_raster(cells, image_shape, *, max_pixels: int = 1_000_000):
    """The cells' regions for :func:`draw_map` (:func:`~.placement.cell_regions` at a figure's pixel budget)."""
    from .placement import cell_regions

    return cell_regions(cells, image_shape, max_pixels=max_pixels)


def window_values(sliding, cells, values) -> np.ndarray:
    """(n_cells,) values of a (ny, nx) window map: each cell takes its nearest window's (NaN stays NaN)."""
    from .placement import window_values_per_cell

    return window_values_per_cell(sliding, cells, values)


def draw_flagged(ax, cells, raster, scale, *, colour: str = "0.45", hatch: str = "////", legend: bool = True):
    """Grey, hatched regions over the flagged cells (non-empty ``flag``), with a legend ``flagged (n)``.

    Parameters
    ----------
    ax : matplotlib Axes
    cells : Cells
    raster : CellRaster
        The cells' regions (:func:`cell_raster`).
    scale : (float, float)
        (y, x) length of one image px in the axis unit.
    colour, hatch : str
        Fill colour and hatch pattern of the flagged regions.
    legend : bool
        Add the legend entry (with the count by reason in the figure's legend title).

    Returns
    -------
    int
        The number of flagged cells.
    """
    from matplotlib.patches import Patch

    if "flag" not in cells.table.columns:
        return 0
    flagged = (cells.table["flag"].astype(str) != "").to_numpy()
    n = int(flagged.sum())
    if n == 0:
        return 0
    fy, fx = scale
    painted = raster.paint(np.where(flagged, 1.0, np.nan))
    h, w = painted.shape[0] * raster.step, painted.shape[1] * raster.step
    ax.contourf(np.ma.masked_invalid(painted), levels=[0.5, 1.5], colors=[colour], hatches=[hatch], alpha=0.75,
                extent=(-0.5 * fx, (w - 0.5) * fx, (h - 0.5) * fy, -0.5 * fy), origin="upper")
    if legend:
        ax.legend(handles=[Patch(facecolor=colour, hatch=hatch, alpha=0.75, label=f"flagged ({n})")],
                  loc="upper right", framealpha=0.85, fontsize="small")
    return n


def draw_map(ax, image, pixel_size, where, values, *, label: str, signed: bool, style="paper",
             percentile: float = 98.0, limits=None, colorbar: bool = True, max_pixels: int = 1_000_000,
             axis_labels: bool = True, cmap=None):
    """A grid map over the image with robust colour limits and a colour bar labelled ``label``.

    Parameters
    ----------
    ax : matplotlib Axes
    image : (H, W) array
    pixel_size : float, (sy, sx) or None
        pm per px.
    where : CellRaster or Lattice
        Where the values go (see :func:`_place`): the cells' regions (:func:`cell_raster`), or a grid's
        lattice (grid index -> image px; one global affine).
    values : (n_cells,) or (ni, nj) array
        One value per cell (CellRaster) or per grid cell (Lattice); NaN where there is nothing to show (the
        image shows through).
    label : str
        Colour-bar label with the unit, e.g. ``"Px (pm)"``.
    signed : bool
        Diverging map symmetric about 0, else sequential.
    style : str or FigureStyle
    percentile : float
        Robust limits (:func:`robust_limits`), unless ``limits`` is given.
    limits : (float, float), optional
    colorbar : bool
    max_pixels : int
        Pixel budget of the image beneath (see :func:`draw_image`).
    axis_labels : bool
    cmap : str or Colormap, optional
        Overrides the style's map (e.g. categorical regions).

    Returns
    -------
    QuadMesh
        The drawn map (for a shared colour bar).
    """
    style = get_style(style)
    fy, fx, _ = draw_image(ax, image, pixel_size, style=style, max_pixels=max_pixels, axis_labels=axis_labels)
    values = np.asarray(values, dtype=float)
    lo, hi = limits if limits is not None else robust_limits(values, signed=signed, percentile=percentile)
    cmap = cmap if cmap is not None else style.signed_cmap if signed else style.sequential_cmap
    mesh = _place(ax, values, where, (fy, fx), cmap=cmap, vmin=lo, vmax=hi, alpha=style.map_alpha)
    h, w = np.shape(image)
    ax.set_xlim(-0.5 * fx, (w - 0.5) * fx)
    ax.set_ylim((h - 0.5) * fy, -0.5 * fy)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, shrink=0.85, label=label, extend=_extend(values, lo, hi))
    return mesh


def _panel_layout(shape, n: int, *, width: float = 7.2):
    """(nrows, ncols, figsize in inches) for ``n`` map panels of an image of ``shape`` on a page ``width`` inches
    wide (two journal columns): wide images stack, square ones sit 4 to a row."""
    aspect = shape[1] / max(shape[0], 1)
    ncols = next((c for c in (4, 2, 1) if n % c == 0 and aspect <= 8 / c), 1)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    panel = width / ncols - 0.75  # room for the colour bar and its label
    height = float(np.clip(panel / aspect, 0.6, 3.0))
    return nrows, ncols, (width, nrows * (height + 0.55) + 0.5)


def _single_size(shape, *, height: float = 4.5, extra: float = 1.8) -> tuple[float, float]:
    """Figure size (inches) of one map panel of an image of ``shape``: 7.2 in wide (two journal columns), or
    3.5 in (one column) for an image taller than wide; ``height`` caps the map, ``extra`` is the colour bar."""
    aspect = shape[1] / max(shape[0], 1)
    width = 3.5 if aspect < 0.9 else 7.2
    map_height = min(height, (width - min(extra, 1.2)) / aspect)
    return width, map_height + 0.8


def _pixel_size(results) -> float | tuple | None:
    """pm per px of an analysis: the cells' (what the descriptors used), else the image's."""
    cells = getattr(results, "cells", None)
    if cells is not None and cells.pixel_size is not None:
        return cells.pixel_size
    return (getattr(results, "image_info", None) or {}).get("pixel_size")


def plot_image_columns(image, columns, pixel_size=None, *, style="paper"):
    """The image with its A and B atom columns marked (hollow circles), axes in nm.

    Parameters
    ----------
    image : (H, W) array
    columns : Columns
        From :func:`~napari_causal_lattice.columns.find_columns`.
    pixel_size : float, (sy, sx) or None
        pm per px.
    style : str or FigureStyle

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _figure(_single_size(np.shape(image), extra=0.8))
    ax = fig.add_subplot()
    fy, fx, _ = draw_image(ax, image, pixel_size, style=style)
    n = len(columns.positions)
    marker = float(np.clip(2000.0 / max(n, 1), 1.0, 5.0))
    for sub, colour in (("A", "#e69f00"), ("B", "#56b4e9")):  # Okabe-Ito orange / sky blue
        yx = columns.positions[columns.sublattice == sub]
        ax.plot(yx[:, 1] * fx, yx[:, 0] * fy, "o", ms=marker, mfc="none", mew=0.6, color=colour,
                label=f"{sub} columns ({len(yx)})")
    ax.legend(loc="upper right", framealpha=0.85, markerscale=max(1.0, 4.0 / marker))
    ax.set_title(f"image with its {n} atom columns")
    return fig


def plot_descriptor_maps(image, cells, *, style="paper", percentile: float = 98.0, max_pixels: int = 250_000):
    """The 8 descriptor maps on the image, each cell's value on its own region, each with its colour bar in its
    unit; flagged cells are grey and hatched (legend ``flagged (n)``, reasons in the title).

    Parameters
    ----------
    image : (H, W) array
        The analysed image (drawn beneath each map).
    cells : Cells
    style : str or FigureStyle
    percentile : float
        Robust colour limits (:func:`robust_limits`); Px, Py symmetric about 0.
    max_pixels : int
        Pixel budget of each panel's image and of the cells' regions (:func:`cell_raster`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    raster = cell_raster(cells, np.shape(image), max_pixels=max_pixels)
    nrows, ncols, size = _panel_layout(np.shape(image), len(DESCRIPTORS))
    fig = _figure(size)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, name in zip(axes.ravel(), DESCRIPTORS):
        unit = cells.units.get(name, "")
        draw_map(ax, image, cells.pixel_size, raster, cells.table[name].to_numpy(dtype=float),
                 label=f"{name} ({unit})" if unit else name, signed=name in SIGNED, style=style,
                 percentile=percentile, max_pixels=max_pixels)
        draw_flagged(ax, cells, raster, _pixel_scale(cells.pixel_size)[:2])
        ax.set_title(name)
    fig.suptitle(f"descriptor maps ({len(cells)} cells{_flag_note(cells)}; colour limits: "
                 f"{100 - percentile:g}-{percentile:g} percentiles, symmetric for Px, Py)")
    return fig


def _flag_note(cells) -> str:
    """``"; flagged: 3 fit, 1 outlier"`` from the cells' count by reason (empty without flagged cells)."""
    counts = cells.flag_counts() if hasattr(cells, "flag_counts") else {}
    counts = {reason: n for reason, n in counts.items() if reason and n}
    return "; flagged: " + ", ".join(f"{n} {reason}" for reason, n in counts.items()) if counts else ""


def _window_placement(sliding, cells, image_shape, max_pixels: int):
    """``(where, to_values)`` of window maps for :func:`_place`: the cells' regions and a function spreading a
    (ny, nx) window map over the cells (each cell takes its nearest window), or, without cells, the window
    grid's lattice and the map itself."""
    if cells is None:
        return sliding.lattice, np.asarray
    raster = cell_raster(cells, image_shape, max_pixels=max_pixels)
    return raster, lambda values: window_values(sliding, cells, values)


def plot_overlay(image, sliding, pixel_size=None, effect: str = OVERLAY[0], cause: str = OVERLAY[1], *,
                 style="paper", percentile: float = 98.0, cells=None, max_pixels: int = 1_000_000):
    """One sliding map ``effect <- cause`` on the image, in physical units when the result knows them.

    Windows with no edge (coefficient 0) or not significant are left uncoloured.  With ``cells`` (the cells
    the windows were fitted on) every cell shows its nearest window's value on its own region, so the map
    follows a curved lattice; without them the window grid is placed by its lattice (one global affine).
    """
    in_units = bool(sliding.units.get(effect) and sliding.units.get(cause))
    values = _element(sliding, effect, cause, in_units)
    where, to_values = _window_placement(sliding, cells, np.shape(image), max_pixels)
    fig = _figure(_single_size(np.shape(image)))
    ax = fig.add_subplot()
    draw_map(ax, image, pixel_size, where, to_values(values), label=_element_label(sliding, effect, cause, in_units),
             signed=True, style=style, percentile=percentile)
    ax.set_title(f"{effect} <- {cause}, sliding windows of {sliding.window} x {sliding.window} cells "
                 f"(uncoloured: no edge{' or not significant' if _significant(sliding) is not None else ''})",
                 fontsize=_font(get_style(style)))
    if not np.isfinite(values).any() or not np.any(np.nan_to_num(values)):
        decided = _significant(sliding) is not None
        why = (f"{effect} <- {cause} is not significant in any window" if decided
               else f"{effect} <- {cause} is zero in every window")
        ax.text(0.5, 0.5, f"{why}: nothing to colour", transform=ax.transAxes, ha="center", va="center",
                fontsize=_font(get_style(style)), bbox=dict(fc="white", ec="0.3", alpha=0.9))
    return fig


def _significant(sliding) -> np.ndarray | None:
    """(ny, nx, p, p) calibrated edge decisions when the result has them, else None."""
    return getattr(sliding, "significant", None)


def _element(sliding, effect: str, cause: str, in_units: bool) -> np.ndarray:
    """(ny, nx) map of ``effect <- cause`` with windows without that edge (zero or not significant) as NaN."""
    values = sliding.element(effect, cause, in_units=in_units)
    shown = values != 0
    significant = _significant(sliding)
    if significant is not None:
        shown &= significant[:, :, sliding.names.index(effect), sliding.names.index(cause)]
    return np.where(shown, values, np.nan)


def _element_label(sliding, effect: str, cause: str, in_units: bool) -> str:
    if sliding.standardized and not in_units:
        return "standardised coefficient (dimensionless)"
    ue, uc = sliding.units.get(effect, ""), sliding.units.get(cause, "")
    return f"{effect} <- {cause} ({ue}/{uc})" if ue and uc else f"{effect} <- {cause}"


#: Figure widths of a journal page (inches): one column and two columns.
SINGLE_COLUMN = 3.5
DOUBLE_COLUMN = 7.2
#: Smallest font size (points) any figure text may have.
MIN_FONT = 7.0


def _font(style, factor: float = 1.0) -> float:
    """``factor`` times the style's font size, never below :data:`MIN_FONT` points."""
    return max(MIN_FONT, factor * style.font_size)


def significant_elements(sliding) -> list[tuple[str, str]]:
    """``(effect, cause)`` of the sliding adjacency elements that matter: significant in at least one window
    (with the calibrated decision), else non-zero in at least one window; in the order of ``sliding.names``."""
    names = list(sliding.names)
    mask = _significant(sliding)
    adjacency = np.nan_to_num(np.asarray(sliding.adjacency, dtype=float))
    present = (mask & (adjacency != 0)) if mask is not None else adjacency != 0
    anywhere = present.reshape(-1, len(names), len(names)).any(axis=0)
    return [(names[i], names[j]) for i in range(len(names)) for j in range(len(names))
            if i != j and anywhere[i, j]]


def _grid_shape(n: int, aspect: float, width: float) -> tuple[int, int, float, float]:
    """(rows, columns, panel width, panel height) in inches of ``n`` map panels of aspect ``aspect`` (W / H)
    in a figure ``width`` inches wide (0.9 in of margins and colour bars)."""
    target = float(np.clip(1.3 * np.sqrt(aspect), 1.3, width - 0.9))
    ncols = int(np.clip(np.floor((width - 0.9) / target), 1, 6))
    ncols = max(1, min(ncols, n))
    panel_width = (width - 0.9) / ncols - 0.15
    return -(-n // ncols), ncols, panel_width, max(panel_width / aspect, 0.35)


def plot_sliding_grid(image, sliding, pixel_size=None, *, in_units: bool = False, style="paper",
                      percentile: float = 98.0, standardised_limit: float = 1.0, width: float = DOUBLE_COLUMN,
                      cells=None, max_pixels: int = 40_000):
    """The sliding adjacency elements that matter, each as a map on the image (the paper's Figs. 4, 6).

    Only the elements significant in at least one window (:func:`significant_elements`) are drawn, on a page
    ``width`` inches wide (7.2: two journal columns) with fonts of at least 7 pt; the suptitle names how many of
    the p (p - 1) elements that is.

    Parameters
    ----------
    image : (H, W) array
    sliding : SlidingResult
    pixel_size : float, (sy, sx) or None
        pm per px.
    in_units : bool
        Physical units (one colour bar per panel, e.g. pm/pm) instead of standardised coefficients (one
        shared colour bar, dimensionless).
    style : str or FigureStyle
    percentile : float
        Robust colour limits per panel (``in_units``), or over all panels when below ``standardised_limit``.
    standardised_limit : float
        Largest colour limit of standardised coefficients: an effect size beyond 1 standard deviation per
        standard deviation is the mark of collinear descriptors and saturates (arrow on the colour bar).
    width : float
        Figure width in inches (3.5 single column, 7.2 double column).
    cells : Cells, optional
        The cells the windows were fitted on: each cell then shows its nearest window's value on its own
        region (follows curved lattices); without them the window grid is placed by its lattice.
    max_pixels : int
        Pixel budget of each panel's image and of the cells' regions.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per element, titled ``"effect <- cause"``.  Windows without the edge (coefficient 0, or not
        significant when ``sliding.significant`` holds the calibrated decision) are uncoloured; windows that
        were not fitted are grey.  Without any such element, one panel says so.
    """
    from matplotlib.colors import ListedColormap

    from .plotting import coupling_unit

    style = get_style(style)
    names = list(sliding.names)
    elements = significant_elements(sliding)
    h, w = np.shape(image)
    ny, nx = sliding.shape
    decided = _significant(sliding) is not None
    head = (f"sliding LiNGAM, {ny} x {nx} windows of {sliding.window} x {sliding.window} cells (stride "
            f"{sliding.stride}): {len(elements)} of {len(names) * (len(names) - 1)} elements "
            f"{'significant' if decided else 'non-zero'} in at least one window")
    if not elements:
        fig = _figure((SINGLE_COLUMN, 1.6))
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "\n".join(textwrap.wrap(head + "; nothing to map.", 48)), ha="center", va="center",
                transform=ax.transAxes, fontsize=_font(style))
        return fig
    nrows, ncols, panel_width, panel_height = _grid_shape(len(elements), w / max(h, 1), width)
    bar_room = 0.55 if in_units else 0.0
    legend = (f"uncoloured: no edge{' or not significant' if decided else ''}"
              + ("; grey: window not fitted" if not sliding.fitted.all() else ""))
    title = textwrap.wrap(f"{head}; {legend}", 110)
    top_room = 0.3 + 0.16 * len(title)
    size = (width, nrows * (panel_height + 0.42) + 0.45 + top_room)
    fig = _figure(size, layout=None)  # placed by hand: a layout engine is slow on many map panels
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.55 / size[0], right=1 - (0.35 + (0 if in_units else 0.6)) / size[0],
                        bottom=0.45 / size[1], top=1 - top_room / size[1],
                        wspace=(0.15 + bar_room) / panel_width, hspace=0.42 / panel_height)
    maps = {(e, c): _element(sliding, e, c, in_units) for e, c in elements}
    top = robust_limits(np.concatenate([m.ravel() for m in maps.values()]), signed=True, percentile=percentile)[1]
    shared = (-min(top, standardised_limit), min(top, standardised_limit))
    where, to_values = _window_placement(sliding, cells, (h, w), max_pixels)
    skipped = to_values(np.where(sliding.fitted, np.nan, 1.0))
    mesh, unit = None, "px"
    for k, ax in enumerate(axes.ravel()):
        if k >= len(elements):
            ax.remove()
            continue
        effect, cause = elements[k]
        fy, fx, unit = draw_image(ax, image, pixel_size, style=style, max_pixels=max_pixels, axis_labels=False)
        values = maps[(effect, cause)]
        lo, hi = robust_limits(values, signed=True, percentile=percentile) if in_units else shared
        mesh = _place(ax, to_values(values), where, (fy, fx), cmap=style.signed_cmap, vmin=lo, vmax=hi,
                      alpha=style.map_alpha)
        if in_units:
            bar = fig.colorbar(mesh, cax=ax.inset_axes([1.03, 0.0, 0.05, 1.0]), extend=_extend(values, lo, hi))
            bar.set_label(coupling_unit(sliding.units, effect, cause), fontsize=_font(style, 0.9))
            bar.ax.tick_params(labelsize=_font(style, 0.9))
        if not sliding.fitted.all():
            _place(ax, skipped, where, (fy, fx), cmap=ListedColormap(["0.55"]), vmin=0, vmax=1, alpha=0.8)
        ax.set_title(f"{effect} <- {cause}", fontsize=_font(style), pad=2)
        ax.tick_params(labelsize=_font(style, 0.9))
        ax.set_xlim(-0.5 * fx, (w - 0.5) * fx)
        ax.set_ylim((h - 0.5) * fy, -0.5 * fy)
        row, col = divmod(k, ncols)
        if row == nrows - 1 or k + ncols >= len(elements):
            ax.set_xlabel(f"x ({unit})", fontsize=_font(style))
        else:
            ax.tick_params(labelbottom=False)
        if col == 0:
            ax.set_ylabel(f"y ({unit})", fontsize=_font(style))
        else:
            ax.tick_params(labelleft=False)
    if not in_units and mesh is not None:
        all_values = np.concatenate([m.ravel() for m in maps.values()])
        bar = fig.colorbar(mesh, cax=fig.add_axes([1 - 0.75 / size[0], 0.2, 0.1 / size[0], 0.6]),
                           extend=_extend(all_values, *shared))
        bar.set_label(_element_label(sliding, names[0], names[1], False), fontsize=_font(style))
        bar.ax.tick_params(labelsize=_font(style, 0.9))
    fig.suptitle("\n".join(title), fontsize=_font(style), y=1 - 0.08 / size[1], va="top")
    return fig


def plot_pca(image, pca, pixel_size=None, *, style="paper", percentile: float = 98.0,
             outlier_share: float = 0.5, annotate_min: float = 0.1, cells=None, sliding=None,
             max_pixels: int = 300_000):
    """Each PCA component of the sliding adjacency next to its loading map on the image (the paper's Fig. 5).

    Parameters
    ----------
    image : (H, W) array
    pca : AdjacencyPCA
    pixel_size : float, (sy, sx) or None
        pm per px.
    style : str or FigureStyle
    percentile : float
        Robust colour limits of the loading maps.
    outlier_share : float
        A component whose largest window carries more than this share of its variance (sum of squared
        scores) is labelled as one outlier window rather than a spatial pattern.
    annotate_min : float
        Write the component weights of at least this magnitude in the cells.
    cells, sliding : Cells and SlidingResult, optional
        The cells and the sliding run the PCA was computed from: each cell then shows its nearest window's
        score on its own region; without both the window grid is placed by ``pca.lattice``.
    max_pixels : int
        Pixel budget of each map's image and of the cells' regions.

    Returns
    -------
    matplotlib.figure.Figure
        One row per component: the (p, p) unit-norm component (effect <- cause) and the map of the window
        scores (dimensionless: the windows' standardised adjacency projected on the component).
    """
    from .plotting import plot_adjacency

    k = pca.n_components
    h, w = np.shape(image)
    ratio = float(np.clip(w / h, 1.0, 4.0))
    fig = _figure((DOUBLE_COLUMN, 2.6 * k + 0.5))
    axes = fig.subplots(k, 2, squeeze=False, gridspec_kw={"width_ratios": [1.0, min(ratio, 1.6)]})
    unit = "dimensionless" if pca.use != "probabilities" else "probability"
    if cells is not None and sliding is not None:
        where, to_values = _window_placement(sliding, cells, (h, w), max_pixels)
    else:
        where, to_values = pca.lattice, np.asarray
    for n in range(k):
        scores = pca.loadings[n][np.isfinite(pca.loadings[n])]
        share = float(np.max(scores**2) / np.sum(scores**2)) if scores.size and np.any(scores) else 0.0
        note = f"; one window carries {100 * share:.0f} % of it: an outlier, not a pattern" if share > outlier_share else ""
        top = float(np.max(np.abs(pca.components[n])))
        plot_adjacency(pca.components[n], list(pca.names), ax=axes[n, 0], signed=True, vmin=-top, vmax=top,
                       label="weight (unit-norm component)", fmt="{:.2f}", annotate_min=annotate_min,
                       title=f"component {n + 1} ({100 * pca.explained_variance_ratio[n]:.2g} % of variance)")
        draw_map(axes[n, 1], image, pixel_size, where, to_values(pca.loadings[n]), label=f"score ({unit})",
                 signed=True, style=style, percentile=percentile, max_pixels=max_pixels)
        axes[n, 1].set_title(f"loading map {n + 1}{note}")
    fig.suptitle(f"PCA of the sliding {pca.use.replace('_', ' ')} matrices "
                 f"({pca.provenance.get('params', {}).get('n_windows', '?')} fitted windows)")
    return fig


def plot_scan_jitter(scan, *, style="paper"):
    """The scan-line jitter of one image: the shift of each scan line (px) with its 1-sigma band.

    Parameters
    ----------
    scan : ScanDistortion
        ``columns.scan`` from :func:`~napari_causal_lattice.columns.find_columns`.
    style : str or FigureStyle

    Returns
    -------
    matplotlib.figure.Figure
    """
    style = get_style(style)
    fig = _figure((DOUBLE_COLUMN, 2.6))
    ax = fig.subplots()
    rows = np.arange(len(scan.shifts))
    ax.fill_between(rows, scan.shifts - scan.sigma, scan.shifts + scan.sigma, color="0.82", lw=0, label="1 sigma")
    ax.plot(rows, scan.shifts, lw=0.7, color="C0", label="shift along x of each scan line")
    ax.set_xlabel("scan line (image row)", fontsize=_font(style))
    ax.set_ylabel("shift (px)", fontsize=_font(style))
    pm = "" if scan.rms_pm is None else f" = {scan.rms_pm:.1f} pm"
    done = "corrected before the final fit" if scan.applied else "not corrected"
    note = (scan.provenance or {}).get("note", "")
    ax.set_title(f"line jitter {scan.rms_px:.3f} px{pm} rms, {done}" + (f"\n{note}" if note else ""),
                 fontsize=_font(style), loc="left", wrap=True)
    ax.legend(fontsize=_font(style, 0.9), loc="upper right")
    ax.tick_params(labelsize=_font(style, 0.9))
    return fig


def edge_mask(lingam, min_probability: float = 0.5) -> np.ndarray:
    """(p, p) bool: the edges of a global result that pass the chosen confidence.

    The calibrated decision (``lingam.significant``, the ``significant`` column of ``edges()``) when the
    result has one, else a bootstrap probability of at least ``min_probability``, else (no bootstrap) every
    non-zero coefficient.  :func:`edge_criterion` states which.
    """
    B = lingam.adjacency
    if getattr(lingam, "significant", None) is not None:
        return np.asarray(lingam.significant, dtype=bool).copy()
    if lingam.probabilities is not None:
        return (lingam.probabilities >= min_probability) & (B != 0)
    return B != 0


def edge_criterion(lingam, min_probability: float = 0.5) -> str:
    """The rule :func:`edge_mask` applies, in words, e.g. ``"calibrated: order t-test p <= 0.01, FDR bh"``."""
    if getattr(lingam, "significant", None) is not None:
        params = getattr(lingam, "params", {}) or {}
        alpha, fdr = params.get("alpha"), params.get("fdr")
        level = f"p <= {alpha:g}" if alpha is not None else "p at the fit's level"
        return (f"calibrated: order t-test {level}" + (f", FDR control ({fdr})" if fdr else "")
                + "; direction from the bootstrap")
    if lingam.probabilities is not None:
        return f"bootstrap probability >= {min_probability:.2f} (not calibrated)"
    return "every non-zero coefficient (no bootstrap, no test)"


def plot_global_graph(lingam, *, min_probability: float = 0.5, flag_above: float = 3.0, style="paper"):
    """The global causal graph next to its adjacency heatmap, both showing only edges that pass the confidence.

    Parameters
    ----------
    lingam : LingamResult
    min_probability : float
        Bootstrap probability an edge needs (unless the result carries a calibrated decision, see
        :func:`edge_mask`).
    flag_above : float
        Standardised ``|coefficient|`` above which an edge is flagged as collinear (dashed, ``!``), not an
        effect size.
    style : str or FigureStyle

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .plotting import plot_adjacency, plot_causal_graph

    style = get_style(style)
    keep = edge_mask(lingam, min_probability)
    fig = _figure((DOUBLE_COLUMN, 3.9))
    graph, heat = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})
    unit = "standardised (dimensionless)" if lingam.standardized else "data units"
    plot_causal_graph(lingam, ax=graph, keep=keep, flag_above=flag_above, font_size=_font(style, 0.9),
                      title=f"layered layout: causes above effects\nedges shown: {edge_criterion(lingam, min_probability)}")
    shown = np.where(keep, lingam.adjacency, 0.0)
    plot_adjacency(shown, list(lingam.names), ax=heat, signed=True, vmin=-1.0, vmax=1.0, fmt="{:+.2f}",
                   label=f"coefficient, {unit}", title="effect <- cause (0: no edge shown)")
    flagged = lingam.standardized and bool(np.any(np.abs(shown) > flag_above))
    if flagged:
        for text in heat.texts:
            if abs(float(text.get_text())) > flag_above:
                text.set_text(text.get_text() + " !")
    fig.suptitle(f"global causal graph, {lingam.n_samples} cells, coefficients {unit}"
                 + (f"\n! and dashed: |coefficient| > {flag_above:g}, the mark of collinear descriptors "
                    "(Vol = a b sin alpha), not an effect size" if flagged else ""))
    return fig


# ----------------------------------------------------------------------------------------- files


def _makers(results, image) -> dict:
    """Figure name -> function(style) making it, for what ``results`` holds (maps need the image)."""
    ps = _pixel_size(results)
    makers = {}
    if image is not None and results.columns is not None:
        makers["image_columns"] = lambda style: plot_image_columns(image, results.columns, ps, style=style)
    if results.columns is not None and getattr(results.columns, "scan", None) is not None:
        makers["scan_jitter"] = lambda style: plot_scan_jitter(results.columns.scan, style=style)
    if image is not None and results.cells is not None:
        makers["descriptor_maps"] = lambda style: plot_descriptor_maps(image, results.cells, style=style)
    if results.lingam is not None:
        makers["causal_graph"] = lambda style: plot_global_graph(results.lingam, style=style)
    if image is not None and results.sliding is not None and results.sliding.lattice is not None:
        makers["sliding_grid"] = lambda style: plot_sliding_grid(image, results.sliding, ps, style=style,
                                                                 cells=results.cells)
        if all(n in results.sliding.names for n in OVERLAY):
            makers[f"overlay_{OVERLAY[0]}_{OVERLAY[1]}"] = lambda style: plot_overlay(
                image, results.sliding, ps, style=style, cells=results.cells)
    if image is not None and results.pca is not None and results.pca.lattice is not None:
        makers["pca"] = lambda style: plot_pca(image, results.pca, ps, style=style, cells=results.cells,
                                               sliding=results.sliding)
    return makers


def figure_writers(results, image=None, *, formats=("png",), dpi: float = 150.0, style="paper") -> dict:
    """Files of the figures of one analysis, for :func:`~napari_causal_lattice.io.save_results`'s ``extra``.

    Parameters
    ----------
    results : Results
        One analysis (any of its parts may be None; figures that need a missing part are left out).
    image : (H, W) array, optional
        The analysed image: every map is drawn on it (map figures are left out without it).
    formats : sequence of {"png", "svg", "pdf"}
        One file per figure and format; SVG and PDF are vector (the image beneath stays a raster).
    dpi : float
        Resolution of PNG files and of the rasters inside SVG and PDF.
    style : str or FigureStyle
        See :data:`STYLES`.

    Returns
    -------
    dict
        ``"figures/<name>.<format>"`` -> ``write(path)``.  Names: image_columns, scan_jitter, descriptor_maps,
        causal_graph, sliding_grid, overlay_Px_Py, pca.
    """
    formats, dpi, style = check_figure_options(formats, dpi, style)
    writers = {}
    for name, make in _makers(results, image).items():
        shared = _SharedFigure(make, style, len(formats))
        for fmt in formats:
            writers[f"figures/{name}.{fmt}"] = shared.writer(fmt, dpi)
    return writers


def check_figure_options(formats=("png",), dpi: float = 150.0, style="paper"):
    """Validated ``(formats, dpi, style)`` of :func:`figure_writers`; raises ValueError naming the bad option."""
    formats = tuple(dict.fromkeys(str(f).strip().lower().lstrip(".") for f in formats))
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise ValueError(f"figure formats must be some of {', '.join(FIGURE_FORMATS)}, "
                         f"got {', '.join(unknown) or 'none'}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 20 <= dpi <= 1200:
        raise ValueError(f"dpi must be a number between 20 and 1200, got {dpi!r}")
    return formats, float(dpi), get_style(style)


class _SharedFigure:
    """One figure drawn once and saved in several formats (dropped after the last one)."""

    def __init__(self, make, style: FigureStyle, uses: int):
        self.make, self.style, self.left, self.figure = make, style, uses, None

    def writer(self, fmt: str, dpi: float):
        def write(path):
            from matplotlib import rc_context

            with rc_context(self.style.rc):
                if self.figure is None:
                    self.figure = self.make(self.style)
                self.figure.savefig(path, format=fmt, dpi=dpi)
            self.left -= 1
            if self.left == 0:
                self.figure = None

        return write
