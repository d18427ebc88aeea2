"""The coupling profile across a domain wall, with its fitted tanh (:func:`napari_causal_lattice.walls.wall_profile`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..walls import WallProfile


def plot_wall_profile(ax, profile: WallProfile, *, color="C0", label=None):
    """Draw the binned coupling with its confidence intervals and the fitted tanh on a matplotlib Axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes (no pyplot state).
    profile : WallProfile
        Output of :func:`wall_profile`.
    color : str
        Matplotlib colour of the points and the fit.
    label : str, optional
        Legend label of the points (default ``"effect <- cause"``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    t = profile.table
    yerr = np.vstack([t["value"] - t["ci_low"], t["ci_high"] - t["value"]])
    ax.errorbar(t["distance"], t["value"], yerr=yerr, fmt="o", ms=3, color=color, capsize=2,
                label=label or f"{profile.effect} <- {profile.cause}")
    if profile.params:
        d = np.linspace(t["distance"].min(), t["distance"].max(), 300)
        p = profile.params
        problem = profile.fit_problem()
        text = ("fit failed: " + problem if problem
                else f"fit: Lc = {p['Lc']:.3g} ± {p['Lc_err']:.2g} px, A = {p['amplitude']:.3g}")
        ax.plot(d, profile.model(d), color=color, lw=1.5, ls=":" if problem else "-", label=text)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.axvline(0.0, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("distance from wall [px]")
    ax.set_ylabel(f"{profile.effect} <- {profile.cause} [{profile.units}]")
    ax.legend(fontsize="small")
    return ax
