"""Warnings that point at the user's code.

A warning's location should be the line that called the package, not a line inside it.  Counting frames with
``stacklevel`` breaks whenever a function is split into stages or wrapped (the ``options=`` wrapper of
:func:`~napari_causal_lattice.options.takes_options` adds a frame between a core function and its caller), so the
package warns through :func:`warn`, which places the warning at the first frame outside the package, whatever the
depth (what Python 3.12's ``skip_file_prefixes`` does, available here from 3.11).
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["warn"]

_PACKAGE = __package__ or "napari_causal_lattice"


def _inside(frame) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == _PACKAGE or name.startswith(_PACKAGE + ".")


def warn(message, category: type[Warning] = UserWarning) -> None:
    """:func:`warnings.warn` located at the nearest caller outside the package (the user's call site)."""
    level = 1
    frame = sys._getframe(1)
    while frame.f_back is not None and _inside(frame):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level + 1)
