"""Matplotlib drawings of causal results: graph and adjacency heatmaps.

Only the object-oriented matplotlib API is used (no pyplot state, no GUI backend), so the functions work
in scripts (``fig.savefig``), in notebooks and inside the napari dock (``_napari/_mpl.py``).
Adjacency convention: ``B[i, j]`` is the effect of ``names[j]`` (cause) on ``names[i]`` (effect).
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_causal_graph", "plot_adjacency", "new_axes"]

_POS_COLOR = "#c0392b"
_NEG_COLOR = "#2e6fba"


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
        For a result: label physical couplings instead of standardised ones.
    fmt : str
        Format of the coefficient labels.
    layout : {"layered", "circle"}
        ``"layered"``: causes above their effects (rows by longest path from an exogenous variable,
        variables without any shown edge in a column on the right); ``"circle"``: a circle in causal
        order, clockwise from the top.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
        Red arrows are positive effects, blue negative; labels give the coefficient and probability.
    """
    from matplotlib.patches import FancyArrowPatch

    B, names, prob, order = _unpack(result_or_matrix, names, probabilities, in_units)
    if ax is None:
        ax = new_axes()
    p = len(names)
    keep = (np.abs(B) > min_abs) & ~np.eye(p, dtype=bool) & np.isfinite(B)
    if prob is not None:
        keep &= prob >= min_probability
    if layout == "layered":
        pos = _layered_positions(keep, order)
    elif layout == "circle":
        angles = np.pi / 2 - 2 * np.pi * np.arange(p) / p
        pos = np.empty((p, 2))
        pos[order] = np.c_[np.cos(angles), np.sin(angles)]
    else:
        raise ValueError(f"layout must be 'layered' or 'circle', got {layout!r}.")
    vmax = np.abs(B[keep]).max() if keep.any() else 1.0
    node_r = 0.16
    placed: list = []
    for i, j in zip(*np.nonzero(keep)):  # arrow j -> i
        start, end = pos[j], pos[i]
        width = 0.8 + 4.2 * abs(B[i, j]) / vmax
        color = _POS_COLOR if B[i, j] > 0 else _NEG_COLOR
        d = end - start
        unit = d / max(np.hypot(*d), 1e-12)
        arrow = FancyArrowPatch(
            start + unit * node_r, end - unit * node_r, arrowstyle="-|>", mutation_scale=10 + 2 * width,
            lw=width, color=color, alpha=0.85, connectionstyle="arc3,rad=0.12", shrinkA=0, shrinkB=0, zorder=1,
        )
        ax.add_patch(arrow)
        # label on the curved arrow, as near its middle as other labels allow
        a0, a2 = start + unit * node_r, end - unit * node_r
        ctrl = (a0 + a2) / 2 + 0.12 * np.array([a2[1] - a0[1], a0[0] - a2[0]])
        for t in (0.5, 0.32, 0.68, 0.2, 0.8):
            mid = (1 - t) ** 2 * a0 + 2 * t * (1 - t) * ctrl + t**2 * a2
            if all(abs(mid[0] - x) > 0.32 or abs(mid[1] - y) > 0.2 for x, y in placed):
                break
        placed.append(mid)
        label = fmt.format(B[i, j])
        if prob is not None:
            label += f"\nP={prob[i, j]:.2f}"
        ax.text(*mid, label, fontsize=7, ha="center", va="center", color=color, zorder=3,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    for k in range(p):
        ax.add_patch(_circle(pos[k], node_r))
        ax.text(*pos[k], names[k], ha="center", va="center", fontsize=9, fontweight="bold", zorder=5)
    ax.set_xlim(-1.4, 1.45)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title is None:
        title = "causal graph (arrow: cause -> effect)"
    ax.set_title(title, fontsize=9)
    return ax


def _layered_positions(keep: np.ndarray, order) -> np.ndarray:
    """Node positions in [-1, 1]^2: rows by depth (longest path from a parentless node), top to bottom."""
    p = keep.shape[0]
    depth = np.zeros(p, dtype=int)
    for i in order:  # parents come earlier in the causal order
        parents = np.nonzero(keep[i])[0]
        if parents.size:
            depth[i] = depth[parents].max() + 1
    connected = keep.any(axis=0) | keep.any(axis=1)
    pos = np.zeros((p, 2))
    n_rows = max(1, depth[connected].max() + 1) if connected.any() else 1
    width = 2.3 if not (~connected).any() else 2.0
    x_left = -1.15
    for row in range(n_rows):
        members = [k for k in order if connected[k] and depth[k] == row]
        if row:  # barycentre of the parents reduces crossings
            members.sort(key=lambda k: pos[np.nonzero(keep[k])[0], 0].mean())
        y = 1.0 - 2.0 * row / max(1, n_rows - 1) if n_rows > 1 else 0.0
        for rank, k in enumerate(members):
            pos[k] = (x_left + width * (rank + 1) / (len(members) + 1), y)
    loose = [k for k in order if not connected[k]]
    for rank, k in enumerate(loose):
        pos[k] = (1.2, 1.0 - 2.0 * rank / max(1, len(loose) - 1) if len(loose) > 1 else 0.0)
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
        span = (vmax - vmin) or 1.0
        for i in range(p):
            for j in range(p):
                if np.isfinite(M[i, j]) and M[i, j] != 0:
                    dark = abs((M[i, j] - vmin) / span - 0.5) > 0.3 if signed else (M[i, j] - vmin) / span < 0.6
                    ax.text(j, i, fmt.format(M[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if dark else "black")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label=label)
    ax.set_title(title if title is not None else "effect <- cause", fontsize=9)
    return ax
