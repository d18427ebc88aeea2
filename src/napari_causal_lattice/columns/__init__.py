"""Atom columns of a perovskite STEM image: find, refine to sub-pixel, classify A/B.

A perovskite ABO3 seen down [001] shows two interpenetrating square lattices of cation
columns: the A sublattice on the cell corners and the B sublattice at the cell centres, offset
by half a cell along both lattice vectors; down [110] the A cell is a x a/sqrt2 and B sits half-way
along a.  Which one an image shows is its :class:`~napari_causal_lattice.motif.Motif`.  Positions are
``(y, x)`` in px, pixel centres at integer coordinates; every fitted column carries a position
uncertainty (``Columns.sigma``).

The modules, in the order they import each other:

- ``result``: :class:`Columns`, :class:`Refined`;
- ``inputs``: :func:`as_image` and the checks of the other arguments;
- ``geometry``: reciprocal vectors, the lattice of all columns, the A lattice fit;
- ``gaussians``: batched Gaussian fits and peeling;
- ``fill``: empty lattice sites filled, implausible fits dropped;
- ``sites``: candidate maxima, motif sites, projection, A/B sublattice;
- ``neighbours``: the neighbour-aware profile fit;
- ``refine``: :func:`refine_columns`;
- ``jitter``, ``contrast``, ``faint``: scan jitter stage, column contrast, detectability;
- ``find``: :func:`find_columns`;
- ``from_positions``: :func:`columns_from_positions`;
- ``variants``: :func:`fit_variants`.
"""

from .contrast import ContrastWarning, detect_contrast
from .faint import FaintColumnsWarning
from .find import find_columns
from .from_positions import columns_from_positions
from .inputs import as_image
from .refine import refine_columns
from .result import Columns, Refined
from .variants import fit_variants

__all__ = ["Columns", "Refined", "find_columns", "refine_columns", "columns_from_positions", "as_image",
           "FaintColumnsWarning", "ContrastWarning", "detect_contrast", "fit_variants"]
