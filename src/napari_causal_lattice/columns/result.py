"""The result of column finding: :class:`Columns` (saved with the results) and :class:`Refined` (one fit's arrays).

Positions are ``(y, x)`` in px, pixel centres at integer coordinates.  Also the helpers that turn a fit's
per-axis position sigmas into the isotropic ones and a :class:`Refined` into :class:`Columns`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..lattice import Lattice
from ..motif import Motif, get_motif
from ..profile import ColumnProfile
from ..provenance import make_provenance
from ..scan import ScanDistortion, line_covariance


@dataclass(frozen=True)
class Columns:
    """Atom columns found in one STEM image.

    Parameters
    ----------
    positions : (N, 2) float array
        Column positions (y, x) in px.
    sublattice : (N,) str array
        ``"A"`` (cell corners) or ``"B"`` (cell centres) for each column.
    intensity : (N,) float array
        Column intensity in image units (Gaussian volume or disk sum, see ``provenance``).
    width : (N,) float array
        Gaussian standard deviation of each column in px (NaN when not fitted).
    quality : (N,) float array
        Fit quality in [0, 1] (R^2 of the Gaussian fit on the column's patch, clipped at 0).
    lattice : Lattice
        The A sublattice, origin on an A column, ``v1`` the lattice vector closest to image +x,
        ``v2`` the one closest to image +y.
    pixel_size : float or None
        Pixel size in pm/px, None when unknown.
    image_shape : tuple of int
        ``(ny, nx)`` of the image the columns were found in.
    provenance : dict
        How the columns were made (see :func:`napari_causal_lattice.provenance.make_provenance`).
    sigma : (N,) float array, optional
        1-sigma position uncertainty of each column per axis (isotropic: the root mean of the y and x variances,
        the shared line part included) in px, from the fit's covariance and residual; NaN where unknown
        (hand-placed positions, no fit).  Default all NaN.
    motif : Motif or {"[001]", "[110]"}, optional
        The crystal projection (which sites a cell has); default ``"[001]"``.  A name is resolved with
        :func:`~napari_causal_lattice.motif.get_motif` on ``lattice``.
    profile : ColumnProfile, optional
        The column profile (core + tail per sublattice, background, noise model) the neighbour-aware fit
        estimated; :meth:`ColumnProfile.render` re-draws the image from it.  None for plain Gaussian fits.
    scan : ScanDistortion, optional
        The line jitter estimated from the image (and whether it was corrected), see
        :mod:`napari_causal_lattice.scan`; None when not estimated.
    detectability : (N,) float array, optional
        Peak amplitude of each column over the local background noise (the rms of the image minus the
        column model within about one cell); default all NaN (unknown).
    faint : (N,) bool array, optional
        Columns whose detectability is below the threshold given to :func:`find_columns`; default all False.
    sigma_axes : (N, 2) float array, optional
        The part of each column's position uncertainty that is its own (independent between columns), px along
        (y, x): the fit's sandwich covariance per axis.  Default ``sigma`` on both axes (states saved before).
    line_variance : (H,) float array, optional
        Variance in px^2 of the x shift left in each image row after the jitter stage, shared by all columns on
        that row (:func:`~napari_causal_lattice.scan.line_covariance` turns it into the columns' covariance;
        :func:`~napari_causal_lattice.cells.build_cells` propagates it).  None: no shared part.
    """

    positions: np.ndarray
    sublattice: np.ndarray
    intensity: np.ndarray
    width: np.ndarray
    quality: np.ndarray
    lattice: Lattice
    pixel_size: float | None = None
    image_shape: tuple = ()
    provenance: dict = field(default_factory=dict)
    sigma: np.ndarray | None = None
    motif: Motif | str | None = None
    profile: ColumnProfile | None = None
    scan: ScanDistortion | None = None
    detectability: np.ndarray | None = None
    faint: np.ndarray | None = None
    sigma_axes: np.ndarray | None = None
    line_variance: np.ndarray | None = None

    def __post_init__(self):
        pos = np.asarray(self.positions, dtype=float).reshape(-1, 2)
        n = pos.shape[0]
        sub = np.asarray(self.sublattice, dtype="<U1").reshape(-1)
        if sub.shape != (n,) or not np.all(np.isin(sub, ("A", "B"))):
            raise ValueError(f"sublattice must hold {n} labels 'A' or 'B'")
        if self.sigma is None:
            object.__setattr__(self, "sigma", np.full(n, np.nan))
        if self.detectability is None:
            object.__setattr__(self, "detectability", np.full(n, np.nan))
        faint = np.zeros(n, dtype=bool) if self.faint is None else np.asarray(self.faint, dtype=bool).reshape(-1)
        if faint.shape != (n,):
            raise ValueError(f"faint must have shape ({n},) to match positions, got {faint.shape}")
        object.__setattr__(self, "faint", faint)
        sigma = np.asarray(self.sigma, dtype=float).reshape(-1)
        axes = (np.repeat(sigma[:, None], 2, axis=1) if self.sigma_axes is None
                else np.asarray(self.sigma_axes, dtype=float))
        if axes.shape != (n, 2):
            raise ValueError(f"sigma_axes must have shape ({n}, 2) to match positions, got {axes.shape}")
        object.__setattr__(self, "sigma_axes", axes)
        if self.line_variance is not None:
            object.__setattr__(self, "line_variance", np.asarray(self.line_variance, dtype=float).reshape(-1))
        if self.scan is not None and not isinstance(self.scan, ScanDistortion):
            raise TypeError(f"scan must be a ScanDistortion or None, got {type(self.scan).__name__}")
        arrays = {}
        for name in ("intensity", "width", "quality", "sigma", "detectability"):
            arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) to match positions, got {arr.shape}")
            arrays[name] = arr
        if self.profile is not None and not isinstance(self.profile, ColumnProfile):
            raise TypeError(f"profile must be a ColumnProfile or None, got {type(self.profile).__name__}")
        if not isinstance(self.lattice, Lattice):
            raise TypeError(f"lattice must be a Lattice, got {type(self.lattice).__name__}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "sublattice", sub)
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)
        if self.pixel_size is not None:
            object.__setattr__(self, "pixel_size", float(self.pixel_size))
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        object.__setattr__(self, "motif", get_motif("[001]" if self.motif is None else self.motif, self.lattice))

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def a(self) -> np.ndarray:
        """Indices (n_A,) of the A columns."""
        return np.flatnonzero(self.sublattice == "A")

    @property
    def b(self) -> np.ndarray:
        """Indices (n_B,) of the B columns."""
        return np.flatnonzero(self.sublattice == "B")

    def to_frame(self) -> pd.DataFrame:
        """One row per column: ``y, x`` (px), ``sublattice``, ``intensity``, ``width`` (px), ``quality``,
        ``sigma`` (px), ``sigma_y``, ``sigma_x`` (px, each column's own part), ``detectability`` (peak over local
        noise) and ``faint``.

        With a known pixel size, ``y_pm``, ``x_pm`` and ``sigma_pm`` (pm) are added.
        """
        frame = pd.DataFrame(
            {
                "y": self.positions[:, 0],
                "x": self.positions[:, 1],
                "sublattice": self.sublattice.astype(str),
                "intensity": self.intensity,
                "width": self.width,
                "quality": self.quality,
                "sigma": self.sigma,
                "sigma_y": self.sigma_axes[:, 0],
                "sigma_x": self.sigma_axes[:, 1],
                "detectability": self.detectability,
                "faint": self.faint,
            }
        )
        if self.pixel_size is not None:
            frame["y_pm"] = frame["y"] * self.pixel_size
            frame["x_pm"] = frame["x"] * self.pixel_size
            frame["sigma_pm"] = frame["sigma"] * self.pixel_size
        return frame

    def to_state(self) -> dict:
        """Nested dict of arrays/str/float/None for saving; ``from_state`` restores it exactly."""
        return {
            "positions": self.positions.copy(),
            "sublattice": self.sublattice.tolist(),
            "intensity": self.intensity.copy(),
            "width": self.width.copy(),
            "quality": self.quality.copy(),
            "lattice": self.lattice.to_state(),
            "pixel_size": self.pixel_size,
            "image_shape": np.asarray(self.image_shape, dtype=np.int64),
            "provenance": json.dumps(self.provenance),
            "sigma": self.sigma.copy(),
            "motif": self.motif.to_state(),
            "profile": None if self.profile is None else self.profile.to_state(),
            "scan": None if self.scan is None else self.scan.to_state(),
            "detectability": self.detectability.copy(),
            "faint": self.faint.copy(),
            "sigma_axes": self.sigma_axes.copy(),
            "line_variance": None if self.line_variance is None else self.line_variance.copy(),
        }

    @classmethod
    def from_state(cls, state: dict) -> "Columns":
        """Rebuild from :meth:`to_state` output (states saved before sigma/motif existed load as NaN/[001])."""
        prov = state.get("provenance", "{}")
        return cls(
            positions=np.asarray(state["positions"], dtype=float),
            sublattice=np.asarray(list(state["sublattice"]), dtype="<U1"),
            intensity=state["intensity"],
            width=state["width"],
            quality=state["quality"],
            lattice=Lattice.from_state(state["lattice"]),
            pixel_size=state["pixel_size"],
            image_shape=tuple(np.asarray(state["image_shape"]).tolist()),
            provenance=json.loads(prov) if isinstance(prov, str) else dict(prov),
            sigma=state.get("sigma"),
            motif=Motif.from_state(state["motif"]) if state.get("motif") is not None else None,
            profile=ColumnProfile.from_state(state["profile"]) if state.get("profile") is not None else None,
            scan=ScanDistortion.from_state(state["scan"]) if state.get("scan") is not None else None,
            detectability=state.get("detectability"),
            faint=state.get("faint"),
            sigma_axes=state.get("sigma_axes"),
            line_variance=state.get("line_variance"),
        )


#: The public path of the class: a results folder names a result's class by module and name (store.py), and
#: folders saved before the columns package was split name it so.
Columns.__module__ = "napari_causal_lattice.columns"


class Refined(NamedTuple):
    """Result of :func:`refine_columns` (all arrays have one row per column)."""

    positions: np.ndarray  #: (N, 2) refined (y, x) in px
    width: np.ndarray  #: (N,) Gaussian sigma in px
    intensity: np.ndarray  #: (N,) Gaussian volume or disk sum, image units
    quality: np.ndarray  #: (N,) R^2 of the Gaussian fit in [0, 1]
    #: (N,) isotropic or (N, 2) y and x 1-sigma position uncertainty in px (NaN when the centre was not fitted)
    sigma: np.ndarray


def _per_axis(sigma) -> np.ndarray:
    """(N, 2) per-axis sigmas from (N,) isotropic or (N, 2) ones."""
    sigma = np.asarray(sigma, dtype=float)
    return np.repeat(sigma[:, None], 2, axis=1) if sigma.ndim == 1 else sigma


def _isotropic(sigma, line=0.0) -> np.ndarray:
    """(N,) isotropic sigmas (root mean of the axis variances, ``line`` (N,) px^2 added to x) of (N,) or (N, 2)."""
    var = _per_axis(sigma) ** 2
    return np.sqrt(0.5 * (var[:, 0] + var[:, 1] + line))


def _add_scan_sigma(refined: Refined, scan_sigma) -> Refined:
    """``refined`` with the scan noise ``scan_sigma`` (px, y and x) added in quadrature to its sigmas per axis."""
    if scan_sigma is None:
        return refined
    extra = np.broadcast_to(np.asarray(scan_sigma, dtype=float), (2,))
    return refined._replace(sigma=np.sqrt(_per_axis(refined.sigma) ** 2 + extra**2))


def _make_columns(refined: Refined, sublattice, lattice, pixel_size, shape, step: str, params: dict,
                  motif: Motif, profile=None, line_variance=None) -> Columns:
    """Columns from a refinement, with the provenance of the public function ``step``; ``line_variance`` (H,)
    px^2 is the line shift shared by the columns of each row (its diagonal enters the isotropic ``sigma``)."""
    line = 0.0 if line_variance is None else line_covariance(refined.positions, refined.width, line_variance)
    return Columns(
        positions=refined.positions,
        sublattice=sublattice,
        intensity=refined.intensity,
        width=refined.width,
        quality=refined.quality,
        lattice=lattice,
        pixel_size=pixel_size,
        image_shape=shape,
        provenance=make_provenance(step, params),
        sigma=_isotropic(refined.sigma, line),
        motif=motif,
        profile=profile,
        sigma_axes=_per_axis(refined.sigma),
        line_variance=line_variance,
    )
