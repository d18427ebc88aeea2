"""The PCA of the sliding adjacency: each component next to its loading map on the image (the paper's Fig. 5)."""

from __future__ import annotations

import numpy as np

from .causal import plot_adjacency
from .maps import _window_placement, draw_map
from .style import DOUBLE_COLUMN, _figure


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
