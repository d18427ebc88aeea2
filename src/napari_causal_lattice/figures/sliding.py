"""Figures of the sliding LiNGAM transform: one element over the image, and the grid of the elements that matter
(the paper's Figs. 4, 6)."""

from __future__ import annotations

import textwrap

import numpy as np

from .causal import coupling_unit
from .maps import _place, _single_size, _window_placement, draw_image, draw_map
from .style import SINGLE_COLUMN, DOUBLE_COLUMN, _extend, _figure, _font, get_style, robust_limits


#: The sliding map drawn alone in ``figures/overlay_Px_Py.*``: the paper's most structured element.
OVERLAY = ("Px", "Py")


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
        return _nothing_to_map(head, style)
    legend = (f"uncoloured: no edge{' or not significant' if decided else ''}"
              + ("; grey: window not fitted" if not sliding.fitted.all() else ""))
    title = textwrap.wrap(f"{head}; {legend}", 110)
    fig, axes, size = _grid_figure(len(elements), (h, w), width, in_units, len(title))
    maps = {(e, c): _element(sliding, e, c, in_units) for e, c in elements}
    all_values = np.concatenate([m.ravel() for m in maps.values()])
    top = robust_limits(all_values, signed=True, percentile=percentile)[1]
    shared = (-min(top, standardised_limit), min(top, standardised_limit))
    where, to_values = _window_placement(sliding, cells, (h, w), max_pixels)
    skipped = to_values(np.where(sliding.fitted, np.nan, 1.0))
    mesh = None
    for k, ax in enumerate(axes.ravel()):
        if k >= len(elements):
            ax.remove()
            continue
        values = maps[elements[k]]
        limits = robust_limits(values, signed=True, percentile=percentile) if in_units else shared
        mesh, unit = _element_panel(ax, image, pixel_size, sliding, elements[k], to_values(values), where, skipped,
                                    limits, style=style, max_pixels=max_pixels,
                                    unit_bar=_extend(values, *limits) if in_units else None)
        _label_panel(ax, k, axes.shape, len(elements), unit, style)
    if not in_units and mesh is not None:
        bar = fig.colorbar(mesh, cax=fig.add_axes([1 - 0.75 / size[0], 0.2, 0.1 / size[0], 0.6]),
                           extend=_extend(all_values, *shared))
        bar.set_label(_element_label(sliding, names[0], names[1], False), fontsize=_font(style))
        bar.ax.tick_params(labelsize=_font(style, 0.9))
    fig.suptitle("\n".join(title), fontsize=_font(style), y=1 - 0.08 / size[1], va="top")
    return fig


def _nothing_to_map(head: str, style):
    """A one-column figure that says no element is significant (or non-zero) in any window."""
    fig = _figure((SINGLE_COLUMN, 1.6))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(head + "; nothing to map.", 48)), ha="center", va="center",
            transform=ax.transAxes, fontsize=_font(style))
    return fig


def _grid_figure(n: int, shape, width: float, in_units: bool, title_lines: int):
    """``(fig, axes (nrows, ncols), size)`` of ``n`` map panels, placed by hand (a layout engine is slow on many
    map panels): room for one colour bar per panel (``in_units``) or one shared bar, and the title's lines."""
    h, w = shape
    nrows, ncols, panel_width, panel_height = _grid_shape(n, w / max(h, 1), width)
    bar_room = 0.55 if in_units else 0.0
    top_room = 0.3 + 0.16 * title_lines
    size = (width, nrows * (panel_height + 0.42) + 0.45 + top_room)
    fig = _figure(size, layout=None)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.55 / size[0], right=1 - (0.35 + (0 if in_units else 0.6)) / size[0],
                        bottom=0.45 / size[1], top=1 - top_room / size[1],
                        wspace=(0.15 + bar_room) / panel_width, hspace=0.42 / panel_height)
    return fig, axes, size


def _element_panel(ax, image, pixel_size, sliding, element, values, where, skipped, limits, *, style, max_pixels,
                   unit_bar):
    """One element's map on the image (not-fitted windows grey); with ``unit_bar`` (the colour bar's
    ``extend``) its own colour bar in the coupling's unit.  Returns the map and the axis unit."""
    from matplotlib.colors import ListedColormap

    effect, cause = element
    fy, fx, unit = draw_image(ax, image, pixel_size, style=style, max_pixels=max_pixels, axis_labels=False)
    lo, hi = limits
    mesh = _place(ax, values, where, (fy, fx), cmap=style.signed_cmap, vmin=lo, vmax=hi, alpha=style.map_alpha)
    if unit_bar is not None:
        bar = ax.figure.colorbar(mesh, cax=ax.inset_axes([1.03, 0.0, 0.05, 1.0]), extend=unit_bar)
        bar.set_label(coupling_unit(sliding.units, effect, cause), fontsize=_font(style, 0.9))
        bar.ax.tick_params(labelsize=_font(style, 0.9))
    if not sliding.fitted.all():
        _place(ax, skipped, where, (fy, fx), cmap=ListedColormap(["0.55"]), vmin=0, vmax=1, alpha=0.8)
    ax.set_title(f"{effect} <- {cause}", fontsize=_font(style), pad=2)
    ax.tick_params(labelsize=_font(style, 0.9))
    h, w = np.shape(image)
    ax.set_xlim(-0.5 * fx, (w - 0.5) * fx)
    ax.set_ylim((h - 0.5) * fy, -0.5 * fy)
    return mesh, unit


def _label_panel(ax, k: int, grid, n: int, unit: str, style) -> None:
    """Axis labels on the outer panels of the grid only (the bottom one of each column, the left column)."""
    nrows, ncols = grid
    row, col = divmod(k, ncols)
    if row == nrows - 1 or k + ncols >= n:
        ax.set_xlabel(f"x ({unit})", fontsize=_font(style))
    else:
        ax.tick_params(labelbottom=False)
    if col == 0:
        ax.set_ylabel(f"y ({unit})", fontsize=_font(style))
    else:
        ax.tick_params(labelleft=False)
