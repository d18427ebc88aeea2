"""Figures of the column-finding step: the image with its atom columns, and the scan-line jitter."""

from __future__ import annotations

import numpy as np

from .maps import _single_size, draw_image
from .style import DOUBLE_COLUMN, _figure, _font, get_style


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
