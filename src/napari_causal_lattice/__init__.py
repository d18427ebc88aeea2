"""napari-causal-lattice: causal couplings between unit-cell descriptors in atomically resolved STEM images.

The public API is a chain of plain functions (image -> columns -> cells -> causal maps); importing it never
imports Qt or napari, and the heavier modules load on first use.  The napari plugin lives in
:mod:`napari_causal_lattice._napari`.

Examples
--------
>>> import napari_causal_lattice as ncl
>>> sample = ncl.synthetic_perovskite(seed=0, shape_cells=(12, 12))
>>> sample.image.ndim, sample.truth.grid_shape
(2, (12, 12))
"""

from importlib import import_module

from ._version import __version__
from .lattice import DESCRIPTORS, Lattice, descriptor_units
from .progress import Cancelled

_LAZY = {
    "synthetic_perovskite": "synthetic",
    "synthetic_descriptor_grid": "synthetic",
    "SyntheticSample": "synthetic",
    "SyntheticTruth": "synthetic",
    "SyntheticGrid": "synthetic",
    "compute_descriptors": "descriptors",
    "find_columns": "columns",
    "refine_columns": "columns",
    "columns_from_positions": "columns",
    "Columns": "columns",
    "build_cells": "cells",
    "load_image": "readers",
    "LoadedImage": "readers",
    "save_results": "store",
    "load_results": "store",
    "Results": "store",
    "run_pipeline": "pipeline",
    "analyze_images": "batch",
    "fit_lingam": "causal",
    "LingamResult": "causal",
    "make_prior_knowledge": "causal",
    "plot_causal_graph": "figures",
    "plot_adjacency": "figures",
    "sliding_lingam": "sliding",
    "SlidingResult": "sliding",
    "adjacency_pca": "pca",
    "AdjacencyPCA": "pca",
    "Cells": "cells",
    "mean_polarization": "cells",
    "Motif": "motif",
    "get_motif": "motif",
    "cell_regions": "placement",
    "window_values_per_cell": "placement",
    "figure_writers": "figures",
    "write_report": "report",
    "CausalMethod": "causal",
    "dp2_dp1": "theory",
    "strain_couplings": "theory",
    "spontaneous_polarization": "theory",
    "wall_profile": "walls",
    "WallProfile": "walls",
    "compare_images": "compare",
    "instrument_null": "null",
    "InstrumentNull": "null",
    "estimate_instrument": "null",
    "ColumnProfile": "profile",
    "estimate_profile": "profile",
    "ScanDistortion": "scan",
    "estimate_scan_distortion": "scan",
    "correct_scan": "scan",
    "register_frames": "scan",
    "combine_orthogonal": "scan",
    "detect_contrast": "columns",
    "fit_variants": "columns",
    "FaintColumnsWarning": "columns",
    "ContrastWarning": "columns",
    "referenced_polarization": "cells",
    "reference_cells": "cells",
    "calibrate_pixel_size": "cells",
    "AbsolutePolarizationWarning": "cells",
    "CalibrationWarning": "lattice",
    "AnalysisOptions": "options",
    "ColumnsOptions": "options",
    "CellsOptions": "options",
    "CausalOptions": "options",
    "SlidingOptions": "options",
    "PCAOptions": "options",
    "NullOptions": "options",
    "CompareOptions": "options",
    "WallOptions": "options",
    "LGDOptions": "options",
    "compare_stem_images": "compare",
    "ComparisonResult": "compare",
}

__all__ = ["__version__", "DESCRIPTORS", "Lattice", "descriptor_units", "Cancelled", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'napari_causal_lattice' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
