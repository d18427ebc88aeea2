"""Every matplotlib drawing of the package: maps on the image in nm, the sliding grid, PCA, causal graphs,
comparisons across images, wall profiles, the LGD theory's curves, and the figure files of a results folder.

Only the object-oriented matplotlib API is used (no pyplot, Agg-compatible), and matplotlib is imported
when a figure is made, never when the package is imported.  The computing modules (compare, walls, theory,
...) hold no drawing code; their figures live here, one module per step:

- :mod:`.style`: named styles (:data:`STYLES`), journal page widths, the smallest font, robust colour limits;
- :mod:`.maps`: the image on axes in nm, values placed cell by cell (:func:`draw_map`), descriptor maps;
- :mod:`.columns`: the image with its atom columns, the scan-line jitter;
- :mod:`.causal`: the causal graph, adjacency heatmaps, the global graph (:func:`edge_mask`);
- :mod:`.sliding`, :mod:`.pca`: the sliding maps and the PCA of the sliding adjacency;
- :mod:`.compare`, :mod:`.walls`, :mod:`.theory`: across images and groups, wall profiles, Figs. 8-9;
- :mod:`.files`: :func:`figure_writers` (PNG / SVG / PDF files for ``pipeline.write_outputs``).
"""

from .causal import (
    coupling_unit,
    edge_criterion,
    edge_mask,
    new_axes,
    plot_adjacency,
    plot_causal_graph,
    plot_global_graph,
)
from .columns import plot_image_columns, plot_scan_jitter
from .compare import plot_coefficient_vs_group, plot_group_adjacency, plot_summary
from .files import _makers, check_figure_options, figure_writers
from .maps import cell_raster, draw_flagged, draw_image, draw_map, plot_descriptor_maps, window_values
from .pca import plot_pca
from .sliding import OVERLAY, plot_overlay, plot_sliding_grid, significant_elements
from .style import (
    DOUBLE_COLUMN,
    FIGURE_FORMATS,
    MIN_FONT,
    SINGLE_COLUMN,
    STYLES,
    FigureStyle,
    get_style,
    robust_limits,
)
from .theory import plot_figure8, plot_figure9
from .walls import plot_wall_profile

__all__ = [
    "DOUBLE_COLUMN",
    "FIGURE_FORMATS",
    "MIN_FONT",
    "OVERLAY",
    "SINGLE_COLUMN",
    "STYLES",
    "FigureStyle",
    "cell_raster",
    "check_figure_options",
    "coupling_unit",
    "draw_flagged",
    "draw_image",
    "draw_map",
    "edge_criterion",
    "edge_mask",
    "figure_writers",
    "get_style",
    "new_axes",
    "plot_adjacency",
    "plot_causal_graph",
    "plot_coefficient_vs_group",
    "plot_descriptor_maps",
    "plot_figure8",
    "plot_figure9",
    "plot_global_graph",
    "plot_group_adjacency",
    "plot_image_columns",
    "plot_overlay",
    "plot_pca",
    "plot_scan_jitter",
    "plot_sliding_grid",
    "plot_summary",
    "plot_wall_profile",
    "robust_limits",
    "significant_elements",
    "window_values",
]
