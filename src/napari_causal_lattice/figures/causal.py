"""Drawings of causal results: the causal graph, adjacency heatmaps, and the global graph of one analysis.

Only the object-oriented matplotlib API is used (no pyplot state, no GUI backend), so the functions work
in scripts (``fig.savefig``), in notebooks and inside the napari dock (``_napari/_mpl.py``).
Adjacency convention: ``B[i, j]`` is the effect of ``names[j]`` (cause) on ``names[i]`` (effect).
"""

from __future__ import annotations

import textwrap

import numpy as np

from .style import DOUBLE_COLUMN, _extend, _figure, _font, get_style


_POS_COLOR = "#c0392b"


_NEG_COLOR = "#2e6fba"


_ROW_STEP = 0.75  # vertical distance between the rows of the layered layout


def new_axes(figsize=(5.0, 4.5)):
    """A fresh ``Axes`` on a pyplot-free ``Figure``."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _unpack(result_or_matrix, names, probabilities, in_units):
    if hasattr(result_or_matrix, "adjacency"):
        res = result_or_matrix
        B = res.adjacency_in_units() if in_units else res.adjacency
        names = list(res.names) if names is None else list(names)
        probabilities = res.probabilities if probabilities is None else probabilities
        order = list(res.causal_order)
    else:
        B = np.asarray(result_or_matrix, dtype=float)
        if B.ndim != 2 or B.shape[0] != B.shape[1]:
            raise ValueError(f"The adjacency matrix must be square (p, p), got shape {B.shape}.")
        names = [f"x{k}" for k in range(B.shape[0])] if names is None else list(names)
        order = list(range(B.shape[0]))
    if len(names) != B.shape[0]:
        raise ValueError(f"{len(names)} names for a {B.shape[0]} x {B.shape[0]} adjacency matrix.")
    if probabilities is not None:
        probabilities = np.asarray(probabilities, dtype=float)
        if probabilities.shape != B.shape:
            raise ValueError(f"probabilities must have the adjacency's shape {B.shape}, got {probabilities.shape}.")
    return B, names, probabilities, order


def coupling_unit(units: dict, effect: str, cause: str) -> str:
    """Unit of a physical coupling ``effect <- cause`` written out, e.g. ``"pm/pm"``, ``"pm^2/deg"`` (``""`` if unknown)."""
    ue, uc = units.get(effect, ""), units.get(cause, "")
    if not ue or not uc:
        return ""
    return f"{ue}/{uc}"


def _mark_unlinked(ax, pos, keep, font_size: float) -> None:
    """A dotted line above the nodes without a shown edge (the bottom row of a layered layout), when some are."""
    loose = ~(keep.any(axis=0) | keep.any(axis=1))
    if loose.any() and not loose.all():
        y = pos[loose, 1].max() + _ROW_STEP / 2
        ax.axhline(y, color="0.7", lw=0.8, ls=":", zorder=0)
        ax.text(ax.get_xlim()[0], y, "no edge shown", fontsize=font_size, color="0.45", va="bottom", ha="left")


def _draw_edges(ax, pos, B, keep, flagged, prob, names, *, fmt: str, units, layered: bool,
                node_radius: float, both) -> list:
    """One arrow j -> i per shown edge ``keep[i, j]``, width by |B| (the flagged ones left out of the scale),
    labelled with the coefficient (its unit from ``units``, " !" when flagged, P when known); a pair in ``both``
    gets a head at each end and "(both)"; returns the labels."""
    sized = keep & ~flagged
    vmax = np.abs(B[sized]).max() if sized.any() else 1.0
    labels = []
    for i, j in zip(*np.nonzero(keep)):  # arrow j -> i
        text = fmt.format(B[i, j])
        if units is not None:
            text += f" {coupling_unit(units, names[i], names[j])}".rstrip()
        if flagged[i, j]:
            text += " !"
        if both[i, j]:
            text += " (both)"
        if prob is not None:
            text += f"\nP={prob[i, j]:.2f}"
        labels.append(_arrow(ax, pos[j], pos[i], B[i, j], vmax, text, flagged=bool(flagged[i, j]),
                             pair=bool(keep[j, i]), layered=layered, node_radius=node_radius,
                             two_heads=bool(both[i, j])))
    return labels


def plot_causal_graph(
    result_or_matrix,
    names=None,
    ax=None,
    probabilities=None,
    *,
    min_probability: float = 0.0,
    min_abs: float = 0.0,
    in_units: bool = False,
    fmt: str = "{:+.2f}",
    layout: str = "layered",
    title: str | None = None,
    keep=None,
    flag_above: float | None = 3.0,
    node_radius: float = 0.13,
    font_size: float = 7.0,
):
    """Draw the causal graph: one arrow per direct effect, width proportional to ``|coefficient|``.

    Parameters
    ----------
    result_or_matrix : LingamResult or (p, p) array
        A fit result, or an adjacency matrix ``B[i, j]`` = effect of ``j`` on ``i``.
    names : sequence of str, optional
        Variable names (default: the result's names, or ``x0, x1, ...``).
    ax : matplotlib Axes, optional
        Where to draw (default: a new pyplot-free figure).
    probabilities : (p, p) array, optional
        Bootstrap edge probabilities (default: the result's); shown next to each coefficient.
    min_probability : float
        Hide edges with a lower probability (when probabilities are known).
    min_abs : float
        Hide edges with ``|coefficient| <= min_abs``.
    in_units : bool
        For a result: label physical couplings (with their unit, e.g. ``pm/pm``) instead of standardised ones.
    fmt : str
        Format of the coefficient labels.
    layout : {"layered", "circle"}
        ``"layered"``: causes above their effects (rows by longest path from a variable without a shown
        parent; variables without any shown edge in a last row, under a grey rule); ``"circle"``: a circle in
        causal order, clockwise from the top.
    title : str, optional
    keep : (p, p) bool array, optional
        Edges to draw (e.g. the calibrated significance decision); overrides ``min_probability``.  A pair kept
        both ways of which the fit has one direction (a link whose direction the bootstrap did not settle, link
        type "both") is drawn in the fitted direction with a head at each end, labelled ``"(both)"``.
    flag_above : float or None
        For a standardised result: edges whose standardised ``|coefficient|`` exceeds this are not effect
        sizes but the mark of collinear descriptors (e.g. ``alpha``, ``Vol``, ``a``, ``b`` with
        ``Vol = a b sin(alpha)``); they are drawn dashed and grey, labelled with a trailing ``"!"``.
    node_radius : float
        Radius of the variable circles in layout units (the layout spans about [-1.2, 1.2]).
    font_size : float
        Size of the edge labels in points (variable names are 1.3 times larger).

    Returns
    -------
    matplotlib.axes.Axes
        Red arrows are positive effects, blue negative; labels give the coefficient and probability,
        placed where they overlap neither another label nor a variable.
    """
    res = result_or_matrix if hasattr(result_or_matrix, "adjacency") else None
    B, names, prob, order = _unpack(result_or_matrix, names, probabilities, in_units)
    if ax is None:
        ax = new_axes()
    given = keep
    keep = _shown_edges(B, prob, keep, min_abs=min_abs, min_probability=min_probability)  # checks the shape
    both = np.zeros_like(keep) if given is None else _unsettled_pairs(given, B) & keep
    flagged = np.zeros_like(keep)
    if flag_above is not None and res is not None and res.standardized:
        flagged = keep & (np.abs(res.adjacency) > flag_above)
    pos = _node_positions(layout, keep, order)
    _frame(ax, pos, node_radius)
    if layout == "layered":
        _mark_unlinked(ax, pos, keep, font_size)
    labels = _draw_edges(ax, pos, B, keep, flagged, prob, names, fmt=fmt, units=res.units if res is not None and
                         in_units else None, layered=layout == "layered", node_radius=node_radius, both=both)
    _place_labels(ax, labels, pos, node_radius, font_size)
    _draw_nodes(ax, pos, names, node_radius, font_size)
    if title is None:
        title = "causal graph (arrow: cause -> effect)"
    ax.set_title(title, fontsize=1.3 * font_size)
    return ax


def _unsettled_pairs(keep, B) -> np.ndarray:
    """(p, p) bool: ``keep[i, j]`` and ``keep[j, i]`` both set while the fit has only ``B[i, j]`` (a link kept
    both ways whose direction the fit chose but the bootstrap did not settle)."""
    keep = np.asarray(keep, dtype=bool)
    B = np.asarray(B, dtype=float)
    return keep & keep.T & (B != 0) & (B.T == 0)


def _shown_edges(B, prob, keep, *, min_abs: float, min_probability: float) -> np.ndarray:
    """(p, p) bool: the edges to draw (``keep`` if given, else ``|B| > min_abs`` with enough probability),
    finite, non-zero and off the diagonal."""
    if keep is None:
        keep = (np.abs(B) > min_abs) & np.isfinite(B)
        if prob is not None:
            keep &= prob >= min_probability
    else:
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != B.shape:
            raise ValueError(f"keep must have the adjacency's shape {B.shape}, got {keep.shape}.")
        keep = keep & np.isfinite(B) & (B != 0)
    return keep & ~np.eye(B.shape[0], dtype=bool)


def _node_positions(layout: str, keep: np.ndarray, order) -> np.ndarray:
    """(p, 2) positions of the variables: rows by depth (``"layered"``) or a circle in causal order."""
    p = keep.shape[0]
    if layout == "layered":
        return _layered_positions(keep, order)
    if layout == "circle":
        angles = np.pi / 2 - 2 * np.pi * np.arange(p) / p
        pos = np.empty((p, 2))
        pos[order] = np.c_[np.cos(angles), np.sin(angles)]
        return pos
    raise ValueError(f"layout must be 'layered' or 'circle', got {layout!r}.")


def _arrow(ax, start, end, coefficient: float, vmax: float, text: str, *, flagged: bool, pair: bool, layered: bool,
           node_radius: float, two_heads: bool = False):
    """Draw one arrow cause -> effect between the variables' circles: width by ``|coefficient| / vmax`` (the
    largest shown), red positive, blue negative, grey dashed when ``flagged``, a head at each end when
    ``two_heads``.  Returns its label's ``(text, colour, start, control point, end)`` for :func:`_place_labels`."""
    from matplotlib.patches import FancyArrowPatch

    d = end - start
    unit = d / max(np.hypot(*d), 1e-12)
    a0, a2 = start + unit * node_radius, end - unit * node_radius
    rad = _bend(start, end, pair=pair, layered=layered)
    if flagged:
        width, color, style = 1.0, "0.45", "--"
    else:
        width = 0.8 + 3.2 * min(abs(coefficient) / vmax, 1.0)
        color, style = _POS_COLOR if coefficient > 0 else _NEG_COLOR, "-"
    ax.add_patch(FancyArrowPatch(
        a0, a2, arrowstyle="<|-|>" if two_heads else "-|>", mutation_scale=9 + 2 * width, lw=width, color=color,
        alpha=0.85, linestyle=style, connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0, zorder=1,
    ))
    ctrl = (a0 + a2) / 2 + rad * np.array([a2[1] - a0[1], a0[0] - a2[0]])
    return text, color, a0, ctrl, a2


def _draw_nodes(ax, pos, names, node_radius: float, font_size: float) -> None:
    """One circle per variable with its name (long names shrink towards the edge-label size to stay inside)."""
    for k in range(len(names)):
        ax.add_patch(_circle(pos[k], node_radius))
        size = 1.3 * font_size * min(1.0, max(3.5 / max(len(names[k]), 1), 1 / 1.3))
        ax.text(*pos[k], names[k], ha="center", va="center", fontsize=size, fontweight="bold", zorder=5)


def _bend(start, end, *, pair: bool, layered: bool) -> float:
    """Curvature (matplotlib ``arc3`` rad) of an arrow: opposite pairs bend apart; in the layered layout an
    edge spanning several rows bends more, away from the middle, so it passes beside the rows in between."""
    if pair:
        return 0.25
    if not layered:
        return 0.12
    d = end - start
    rows = abs(d[1]) / _ROW_STEP
    if rows <= 1.01:
        return 0.12
    side = np.sign((start[0] + end[0]) / 2) or (1.0 if round(rows) % 2 else -1.0)
    normal_x = d[1]  # arc3 bends towards rad * (dy, -dx)
    return float(min(0.15 * rows, 0.5) * side * (np.sign(normal_x) or 1.0))


def _frame(ax, pos, node_radius):
    margin = node_radius + 0.25
    ax.set_xlim(pos[:, 0].min() - margin, pos[:, 0].max() + margin)
    ax.set_ylim(pos[:, 1].min() - margin, pos[:, 1].max() + margin)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _place_labels(ax, labels, pos, node_radius, font_size, *, steps=(0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78)):
    """Write each edge label on its curve at the first position that overlaps no variable and no label."""
    fig = ax.figure
    box = ax.get_position()
    width_pt = box.width * fig.get_figwidth() * 72
    height_pt = box.height * fig.get_figheight() * 72
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    per_pt = max((x1 - x0) / max(width_pt, 1.0), (y1 - y0) / max(height_pt, 1.0))
    placed: list = []
    for text, color, a0, ctrl, a2 in labels:
        lines = text.split("\n")
        half = np.array([0.3 * font_size * max(map(len, lines)), 0.62 * font_size * len(lines)]) * per_pt

        def overlap(mid):
            nodes = np.clip(pos, mid - half, mid + half)
            cost = float(np.sum(np.hypot(*(nodes - pos).T) < node_radius))
            for other in placed:
                dx = half[0] + other[1][0] - abs(mid[0] - other[0][0])
                dy = half[1] + other[1][1] - abs(mid[1] - other[0][1])
                cost += max(dx, 0) * max(dy, 0) / (4 * half[0] * half[1])
            return cost

        candidates = [(1 - t) ** 2 * a0 + 2 * t * (1 - t) * ctrl + t**2 * a2 for t in steps]
        costs = [overlap(c) for c in candidates]
        mid = candidates[int(np.argmin(costs))]
        placed.append((mid, half))
        ax.text(*mid, text, fontsize=font_size, ha="center", va="center", color=color, zorder=3,
                bbox=dict(boxstyle="round,pad=0.12", fc="white", ec="none", alpha=0.85))


def _layered_positions(keep: np.ndarray, order) -> np.ndarray:
    """Node positions: rows by depth (longest path from a parentless node), top to bottom.

    Variables without a shown edge go in one last row, spread across the width.
    """
    p = keep.shape[0]
    depth = np.zeros(p, dtype=int)
    for i in order:  # parents come earlier in the causal order
        parents = np.nonzero(keep[i])[0]
        if parents.size:
            depth[i] = depth[parents].max() + 1
    connected = keep.any(axis=0) | keep.any(axis=1)
    n_rows = int(depth[connected].max() + 1) if connected.any() else 0
    rows = [[k for k in order if connected[k] and depth[k] == row] for row in range(n_rows)]
    loose = [k for k in order if not connected[k]]
    if loose:
        rows.append(loose)
    pos = np.zeros((p, 2))
    widest = max(len(r) for r in rows)
    spacing = 2.4 / max(widest - 1, 1) if widest > 1 else 0.0
    spacing = min(spacing, 0.8)
    for row, members in enumerate(rows):
        if 0 < row < n_rows:  # barycentre of the parents reduces crossings
            members.sort(key=lambda k: pos[np.nonzero(keep[k])[0], 0].mean())
        y = -_ROW_STEP * row
        offsets = (np.arange(len(members)) - (len(members) - 1) / 2) * spacing
        for k, x in zip(members, offsets):
            pos[k] = (x, y)
    return pos


def _circle(center, radius):
    from matplotlib.patches import Circle

    return Circle(center, radius, fc="#f4f1e8", ec="#333333", lw=1.2, zorder=4)


def plot_adjacency(
    matrix,
    names=None,
    ax=None,
    *,
    title: str | None = None,
    cmap: str | None = None,
    signed: bool | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = True,
    fmt: str = "{:.2f}",
    colorbar: bool = True,
    label: str = "coefficient",
    annotate_min: float = 0.0,
):
    """Heatmap of an adjacency (or probability) matrix with "effect <- cause" axes.

    Parameters
    ----------
    matrix : (p, p) array or LingamResult
        ``matrix[i, j]`` = effect of ``names[j]`` (column, x axis: cause) on ``names[i]`` (row, y axis:
        effect).  A result gives its ``adjacency``.
    names : sequence of str, optional
    ax : matplotlib Axes, optional
    title : str, optional
    cmap : str, optional
        Default: diverging ``"RdBu_r"`` with limits symmetric about 0 when ``signed``, else ``"viridis"``.
    signed : bool, optional
        Treat values as signed couplings (default: when the matrix has negative entries).  Use True for
        adjacency matrices, False for probabilities.
    vmin, vmax : float, optional
    annotate : bool
        Write the values in the cells (skipped for p > 12).
    fmt : str
    colorbar : bool
    label : str
        Colour-bar label (e.g. ``"probability"``, ``"std / std"``).
    annotate_min : float
        Write only values of at least this magnitude.  Values beyond the colour limits saturate; the colour
        bar then ends in an arrow.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if hasattr(matrix, "adjacency"):
        names = list(matrix.names) if names is None else names
        matrix = matrix.adjacency
    M = np.asarray(matrix, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"The matrix must be square (p, p), got shape {M.shape}.")
    p = M.shape[0]
    names = [f"x{k}" for k in range(p)] if names is None else list(names)
    if len(names) != p:
        raise ValueError(f"{len(names)} names for a {p} x {p} matrix.")
    if ax is None:
        ax = new_axes()
    finite = M[np.isfinite(M)]
    if signed is None:
        signed = bool(finite.size and finite.min() < 0)
    if cmap is None:
        cmap = "RdBu_r" if signed else "viridis"
    if signed and vmin is None and vmax is None:
        lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
        vmin, vmax = -lim, lim
    elif vmin is None and vmax is None:
        vmin, vmax = 0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    im = ax.imshow(M, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(p), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(p), names, fontsize=8)
    ax.set_xlabel("cause", fontsize=8)
    ax.set_ylabel("effect", fontsize=8)
    if annotate and p <= 12:
        _annotate(ax, M, vmin, vmax, signed=signed, fmt=fmt, annotate_min=annotate_min)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label, extend=_extend(M, vmin, vmax))
    ax.set_title(title if title is not None else "effect <- cause", fontsize=9)
    return ax


def _annotate(ax, M, vmin: float, vmax: float, *, signed: bool, fmt: str, annotate_min: float) -> None:
    """Write the non-zero values of at least ``annotate_min`` magnitude in their cells, white on dark colours."""
    p = M.shape[0]
    span = (vmax - vmin) or 1.0
    for i in range(p):
        for j in range(p):
            if np.isfinite(M[i, j]) and M[i, j] != 0 and abs(M[i, j]) >= annotate_min:
                dark = abs((M[i, j] - vmin) / span - 0.5) > 0.3 if signed else (M[i, j] - vmin) / span < 0.6
                ax.text(j, i, fmt.format(M[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")


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
    style = get_style(style)
    keep = edge_mask(lingam, min_probability)
    fig = _figure((DOUBLE_COLUMN, 3.9))
    graph, heat = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1.0]})
    unit = "standardised (dimensionless)" if lingam.standardized else "data units"
    # the graph panel is half the figure wide: the criterion wraps instead of running off its left edge (no break
    # inside "p <= 0.01": non-breaking spaces)
    criterion = f"edges shown: {edge_criterion(lingam, min_probability)}".replace(" <= ", "\u00a0<=\u00a0")
    criterion = textwrap.fill(criterion, width=44)
    plot_causal_graph(lingam, ax=graph, keep=keep, flag_above=flag_above, font_size=_font(style, 0.9),
                      title=f"layered layout: causes above effects\n{criterion}")
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
