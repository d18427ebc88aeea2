"""napari-causal-lattice: causal couplings between unit-cell descriptors in atomically resolved STEM images.

The public API is a chain of plain functions (image -> columns -> cells -> causal maps); it never
imports Qt or napari.  The napari plugin lives in :mod:`napari_causal_lattice._napari`.
"""

from ._version import __version__
from .lattice import DESCRIPTORS, Lattice, descriptor_units
from .progress import Cancelled

__all__ = ["__version__", "DESCRIPTORS", "Lattice", "descriptor_units", "Cancelled"]
