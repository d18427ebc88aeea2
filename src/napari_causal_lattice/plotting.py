"""Deprecated: the causal-graph drawings moved to :mod:`napari_causal_lattice.figures` (``figures.causal``).

``from napari_causal_lattice.plotting import plot_causal_graph`` still works, with a DeprecationWarning naming
the new place; ``napari_causal_lattice.plot_causal_graph`` and ``plot_adjacency`` work without one.
"""

from ._moved import moved

#: The names that lived here (old name -> new module).
_MOVED = dict.fromkeys(("plot_causal_graph", "plot_adjacency", "new_axes", "coupling_unit"),
                       "napari_causal_lattice.figures")


def __getattr__(name: str):
    return moved(__name__, _MOVED, name)
