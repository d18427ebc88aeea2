"""Names that moved to another module keep working under their old spelling, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import warnings


def moved(module: str, names: dict, name: str):
    """The body of a module's ``__getattr__``: ``names`` maps an old attribute to the module it moved to.

    Warns (DeprecationWarning, naming the new place) and returns the object; other names raise AttributeError.
    """
    new = names.get(name)
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(f"{module}.{name} has moved; use {new}.{name}", DeprecationWarning, stacklevel=3)
    return getattr(importlib.import_module(new), name)
