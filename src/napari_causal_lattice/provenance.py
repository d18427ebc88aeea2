"""Provenance records attached to every result: what made it, with which parameters and seed."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
from importlib import metadata

import numpy as np

from ._version import __version__

_TRACKED = ("numpy", "scipy", "scikit-learn", "scikit-image", "pandas", "lingam")


@functools.cache
def _read_versions() -> tuple[tuple[str, str], ...]:
    """Read the versions from the installed packages' metadata on disk (once per process: ~10 ms)."""
    versions = [("napari-causal-lattice", __version__), ("python", platform.python_version())]
    for name in _TRACKED:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, "not installed"))
    return tuple(versions)


def package_versions() -> dict[str, str]:
    """Versions of this package and the numerical packages its results depend on.

    The metadata is read from disk on the first call only; later calls return a fresh copy of the same
    versions (packages do not change inside a running process), so every result can carry them for free.

    Returns
    -------
    dict
        Package name -> version string (``"not installed"`` for an absent optional package).
    """
    return dict(_read_versions())


def jsonable(value):
    """Convert numpy scalars/arrays, tuples and nested containers to plain JSON types."""
    if value is None or type(value) in (str, int, bool):  # the common leaves, returned as they are
        return value
    if isinstance(value, dict):
        return {str(k): v if v is None or type(v) in (str, int, bool) else jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if v is None or type(v) in (str, int, bool) else jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def make_provenance(step: str, params: dict | None = None, *, seed=None, inputs: dict | None = None) -> dict:
    """Build a provenance record.

    Parameters
    ----------
    step : str
        Name of the public function that produced the result (e.g. ``"find_columns"``).
    params : dict, optional
        Every parameter the function used, after defaults were filled in.
    seed : int or None
        Seed of the random generator, if the step is random.
    inputs : dict, optional
        Provenance of the inputs (nested records), so a chain of steps stays traceable.

    Returns
    -------
    dict
        JSON-serialisable record with ``step``, ``params``, ``seed``, ``versions``, ``created`` (UTC ISO 8601)
        and ``inputs``.
    """
    return {
        "step": step,
        "params": jsonable(params or {}),
        "seed": jsonable(seed),
        "versions": package_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "inputs": jsonable(inputs or {}),
    }
