"""The linearized LGD theory's curves (paper Figs. 8-9; :mod:`napari_causal_lattice.theory`), on Axes you pass in."""

from __future__ import annotations

import numpy as np

from ..theory import STRAIN_COUPLINGS, TheoryCurves


def _display_limit(values, clip: float) -> float:
    """Half-height of the y axis: 1.2 x the 95th percentile of |values|, at most ``clip``."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite)]
    top = min(float(np.percentile(finite, 95)) * 1.2, clip) if finite.size else clip
    return max(top, 1e-3)


def plot_figure8(ax, curves: TheoryCurves, *, eps_index: int = 0, clip: float = 10.0):
    """Draw Fig. 8 (a)-(c) style lines ``dP2/dP1`` vs ``x / Lc`` for one ``eps`` on a matplotlib Axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes (no pyplot state is used).
    curves : TheoryCurves
        Output of :func:`figure8_curves`.
    eps_index : int
        Which ``eps`` of ``curves`` to draw.
    clip : float
        Largest |ratio| shown; near the poles the curves leave the axes instead of squashing the plot.

    Returns
    -------
    matplotlib.axes.Axes
    """
    values = curves.values["dP2/dP1"][eps_index]
    top = _display_limit(values, clip)
    for r, line in zip(curves.r, values):
        # break the line at the poles instead of joining +inf to -inf
        ax.plot(curves.x, np.where(np.abs(line) > 5 * top, np.nan, line), label=f"e2*/e1* = {r:g}")
    ax.set_ylim(-top, top)
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("x / Lc")
    ax.set_ylabel("dP2 / dP1")
    ax.set_title(f"eps = {curves.eps[eps_index]:g}")
    ax.legend(fontsize="small")
    return ax


def plot_figure9(axes, curves: TheoryCurves):
    """Draw Fig. 9 (a)-(d): the four Eq. 16 couplings vs ``x / Lc``, one Axes per coupling.

    Parameters
    ----------
    axes : sequence of 4 matplotlib.axes.Axes
        Targets for du11/dP1, du12/dP2, du22/dP1 and dV/dP1.
    curves : TheoryCurves
        Output of :func:`figure9_curves`.

    Returns
    -------
    list of matplotlib.axes.Axes
    """
    axes = list(np.ravel(axes))
    if len(axes) != len(STRAIN_COUPLINGS):
        raise ValueError(f"plot_figure9 needs {len(STRAIN_COUPLINGS)} axes, got {len(axes)}")
    for ax, name in zip(axes, STRAIN_COUPLINGS):
        for eps, line in zip(curves.eps, curves.values[name]):
            ax.plot(curves.x, line, label=f"eps = {eps:g}")
        ax.axvline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel("x / Lc")
        ax.set_ylabel(f"{name} [m^2/C]")
        ax.legend(fontsize="small")
    return axes
