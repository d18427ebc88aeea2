"""The figure files of one analysis (PNG, SVG, PDF) for :func:`napari_causal_lattice.pipeline.write_outputs`."""

from __future__ import annotations

from .causal import plot_global_graph
from .columns import plot_image_columns, plot_scan_jitter
from .maps import plot_descriptor_maps
from .pca import plot_pca
from .sliding import OVERLAY, plot_overlay, plot_sliding_grid
from .style import FIGURE_FORMATS, FigureStyle, get_style


def _pixel_size(results) -> float | tuple | None:
    """pm per px of an analysis: the cells' (what the descriptors used), else the image's."""
    cells = getattr(results, "cells", None)
    if cells is not None and cells.pixel_size is not None:
        return cells.pixel_size
    return (getattr(results, "image_info", None) or {}).get("pixel_size")


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
