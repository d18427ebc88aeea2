"""Maps on the STEM image: the image on axes in nm, values placed cell by cell, flagged cells, descriptor maps.

Every map is drawn over the image it was measured on, on axes in nm (px when the pixel size is unknown), with
robust colour limits (a few outlier cells or windows cannot wash the map out: the limits are percentiles,
values beyond them saturate and the colour bar shows an arrow) and a colour bar in the quantity's unit.
:func:`_place` is the one place that maps values to image positions.
"""

from __future__ import annotations

import numpy as np

from ..lattice import DESCRIPTORS
from ..registry import SIGNED
from .style import _extend, _figure, get_style, robust_limits


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

    from ..placement import CellRaster

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
    from ..placement import cell_regions

    return cell_regions(cells, image_shape, max_pixels=max_pixels)


def window_values(sliding, cells, values) -> np.ndarray:
    """(n_cells,) values of a (ny, nx) window map: each cell takes its nearest window's (NaN stays NaN)."""
    from ..placement import window_values_per_cell

    return window_values_per_cell(sliding, cells, values)


def _window_placement(sliding, cells, image_shape, max_pixels: int):
    """``(where, to_values)`` of window maps for :func:`_place`: the cells' regions and a function spreading a
    (ny, nx) window map over the cells (each cell takes its nearest window), or, without cells, the window
    grid's lattice and the map itself."""
    if cells is None:
        return sliding.lattice, np.asarray
    raster = cell_raster(cells, image_shape, max_pixels=max_pixels)
    return raster, lambda values: window_values(sliding, cells, values)


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


def _flag_note(cells) -> str:
    """``"; flagged: 3 fit, 1 outlier"`` from the cells' count by reason (empty without flagged cells)."""
    counts = cells.flag_counts() if hasattr(cells, "flag_counts") else {}
    counts = {reason: n for reason, n in counts.items() if reason and n}
    return "; flagged: " + ", ".join(f"{n} {reason}" for reason, n in counts.items()) if counts else ""


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
