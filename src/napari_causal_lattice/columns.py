"""Atom columns of a perovskite STEM image: find, refine to sub-pixel, classify A/B.

A perovskite ABO3 seen down [001] shows two interpenetrating square lattices of cation
columns: the A sublattice on the cell corners and the B sublattice at the cell centres, offset
by half a cell along both lattice vectors; down [110] the A cell is a x a/sqrt2 and B sits half-way
along a.  Which one an image shows is its :class:`~napari_causal_lattice.motif.Motif`.  Positions are
``(y, x)`` in px, pixel centres at integer coordinates; every fitted column carries a position
uncertainty (``Columns.sigma``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from . import _fftlattice, _gaussfit
from ._warn import warn
from .lattice import PLAUSIBLE_SPACING_PM, Lattice, check_calibration, fit_lattice
from .motif import Motif, get_motif, motif_from_offset, unsupported_offset_message
from .options import ColumnsOptions, takes_options
from .profile import ColumnProfile, estimate_profile
from .progress import report
from .provenance import make_provenance
from .scan import ScanDistortion, correct_scan, estimate_scan_distortion, line_covariance

__all__ = ["Columns", "Refined", "find_columns", "refine_columns", "columns_from_positions", "as_image",
           "FaintColumnsWarning", "ContrastWarning", "detect_contrast", "fit_variants"]

#: Columns refined per progress/cancel checkpoint.
_CHUNK = 1024
#: A column predicted at an empty lattice site is kept when its Gaussian fit reaches this R^2.
_FILL_QUALITY = 0.2
#: A column fainter than this fraction of its sublattice's median Gaussian volume and with a fit R^2
#: below ``_FILL_QUALITY`` is dropped as noise.
_FAINT = 0.3
#: Rounds of filling empty lattice sites next to found columns (each round grows into a hole by one site).
_FILL_PASSES = 3
#: Rounds of refitting the A columns on the image without the B Gaussians before the final B fit (see _peel).
_PEEL_ROUNDS = 1
#: Peeled Gaussians are drawn out to this many sigma.
_PEEL_REACH = 4.0
#: A column the neighbour-aware fit moves farther than this fraction of the fit radius from its Gaussian fit
#: keeps the Gaussian-fit position (see _profile_refine).
_PROFILE_MAX_SHIFT = 0.25
#: refine_columns models the neighbours only with at least this many columns (a profile needs a lattice patch).
_PROFILE_MIN_COLUMNS = 16
#: ... or whose position sigma it makes more than this many times the Gaussian fit's.
_PROFILE_MAX_SIGMA_GAIN = 2.0
#: The neighbour-aware fit frees each column's core width (True) or holds it at its sublattice's profile.
_PROFILE_FREE_WIDTH = True
#: A ghost site (a lattice site next to the found columns) whose fit disk lies at least this share inside the
#: image is fitted for its amplitude (else it gets its sublattice's median).
_GHOST_MIN_SHARE = 0.4
#: A fitted ghost below this fraction of its sublattice's median amplitude is an empty site (vacuum beyond a
#: specimen edge, a vacancy): its neighbours keep the profile fit (else their Gaussian fit).
_GHOST_EMPTY = 0.25
#: Columns whose fitted width (volume) exceeds this (squared) times their sublattice's median are not peeled.
_PEEL_OUTLIER = 1.5


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


class Refined(NamedTuple):
    """Result of :func:`refine_columns` (all arrays have one row per column)."""

    positions: np.ndarray  #: (N, 2) refined (y, x) in px
    width: np.ndarray  #: (N,) Gaussian sigma in px
    intensity: np.ndarray  #: (N,) Gaussian volume or disk sum, image units
    quality: np.ndarray  #: (N,) R^2 of the Gaussian fit in [0, 1]
    #: (N,) isotropic or (N, 2) y and x 1-sigma position uncertainty in px (NaN when the centre was not fitted)
    sigma: np.ndarray


def as_image(image) -> np.ndarray:
    """Check and convert an image to a 2D float64 array.

    RGB(A) images (last axis 3 or 4) are converted to grey with a warning.  NaN/inf pixels,
    constant images and images smaller than 16 x 16 px raise ``ValueError``.
    """
    try:
        arr = np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - any conversion failure means "not an image"
        raise TypeError(f"image must be a 2D array of pixel values, got {type(image).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"image must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        warn(
            f"image of shape {arr.shape} looks like RGB(A); converted to grey by averaging R, G and B. "
            "For quantitative intensities load the raw detector image instead.",
            UserWarning,
        )
        arr = arr[..., :3].astype(float).mean(axis=-1)
    if arr.ndim != 2:
        raise ValueError(
            f"image must be 2D (rows, columns), got shape {arr.shape}; pick one plane of a stack or one channel"
        )
    arr = arr.astype(np.float64, copy=False)  # read-only below: a float64 image is not copied
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"image has {int(bad.sum())} NaN or infinite pixel(s) out of {arr.size}; "
            "replace them (e.g. by the local median) or crop them away before finding columns"
        )
    if min(arr.shape) < 16:
        raise ValueError(
            f"image of shape {arr.shape} is too small; use an image (or crop) with at least 3x3 unit cells"
        )
    if np.ptp(arr) == 0:
        raise ValueError(
            "image is constant (every pixel has the same value), so there are no atom columns to find; "
            "check that you picked the STEM image (not a mask, a label layer or an empty frame)"
        )
    return arr


def _spacing_px(spacing, pixel_size):
    if spacing is None:
        return None
    value = float(spacing)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"spacing must be a positive length, got {spacing!r}")
    return value / pixel_size if pixel_size is not None else value


def _check_pixel_size(pixel_size):
    if pixel_size is None:
        return None
    value = float(pixel_size)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"pixel_size must be a positive number of pm per px, got {pixel_size!r}")
    return value


def _check_intensity(intensity):
    if intensity not in ("gaussian", "disk"):
        raise ValueError(f"intensity must be 'gaussian' (fitted volume) or 'disk' (disk sum), got {intensity!r}")


def _dual(v1, v2) -> np.ndarray:
    """Rows g1, g2 (cycles/px) with g_k . v_l = delta_kl."""
    return np.linalg.inv(np.column_stack([v1, v2]))


def _cells_in_view(shape, v1, v2) -> tuple[float, float]:
    ny, nx = shape
    corners = np.array([[0, 0], [0, nx - 1], [ny - 1, 0], [ny - 1, nx - 1]], float)
    frac = corners @ _dual(v1, v2).T
    return float(np.ptp(frac[:, 0])), float(np.ptp(frac[:, 1]))


def _local_maxima(smooth: np.ndarray, min_distance: int) -> np.ndarray:
    size = 2 * max(min_distance, 1) + 1
    peaks = (ndimage.maximum_filter(smooth, size=size, mode="nearest") == smooth) & (
        smooth > ndimage.minimum_filter(smooth, size=size, mode="nearest")
    )
    return np.argwhere(peaks).astype(float)


def _candidates(smooth: np.ndarray, d_min: float):
    """Local maxima (N, 2) yx px of a smoothed image, their values (N,) and prominences (N,) over the local
    minimum within half a cell."""
    cand = _local_maxima(smooth, int(0.25 * d_min))
    ci, cj = cand[:, 0].astype(int), cand[:, 1].astype(int)
    bright = smooth[ci, cj]
    prominence = bright - ndimage.minimum_filter(smooth, size=2 * int(0.5 * d_min) + 1, mode="nearest")[ci, cj]
    return cand, bright, prominence


def _half_offset(site_a, site_b):
    """Offset (2,) of ``site_b`` from ``site_a`` rounded to 0 or 1/2 per lattice vector, or None when it is not
    half a cell (within 0.15) along at least one of them."""
    offset = _torus_diff(site_b, site_a)
    half = np.abs(np.rint(2 * offset) / 2)
    if np.abs(np.abs(offset) - half).max() > 0.15 or not half.any():
        return None
    return half


def _torus_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + 0.5) % 1.0 - 0.5


def _find_sites(frac: np.ndarray, n_cells: float, *, tol: float = 0.18, max_sites: int = 4) -> list[np.ndarray]:
    """Cluster fractional cell coordinates (N, 2) into sites of the motif; returns site centres."""
    bins = 24
    hist, _, _ = np.histogram2d(frac[:, 0], frac[:, 1], bins=bins, range=[[0, 1], [0, 1]])
    hist = ndimage.uniform_filter(hist, size=3, mode="wrap") * 9
    centres_1d = (np.arange(bins) + 0.5) / bins
    free = np.ones(len(frac), dtype=bool)
    sites = []
    for _ in range(max_sites):
        k = np.unravel_index(np.argmax(hist), hist.shape)
        if hist[k] < 0.05 * n_cells:
            break
        guess = np.array([centres_1d[k[0]], centres_1d[k[1]]])
        for _ in range(3):
            d = _torus_diff(frac, guess)
            members = free & (np.abs(d).max(axis=1) < tol)
            if not members.any():
                break
            guess = (guess + d[members].mean(axis=0)) % 1.0
        d = _torus_diff(frac, guess)
        members = np.abs(d).max(axis=1) < tol
        if members.sum() < 0.2 * n_cells:
            break
        sites.append(guess)
        free &= ~members
        di = np.abs(_torus_diff(centres_1d[:, None], guess[0])) < 2 * tol
        dj = np.abs(_torus_diff(centres_1d[None, :], guess[1])) < 2 * tol
        hist[di & dj] = 0
    return sites


def _suppress_duplicates(positions: np.ndarray, brightness: np.ndarray, min_distance: float) -> np.ndarray:
    """Boolean keep-mask: of columns closer than ``min_distance``, keep the brightest."""
    keep = np.ones(len(positions), dtype=bool)
    pairs = cKDTree(positions).query_pairs(min_distance, output_type="ndarray")
    if len(pairs) == 0:
        return keep
    order = np.argsort(-brightness)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    for a, b in sorted(pairs.tolist(), key=lambda ab: min(rank[ab[0]], rank[ab[1]])):
        if keep[a] and keep[b]:
            keep[b if rank[a] < rank[b] else a] = False
    return keep


def _walk_indices(positions: np.ndarray, v1: np.ndarray, v2: np.ndarray, links=()):
    """Integer grid indices (i, j) of lattice points, found by walking from neighbour to neighbour.

    Points are linked when one sits within 0.3 cell of another plus ``v1``, ``v2`` or one of the
    extra ``links`` vectors (integer combinations of ``v1`` and ``v2``).  Walking
    follows slow distortions (curved or strained lattices) that a global rounding of fractional
    coordinates would get wrong.  Each connected patch is indexed from its own first point.

    Returns
    -------
    ij : (N, 2) int array
        ``i`` counts ``v2`` steps, ``j`` counts ``v1`` steps.
    component : (N,) int array
        Label of the connected patch of each point.
    """
    n = len(positions)
    tree = cKDTree(positions)
    tol = 0.3 * min(np.hypot(*v1), np.hypot(*v2))
    rows, cols = [], []
    for step in (v1, v2, *links):
        dist, idx = tree.query(positions + step, distance_upper_bound=tol)
        ok = np.isfinite(dist)
        rows.append(np.flatnonzero(ok))
        cols.append(idx[ok])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n)).tocsr()
    _, component = connected_components(graph, directed=False)
    inverse = _dual(v1, v2)
    ij = np.zeros((n, 2), dtype=np.int64)
    sizes = np.bincount(component)
    for comp in np.flatnonzero(sizes > 1):
        first = int(np.flatnonzero(component == comp)[0])
        order, pred = breadth_first_order(graph, first, directed=False, return_predecessors=True)
        child = order[1:]
        steps = np.rint((positions[child] - positions[pred[child]]) @ inverse.T).astype(np.int64)[:, ::-1]
        step_of = dict(zip(child.tolist(), steps))
        for node in child.tolist():
            ij[node] = ij[pred[node]] + step_of[node]
    return ij, component


def _fit_lattice(a_pos: np.ndarray, v1: np.ndarray, v2: np.ndarray, image_shape) -> Lattice:
    """Least-squares A lattice over the largest connected patch of A columns.

    The origin sits on (the fitted site of) the A column of that patch nearest pixel (0, 0).
    """
    ij, component = _walk_indices(a_pos, v1, v2)
    ok = component == np.argmax(np.bincount(component))
    if ok.sum() < 4:
        raise ValueError("too few connected A columns (need at least 4) to fit the lattice")
    fitted = fit_lattice(a_pos[ok], ij[ok])
    if abs(np.linalg.det(np.stack([fitted.v1, fitted.v2]))) < 1e-9:
        raise ValueError("the A columns lie on a line; cannot fit a 2D lattice")
    first = np.flatnonzero(ok)[np.argmin(np.hypot(*a_pos[ok].T))]
    return Lattice(origin=fitted.to_image(ij[first]), v1=fitted.v1, v2=fitted.v2)


def _lattice_vectors_from_positions(a_pos: np.ndarray):
    """Two lattice vectors (v1, v2) estimated from the neighbour vectors of the A columns."""
    if len(a_pos) < 4:
        raise ValueError(f"need at least 4 A columns to know the lattice, got {len(a_pos)}")
    k = min(5, len(a_pos))
    _, idx = cKDTree(a_pos).query(a_pos, k=k)
    vec = (a_pos[idx[:, 1:]] - a_pos[:, None, :]).reshape(-1, 2)
    flip = (vec[:, 1] < 0) | ((vec[:, 1] == 0) & (vec[:, 0] < 0))
    vec[flip] *= -1
    length = np.hypot(*vec.T)
    d0 = np.median(length[:: k - 1])
    vec = vec[(length > 0) & (length < 1.6 * d0)]
    found = []
    for _ in range(2):
        if len(vec) == 0:
            break
        tree = cKDTree(vec)
        support = tree.query_ball_point(vec, 0.2 * d0, return_length=True)
        best = tree.query_ball_point(vec[np.argmax(support)], 0.2 * d0)
        v = vec[best].mean(axis=0)
        found.append(v)
        sines = np.abs(vec[:, 0] * v[1] - vec[:, 1] * v[0]) / (np.hypot(*vec.T) * np.hypot(*v))
        vec = vec[sines > 0.3]
    if len(found) < 2:
        raise ValueError("the A columns do not form a 2D lattice (all neighbours lie along one direction)")
    a1, a2 = _fftlattice._gauss_reduce(*found)
    return _fftlattice.orient_basis(np.stack([a1, a2]))


def _combined_basis(v1, v2, half):
    """Reduced basis of the lattice of all columns (A plus B at fractional offset ``half``)."""
    if half[0] and half[1]:
        pair = (0.5 * (v1 + v2), v1)
    elif half[0]:
        pair = (0.5 * v1, v2)
    else:
        pair = (v1, 0.5 * v2)
    return _fftlattice._gauss_reduce(*pair)


def _classify_parity(positions, brightness, v1, v2, c1, c2, *, b_brighter: bool):
    """A/B label per column from its place on the lattice of all columns: 1 = A, 0 = B, -1 = isolated.

    Columns are indexed by walking the all-column lattice (``c1``, ``c2``); the index parity tells the
    two sublattices apart, whatever the local contrast.  In each connected patch the brighter parity
    class (mean brightness) is A, or B when ``b_brighter``.
    """
    ij, component = _walk_indices(positions, c1, c2, links=(v1, v2))
    frac = ij[:, 1:2] * (c1 @ _dual(v1, v2).T) + ij[:, 0:1] * (c2 @ _dual(v1, v2).T)
    parity = np.abs(frac - np.rint(frac)).max(axis=1) < 0.25
    label = np.full(len(positions), -1)
    sizes = np.bincount(component)
    for comp in np.flatnonzero(sizes >= 3):
        members = component == comp
        even, odd = members & parity, members & ~parity
        if not even.any() or not odd.any():
            continue
        even_brighter = brightness[even].mean() >= brightness[odd].mean()
        a_class = even if even_brighter != b_brighter else odd
        label[members] = 0
        label[a_class] = 1
    return label, ij, component


def _fill_gaps(positions, is_a, ij, component, c1, c2, v1, v2, shape, margin):
    """Predicted positions of lattice sites with no column yet, next to at least 2 found columns.

    Returns the predicted (M, 2) yx px, their A/B flags (M,) bool, grid indices (M, 2) and patch labels
    (M,), for sites inside the image by ``margin`` px.
    """
    steps = [(c1, np.array([0, 1])), (-c1, np.array([0, -1])), (c2, np.array([1, 0])), (-c2, np.array([-1, 0]))]
    big = 1 << 20

    def key(comp, idx):
        return (comp.astype(np.int64) * big + (idx[:, 0] + big // 2)) * big + (idx[:, 1] + big // 2)

    have = key(component, ij)
    pred_pos = np.concatenate([positions + vec for vec, _ in steps])
    pred_ij = np.concatenate([ij + d for _, d in steps])
    pred_comp = np.tile(component, len(steps))
    dual = _dual(v1, v2)
    flips = []
    for vec, _ in steps:
        f = vec @ dual.T
        flips.append(np.abs(f - np.rint(f)).max() > 0.25)
    pred_a = np.concatenate([is_a ^ flip for flip in flips])
    keys = key(pred_comp, pred_ij)
    new = ~np.isin(keys, have)
    if not new.any():
        return np.empty((0, 2)), np.empty(0, dtype=bool), np.empty((0, 2), dtype=np.int64), np.empty(0, np.int64)
    uniq, inverse, counts = np.unique(keys[new], return_inverse=True, return_counts=True)
    sums = np.zeros((len(uniq), 2))
    np.add.at(sums, inverse, pred_pos[new])
    centres = sums / counts[:, None]
    site_is_a = np.zeros(len(uniq), dtype=bool)
    site_is_a[inverse] = pred_a[new]
    site_ij = np.zeros((len(uniq), 2), dtype=np.int64)
    site_ij[inverse] = pred_ij[new]
    site_comp = np.zeros(len(uniq), dtype=np.int64)
    site_comp[inverse] = pred_comp[new]
    ny, nx = shape
    ok = (counts >= 2) & (centres[:, 0] >= margin) & (centres[:, 0] <= ny - 1 - margin)
    ok &= (centres[:, 1] >= margin) & (centres[:, 1] <= nx - 1 - margin)
    return centres[ok], site_is_a[ok], site_ij[ok], site_comp[ok]


def _plausible_fill(trial: Refined, predicted, trial_a, found_ref, radius, d_nn) -> np.ndarray:
    """Which trial fits at empty lattice sites look like real columns.

    A fill is kept when its fit reaches R^2 >= ``_FILL_QUALITY``, stays within 0.35 of the
    nearest-neighbour distance of the predicted site, has a positive amplitude and a width between
    0.4x and 2x the median width of the found columns of its sublattice (and below the fit radius).
    """
    ref, ref_a = found_ref
    ok = (trial.quality >= _FILL_QUALITY) & (np.hypot(*(trial.positions - predicted).T) < 0.35 * d_nn)
    ok &= (trial.intensity > 0) & (trial.width < 0.9 * radius)
    for flag in (True, False):
        widths = ref.width[ref_a == flag]
        sel = trial_a == flag
        if widths.size:
            med = np.median(widths)
            ok[sel] &= (trial.width[sel] > 0.4 * med) & (trial.width[sel] < 2.0 * med)
    return ok


def _plausible_columns(refined: Refined, is_a: np.ndarray) -> np.ndarray:
    """Which refined columns look like atom columns rather than noise maxima or empty sites (vacancies).

    Compared with the median of their sublattice, a column is dropped when its Gaussian volume is below
    10 %, or below ``_FAINT`` with a fit R^2 under ``_FILL_QUALITY``, or its width is outside 0.4x-2.5x.
    """
    good = np.ones(len(is_a), dtype=bool)
    for flag in (True, False):
        sel = is_a == flag
        if not sel.any():
            continue
        volume = refined.intensity / np.median(refined.intensity[sel])
        width = refined.width / np.median(refined.width[sel])
        bad = (volume < 0.1) | ((volume < _FAINT) & (refined.quality < _FILL_QUALITY))
        bad |= (width < 0.4) | (width > 2.5)
        good[sel & bad] = False
    return good


class _Grid(NamedTuple):
    """Lattice geometry shared by the gap-filling steps of :func:`find_columns` (vectors and lengths in px)."""

    c1: np.ndarray  #: (2,) reduced basis vector of the lattice of all columns
    c2: np.ndarray  #: (2,) second one
    v1: np.ndarray  #: (2,) A lattice vector along j
    v2: np.ndarray  #: (2,) A lattice vector along i
    radius: float  #: fit radius
    d_nn: float  #: A-B nearest-neighbour distance


def _refine_split(image_a, image_b, positions, is_a, radius, cancel, *, sigma: bool = False) -> Refined:
    """Refine the A rows of ``positions`` on ``image_a`` and the B rows on ``image_b`` (position sigmas only
    when ``sigma``, else NaN)."""
    if image_a is image_b:
        return _refine(image_a, positions, radius, intensity="gaussian", move=True, progress=None, cancel=cancel,
                       done0=0, total=1, sigma=sigma)
    out = [np.empty((len(positions), 2))] + [np.empty(len(positions)) for _ in range(4)]
    for image, rows in ((image_a, is_a), (image_b, ~is_a)):
        if rows.any():
            part = _refine(image, positions[rows], radius, intensity="gaussian", move=True, progress=None,
                           cancel=cancel, done0=0, total=1, sigma=sigma)
            for arr, new in zip(out, part):
                arr[rows] = new
    return Refined(*out)


def _fill_sites(image_a, image_b, positions, refined, is_a, ij, component, grid: _Grid, cancel, *,
                sigma: bool = False):
    """Grow the columns into empty lattice sites next to found ones (up to ``_FILL_PASSES`` rounds).

    A sites are fitted on ``image_a``, B sites on ``image_b`` and kept when :func:`_plausible_fill` accepts
    them (with position sigmas when ``sigma``).  Returns the extended ``positions`` (starting points),
    ``refined``, ``is_a``, ``ij``, ``component``.
    """
    found_ref = (refined, is_a.copy())
    for _ in range(_FILL_PASSES):
        gaps, gap_a, gap_ij, gap_comp = _fill_gaps(positions, is_a, ij, component, grid.c1, grid.c2, grid.v1,
                                                   grid.v2, image_a.shape, grid.radius)
        if len(gaps) == 0:
            break
        trial = _refine_split(image_a, image_b, gaps, gap_a, grid.radius, cancel, sigma=sigma)
        ok = _plausible_fill(trial, gaps, gap_a, found_ref, grid.radius, grid.d_nn)
        if not ok.any():
            break
        positions = np.concatenate([positions, gaps[ok]])
        refined = Refined(*(np.concatenate([old, np.asarray(new)[ok]]) for old, new in zip(refined, trial)))
        is_a = np.concatenate([is_a, gap_a[ok]])
        ij = np.concatenate([ij, gap_ij[ok]])
        component = np.concatenate([component, gap_comp[ok]])
    return positions, refined, is_a, ij, component


def _gaussian_model(shape, refined: Refined, rows) -> np.ndarray:
    """(H, W) sum of the fitted Gaussians (backgrounds left out) of the columns ``rows`` (bool mask).

    ``refined.intensity`` must hold Gaussian volumes; columns without a usable fit are left out.
    """
    width, volume, pos = refined.width[rows], refined.intensity[rows], refined.positions[rows]
    ok = np.isfinite(width) & np.isfinite(volume) & (volume > 0) & (width > 0)
    if not ok.any():
        return np.zeros(shape)
    # a noise fit that blew up (much wider or stronger than its sublattice) would carve a crater into its
    # neighbours: leave it out
    ok &= (width < _PEEL_OUTLIER * np.median(width[ok])) & (volume < _PEEL_OUTLIER**2 * np.median(volume[ok]))
    amp = volume[ok] / (2.0 * np.pi * width[ok] ** 2)
    reach = _PEEL_REACH * np.percentile(width[ok], 99)
    return _gaussfit.render_gaussians(shape, amp, pos[ok], width[ok], reach=reach)


def _refit(image, refined: Refined, rows, radius, cancel, *, sigma: bool = False) -> Refined:
    """``refined`` with the columns ``rows`` (bool mask) refitted on ``image``, starting from their current fit
    (their position sigmas computed when ``sigma``, else NaN)."""
    idx = np.flatnonzero(rows)
    out = [np.array(arr, copy=True) for arr in refined]
    for start in range(0, len(idx), _CHUNK):
        sel = idx[start : start + _CHUNK]
        centres = refined.positions[sel]
        values, yy, xx, mask = _gaussfit.extract_patches(image, centres, radius)
        p0 = _gaussfit.initial_guess(values, yy, xx, mask, centres, radius)
        width = refined.width[sel]
        p0[:, 3] = np.where(np.isfinite(width), np.clip(width, 0.5, radius / 1.5), p0[:, 3])
        params, r2 = _gaussfit.fit_gaussians(values, yy, xx, mask, p0, radius=radius)
        out[0][sel] = params[:, 1:3]
        out[1][sel] = params[:, 3]
        out[2][sel] = 2.0 * np.pi * params[:, 0] * params[:, 3] ** 2
        out[3][sel] = r2
        out[4][sel] = _gaussfit.position_sigma(values, yy, xx, mask, params) if sigma else np.nan
        report(None, 0, 1, cancel)
    return Refined(*out)


def _peel(image, refined: Refined, is_a, radius, cancel):
    """Refit each sublattice on the image minus the fitted Gaussians of the other one.

    The B columns sit in the tails of their bright A neighbours, which bias a Gaussian + constant fit of a B
    column towards the A columns.  The Gaussians of all A columns are subtracted and the B columns refitted;
    then (``_PEEL_ROUNDS`` times) the A columns are refitted on the image minus the new B Gaussians and the B
    columns once more on the image minus the new A Gaussians.  Each refit starts from the previous fit.

    Returns
    -------
    refined : Refined
        The refitted columns (Gaussian volumes as intensities) with the position sigmas of the final fits.
    image_a, image_b : (H, W) arrays
        The image without the B Gaussians (for A fits) and without the A Gaussians (for B fits).
    """
    image_a = image
    image_b = _minus_model(image, refined, is_a)
    refined = _refit(image_b, refined, ~is_a, radius, cancel)
    for k in range(_PEEL_ROUNDS):
        last = k == _PEEL_ROUNDS - 1
        image_a = None  # the previous residual goes before the next is drawn: one full image less at the peak
        image_a = _minus_model(image, refined, ~is_a)
        refined = _refit(image_a, refined, is_a, radius, cancel, sigma=last)
        image_b = None
        image_b = _minus_model(image, refined, is_a)
        refined = _refit(image_b, refined, ~is_a, radius, cancel, sigma=last)
    return refined, image_a, image_b


def _noise_model(signal: np.ndarray, residual: np.ndarray, dof_scale: float) -> tuple[float, float]:
    """Pixel noise ``variance = gain * signal + read`` fitted (least squares) to squared fit residuals.

    ``signal`` and ``residual`` are flat arrays of the model value and residual of the fitted pixels;
    ``dof_scale`` (>= 1) undoes the shrinking of residuals by the fit.  The gain is clipped at 0 and the
    read variance at a millionth of the mean residual variance.
    """
    r2 = residual**2 * dof_scale
    design = np.column_stack([signal, np.ones_like(signal)])
    gain, read = np.linalg.lstsq(design, r2, rcond=None)[0]
    floor = 1e-6 * float(r2.mean()) + 1e-300
    if gain < 0:
        gain, read = 0.0, float(r2.mean())
    if read < floor:
        gain = max(float(np.dot(signal, r2) / max(np.dot(signal, signal), 1e-300)), 0.0)
        read = floor
    return float(gain), float(read)


def _profile_reach(profile, level: float = 0.01) -> float:
    """Distance in px beyond which every column profile stays below ``level`` of its peak."""
    r = np.linspace(0.0, 100.0, 2001)
    reach = 0.0
    for label in ("A", "B"):
        core, ratio, tail = profile.of(label)
        shape = (np.exp(-(r**2) / (2 * core**2)) + ratio * np.exp(-(r**2) / (2 * tail**2))) / (1.0 + ratio)
        reach = max(reach, float(r[np.flatnonzero(shape >= level)[-1]]))
    return reach


def _ghost_sites(positions, is_a, grid: _Grid, shape, reach: float):
    """Lattice sites without a column within ``reach`` px outside the found ones (beyond the image border, or in
    the border band where columns are not fitted): (M, 2) yx px and their A flags (M,).

    Grown layer by layer from the found columns along the 4 steps of the all-column lattice (a step that is
    half an A cell swaps A and B), as many layers as ``reach`` needs.
    """
    d_nn = min(np.hypot(*grid.c1), np.hypot(*grid.c2))
    dual = _dual(grid.v1, grid.v2)
    have, have_a = np.asarray(positions, float), np.asarray(is_a, bool)
    ghosts, ghost_a = [np.empty((0, 2))], [np.empty(0, bool)]
    front, front_a = have, have_a
    ny, nx = shape
    for _ in range(int(np.ceil(reach / d_nn)) + 1):
        steps = []
        for vec in (grid.c1, -grid.c1, grid.c2, -grid.c2):
            f = vec @ dual.T
            steps.append((front + vec, front_a ^ (np.abs(f - np.rint(f)).max() > 0.25)))
        cand = np.concatenate([p for p, _ in steps])
        cand_a = np.concatenate([a for _, a in steps])
        known = np.concatenate([have] + ghosts)
        far = cKDTree(known).query(cand)[0] > 0.35 * d_nn
        outside = (cand[:, 0] > -reach) & (cand[:, 0] < ny - 1 + reach) & (cand[:, 1] > -reach)
        outside &= cand[:, 1] < nx - 1 + reach
        cand, cand_a = cand[far & outside], cand_a[far & outside]
        if not len(cand):
            break
        keep = _suppress_duplicates(cand, np.zeros(len(cand)), 0.35 * d_nn)
        front, front_a = cand[keep], cand_a[keep]
        ghosts.append(front)
        ghost_a.append(front_a)
    return np.concatenate(ghosts), np.concatenate(ghost_a)


def _profile_refine(image, refined: Refined, sublattice, radius, cancel, *, profile=None,
                    rounds: int = 2, scan_sigma=None, max_shift: float = _PROFILE_MAX_SHIFT, ghosts=None):
    """Neighbour-aware refinement: each column fitted with its neighbours' modelled contributions removed.

    The column profile (Gaussian core + tail per sublattice, :func:`~napari_causal_lattice.profile.
    estimate_profile`) is estimated from the image unless given.  Each round renders the model image of all
    columns (cores and tails) at their current fit, and refits every column on the image minus that model plus
    its own core: a Gaussian of the profile's core sigma (fixed) with free amplitude, centre and local
    background, so a column's position no longer follows its neighbours' intensities (all columns are
    updated together, as in a Jacobi sweep of a joint model fit).  From the second round on, pixels are
    weighted by the inverse of the noise model fitted to the first round's residuals, which brings the
    precision to the Cramer-Rao bound for counting noise.  The final position sigmas are the weighted fit's
    sandwich covariance per axis (residual chi^2 relative to the noise model, i.e. misfit included), with
    ``scan_sigma`` (px per axis, y and x) added in quadrature.  A column the profile fit moves
    farther than ``max_shift`` times ``radius`` from its Gaussian fit, or whose sigma it makes more than
    ``_PROFILE_MAX_SIGMA_GAIN`` times the Gaussian fit's (the model does not describe it: at the image border
    where its neighbours are not modelled, a faint column where the neighbours' model takes its signal), keeps
    its Gaussian fit (position, sigma, volume).  ``ghosts`` (positions (M, 2) px, labels (M,)) are lattice sites
    without a fitted column near the found ones (beyond the image border, in the border band, beyond a specimen
    edge): they enter the model image, so the columns next to them see all their neighbours modelled.  A ghost
    the image shows (its fit disk at least ``_GHOST_MIN_SHARE`` inside) gets its own amplitude
    (:func:`_ghost_amplitudes`, fitted before the first round and after each), the others their sublattice's
    median.  A column within 1.2 nearest-neighbour distances (``2.4 radius``) of a ghost that is not a fitted
    empty site (below ``_GHOST_EMPTY`` of the median) keeps its Gaussian fit, as that neighbour is only guessed.
    (Measured on non-polar synthetics with a vacuum margin: modelling the empty sites beyond the crystal edge
    at the median amplitude moved the outer ring of columns 0.15-0.21 px inwards, their Gaussian fits 0.11-0.14
    px; with the fitted amplitudes 0.01-0.02 px.)

    Returns
    -------
    refined : Refined
        Positions, intensities (core volumes ``2 pi amp core^2``) and sigmas of the profile fit; widths and
        qualities (R^2) stay those of the Gaussian fits in ``refined``.
    profile : ColumnProfile
        The profile with the fitted noise model and mean local background.
    """
    sub = np.asarray(sublattice).astype(str)
    if profile is None:
        profile = estimate_profile(image, positions=refined.positions, sublattice=sub, width=refined.width)
    core, ratio, _ = profile.shape_arrays(sub)
    n = len(sub)
    pos = refined.positions.copy()
    peak = refined.intensity / (2.0 * np.pi * np.where(np.isfinite(refined.width), refined.width, core) ** 2)
    amp = np.where(np.isfinite(peak) & (peak > 0), peak / (1.0 + ratio), 0.0)
    bg = np.full(n, profile.background)
    spread = np.full((n, 2), np.nan)
    free = (True, True, True, _PROFILE_FREE_WIDTH, True)
    noise = None
    ghost_pos, ghost_sub = (np.empty((0, 2)), np.empty(0, "<U1")) if ghosts is None else ghosts
    keep = np.isin(ghost_sub, np.unique(sub))
    ghost_pos, ghost_sub = ghost_pos[keep], ghost_sub[keep]
    ghost_fit = np.full(len(ghost_pos), np.nan)  # fitted amplitudes of the ghosts the image shows
    if len(ghost_pos):  # before the first round, so no round starts from a model with guessed empty sites
        columns_only = profile.render(image.shape, pos, sub, profile.volume(amp, sub), background=False)
        ghost_fit = _ghost_amplitudes(np.subtract(image, columns_only, out=columns_only), ghost_pos,
                                      np.zeros(len(ghost_pos)), profile.shape_arrays(ghost_sub)[0], radius)
    for k in range(rounds):
        last = k == rounds - 1
        ghost_amp = np.array([np.median(amp[sub == label]) for label in ghost_sub])
        ghost_amp = np.where(np.isfinite(ghost_fit), ghost_fit, ghost_amp)
        model = profile.render(image.shape, np.concatenate([pos, ghost_pos]), np.concatenate([sub, ghost_sub]),
                               profile.volume(np.concatenate([amp, ghost_amp]), np.concatenate([sub, ghost_sub])),
                               background=False)
        residual = np.subtract(image, model)
        signals, residuals, dof_scale = [], [], []
        start_state = (pos.copy(), amp.copy(), bg.copy())
        for start in range(0, n, _CHUNK):
            sel = slice(start, min(start + _CHUNK, n))
            values, yy, xx, mask, signal, weights = _profile_patches(residual, model, start_state, core, sel, radius,
                                                                     noise)
            p0 = np.column_stack([amp[sel], pos[sel], core[sel], bg[sel]])
            params = _gaussfit.fit_gaussians(values, yy, xx, mask, p0, radius=radius, free=free, weights=weights)[0]
            if last:
                spread[sel] = _gaussfit.position_sigma(values, yy, xx, mask, params, weights=weights, free=free,
                                                       axes=True)
            elif noise is None:
                fitted = params[:, 4:5] + params[:, :1] * np.exp(
                    -((yy - params[:, 1:2]) ** 2 + (xx - params[:, 2:3]) ** 2) / (2.0 * params[:, 3:4] ** 2))
                signals.append((signal - bg[sel, None] + params[:, 4:5])[mask])
                residuals.append((values - fitted)[mask])
                dof_scale.append(mask.sum() / max(mask.sum() - 4.0 * mask.shape[0], 1.0))
            amp[sel], pos[sel], bg[sel] = params[:, 0], params[:, 1:3], params[:, 4]
            report(None, 0, 1, cancel)
        if noise is None and signals:
            noise = _noise_model(np.concatenate(signals), np.concatenate(residuals), float(np.mean(dof_scale)))
        if len(ghost_pos) and not last:
            ghost_fit = _ghost_amplitudes(residual, ghost_pos, ghost_amp, profile.shape_arrays(ghost_sub)[0], radius)
    volume = profile.volume(amp, sub)
    lost = ~(np.hypot(*(pos - refined.positions).T) <= max_shift * radius)
    lost |= _isotropic(spread) > _PROFILE_MAX_SIGMA_GAIN * _isotropic(refined.sigma)
    guessed = ~(ghost_fit < _GHOST_EMPTY * np.array([np.median(amp[sub == label]) for label in ghost_sub]))
    if guessed.any():  # next to a column that is only guessed (median amplitude beyond the border, or a site the
        # image shows a column at but the search did not find), the neighbour model is not known well enough
        lost |= cKDTree(ghost_pos[guessed]).query(pos)[0] < 2.4 * radius
    pos[lost], volume[lost] = refined.positions[lost], refined.intensity[lost]
    spread[lost] = _per_axis(refined.sigma)[lost]
    if noise is not None:
        profile = replace(profile, noise_gain=noise[0], read_variance=noise[1],
                          background=float(np.median(bg[np.isfinite(bg)])) if np.isfinite(bg).any() else 0.0)
    # quality stays the Gaussian fit's R^2 (how column-like the patch looks); the profile fit's R^2 on the
    # neighbour-subtracted patch would measure something else
    out = Refined(pos, refined.width.copy(), volume, refined.quality.copy(), spread)
    return _add_scan_sigma(out, scan_sigma), profile


def _ghost_amplitudes(residual, ghost_pos, ghost_amp, core, radius, *, min_share: float = _GHOST_MIN_SHARE):
    """Core peak amplitudes (M,) of the ghost sites the image shows, NaN for the others.

    A ghost whose fit disk lies at least ``min_share`` inside the image is fitted like a column (its own core
    added back to the residual image, amplitude and local background by linear least squares, centre and width
    fixed at the lattice site and the profile's core) and clipped at 0: a crystal that ends inside the image (a
    vacuum margin, a specimen edge) leaves its empty sites empty, and columns cut by the border get their own
    intensity instead of the median.  Sites farther out stay unknown (the caller's median).
    """
    values, yy, xx, mask = _gaussfit.extract_patches(residual, ghost_pos, radius)
    g = np.exp(-((yy - ghost_pos[:, :1]) ** 2 + (xx - ghost_pos[:, 1:]) ** 2) / (2.0 * core[:, None] ** 2))
    values = values + ghost_amp[:, None] * g
    w = mask.astype(float)
    s1, sg, sgg = w.sum(axis=1), (w * g).sum(axis=1), (w * g * g).sum(axis=1)
    sv, sgv = (w * values).sum(axis=1), (w * g * values).sum(axis=1)
    det = sgg * s1 - sg**2
    amp = (s1 * sgv - sg * sv) / np.where(det > 0, det, np.inf)
    full = np.pi * radius**2
    seen = (det > 0) & (s1 >= min_share * full)
    return np.where(seen, np.maximum(amp, 0.0), np.nan)


def _profile_patches(residual, model, state, core, sel, radius, noise):
    """Patches of the columns ``sel`` for the profile fit: the residual image plus the column's own core (at the
    round's start ``state = (pos, amp, bg)``), pixel coordinates, mask, model signal and noise weights (None
    without a noise model)."""
    pos, amp, bg = state
    values, yy, xx, mask = _gaussfit.extract_patches(residual, pos[sel], radius)
    values = values + amp[sel, None] * np.exp(-((yy - pos[sel, :1]) ** 2 + (xx - pos[sel, 1:]) ** 2)
                                              / (2.0 * core[sel, None] ** 2))
    signal = _gaussfit.extract_patches(model, pos[sel], radius)[0] + bg[sel, None]
    weights = None if noise is None else 1.0 / np.maximum(noise[0] * np.maximum(signal, 0) + noise[1], 1e-300)
    return values, yy, xx, mask, signal, weights


def _minus_model(image, refined: Refined, rows) -> np.ndarray:
    """``image`` minus the fitted Gaussians of the columns ``rows``, written over the model's own buffer."""
    model = _gaussian_model(image.shape, refined, rows)
    return np.subtract(image, model, out=model)


def _disk_sum(image, positions, radius) -> np.ndarray:
    """(N,) raw sum of the pixels within ``radius`` px of each position."""
    values, _, _, mask = _gaussfit.extract_patches(image, np.asarray(positions, float).reshape(-1, 2), radius)
    return np.where(mask, values, 0.0).sum(axis=1)


def _default_radius(positions: np.ndarray) -> float:
    if len(positions) < 2:
        raise ValueError("need at least 2 columns to choose a fit radius; pass radius= (px) explicitly")
    dist, _ = cKDTree(positions).query(positions, k=2)
    nn = float(np.median(dist[:, 1]))
    if nn <= 0:
        raise ValueError("columns sit on top of each other; remove duplicate points")
    return 0.5 * nn


def _refine(image, positions, radius, *, intensity, move, progress, cancel, done0, total,
            sigma: bool = False) -> Refined:
    """Centre of mass and batched Gaussian fits of ``positions`` (N, 2) px; position sigmas (px) only when
    ``sigma`` and ``move``, else NaN (they cost a covariance per column, needed only for the final fit)."""
    n = len(positions)
    out_pos = np.array(positions, dtype=float).reshape(-1, 2)
    width = np.full(n, np.nan)
    inten = np.full(n, np.nan)
    quality = np.zeros(n)
    spread = np.full(n, np.nan)
    free = (True, move, move, True, True)
    for k, start in enumerate(range(0, n, _CHUNK)):
        sl = slice(start, min(start + _CHUNK, n))
        centres = out_pos[sl]
        if move:
            centres = _gaussfit.centre_of_mass(image, centres, 0.6 * radius)
        values, yy, xx, mask = _gaussfit.extract_patches(image, centres, radius)
        p0 = _gaussfit.initial_guess(values, yy, xx, mask, centres, radius)
        params, r2 = _gaussfit.fit_gaussians(values, yy, xx, mask, p0, radius=radius, free=free)
        out_pos[sl] = params[:, 1:3]
        width[sl] = params[:, 3]
        quality[sl] = r2
        inten[sl] = 2.0 * np.pi * params[:, 0] * params[:, 3] ** 2
        if move and sigma:
            spread[sl] = _gaussfit.position_sigma(values, yy, xx, mask, params)
        if intensity == "disk":
            inten[sl] = _disk_sum(image, out_pos[sl], radius)
        report(progress, done0 + k + 1, total, cancel)
    return Refined(out_pos, width, inten, quality, spread)


def refine_columns(
    image,
    positions,
    *,
    radius: float | None = None,
    intensity: str = "gaussian",
    move: bool = True,
    peel=None,
    neighbours: bool = True,
    sublattice=None,
    scan_sigma=None,
    progress=None,
    cancel=None,
) -> Refined:
    """Refine column positions to sub-pixel precision with batched 2D Gaussian fits.

    Each column is fitted on a disk of ``radius`` px around it (centre of mass first, then an
    isotropic Gaussian plus constant background, all columns solved together by batched
    Levenberg-Marquardt).  To refine faint B columns next to bright A columns, pass the A positions
    as ``peel``: the A columns are fitted first and their Gaussians subtracted from the image, so their
    tails no longer pull the B fits towards them.

    Parameters
    ----------
    image : (H, W) array
        The STEM image.
    positions : (N, 2) array
        Starting positions (y, x) in px.
    radius : float, optional
        Fit-patch radius in px; default half the median nearest-neighbour distance of ``positions``.
    intensity : {"gaussian", "disk"}
        Column intensity: fitted Gaussian volume ``2 pi amp sigma^2`` (background removed), or the
        raw sum of the pixels within ``radius``.
    move : bool
        False keeps the positions fixed and fits only amplitude, width and background.
    peel : (M, 2) array, optional
        Positions (y, x) in px of neighbouring columns (typically the A columns when ``positions`` are
        B columns) whose fitted Gaussians are subtracted from the image before refining ``positions``.
        Fitted with the same ``radius``; they are not returned.
    neighbours : bool
        Neighbour-aware final fit (default, with ``move``): the column profile is estimated from the image and
        every column (and every ``peel`` column) refitted with its neighbours' modelled contributions
        removed, as in :func:`find_columns`; intensities are then the profile cores' volumes (``"gaussian"``).
        Needs at least 16 columns (with ``peel``), else the Gaussian fits are returned.
    sublattice : (N,) str array, optional
        ``"A"``/``"B"`` labels of ``positions`` for the profile (one profile per sublattice).  Default: all
        ``"B"`` when ``peel`` is given (its columns are ``"A"``), else all ``"A"``.
    scan_sigma : float or (float, float), optional
        Scan noise in px along (y, x), added in quadrature to the sigmas (see :func:`find_columns`).
    progress, cancel
        See :mod:`napari_causal_lattice.progress`.

    Returns
    -------
    Refined
        ``positions`` (N, 2) px, ``width`` (N,) px, ``intensity`` (N,), ``quality`` (N,) R^2 in [0, 1],
        ``sigma`` (N,) 1-sigma position uncertainty per axis in px (see
        :func:`~napari_causal_lattice._gaussfit.position_sigma`; NaN with ``move=False``).
    """
    img = as_image(image)
    _check_intensity(intensity)
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 2 or not np.all(np.isfinite(pos)):
        raise ValueError(f"positions must be a finite (N, 2) array of (y, x) in px, got shape {pos.shape}")
    if radius is None:
        radius = _default_radius(pos)
    elif not np.isfinite(radius) or radius < 1:
        raise ValueError(f"radius must be at least 1 px, got {radius!r}")
    scan = _check_scan_sigma(scan_sigma)
    labels = _refine_labels(sublattice, len(pos), peel is not None)
    total = max(1, -(-len(pos) // _CHUNK))
    joint = neighbours and move and len(pos) + (0 if peel is None else len(peel)) >= _PROFILE_MIN_COLUMNS
    if peel is not None:
        others = np.asarray(peel, dtype=float)
        if others.ndim != 2 or others.shape[1] != 2 or not np.all(np.isfinite(others)):
            raise ValueError(f"peel must be a finite (M, 2) array of (y, x) in px, got shape {others.shape}")
        total += max(1, -(-len(others) // _CHUNK))
        fitted = _refine(img, others, float(radius), intensity="gaussian", move=True, progress=progress,
                         cancel=cancel, done0=0, total=total)
        peeled = img - _gaussian_model(img.shape, fitted, np.ones(len(others), dtype=bool))
        out = _refine(peeled, pos, float(radius), intensity="gaussian", move=move, progress=progress, cancel=cancel,
                      done0=total - max(1, -(-len(pos) // _CHUNK)), total=total, sigma=True)
        if joint:
            both = Refined(*(np.concatenate([a, b]) for a, b in zip(out, fitted)))
            both = _profile_refine(img, both, np.concatenate([labels, np.full(len(others), "A")]), float(radius),
                                   cancel, scan_sigma=scan)[0]
            out = Refined(*(arr[: len(pos)] for arr in both))
        else:
            out = _add_scan_sigma(out, scan)
        if intensity == "disk":
            out = out._replace(intensity=_disk_sum(img, out.positions, radius))
        return out._replace(sigma=_isotropic(out.sigma))
    out = _refine(img, pos, float(radius), intensity="gaussian" if joint else intensity, move=move,
                  progress=progress, cancel=cancel, done0=0, total=total, sigma=True)
    if not joint:
        out = _add_scan_sigma(out, scan)
        return out._replace(sigma=_isotropic(out.sigma))
    out = _profile_refine(img, out, labels, float(radius), cancel, scan_sigma=scan)[0]
    if intensity == "disk":
        out = out._replace(intensity=_disk_sum(img, out.positions, radius))
    return out._replace(sigma=_isotropic(out.sigma))


def _refine_labels(sublattice, n: int, peeled: bool) -> np.ndarray:
    """(n,) "A"/"B" labels of the columns given to :func:`refine_columns`."""
    if sublattice is None:
        return np.full(n, "B" if peeled else "A")
    labels = np.asarray(sublattice).astype(str).reshape(-1)
    if labels.shape != (n,) or not np.all(np.isin(labels, ("A", "B"))):
        raise ValueError(f"sublattice must hold {n} labels 'A' or 'B', one per position")
    return labels


def _check_scan_sigma(scan_sigma):
    """``scan_sigma`` as a (2,) array of px (y, x), or None."""
    if scan_sigma is None:
        return None
    try:
        value = np.broadcast_to(np.asarray(scan_sigma, dtype=float), (2,)).copy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scan_sigma must be a number or a (y, x) pair of px, got {scan_sigma!r}") from exc
    if not np.all(np.isfinite(value)) or np.any(value < 0):
        raise ValueError(f"scan_sigma must be >= 0 px, got {scan_sigma!r}")
    return value


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


def _check_projection(projection):
    if projection != "auto" and projection not in ("[001]", "[110]") and not isinstance(projection, Motif):
        raise ValueError(f"projection must be 'auto', '[001]' or '[110]', got {projection!r}")


def _estimate_basis(img, spacing_px, spacing):
    """Stage 1 of :func:`find_columns`: the lattice vectors (v1, v2) in px from the power spectrum."""
    if spacing_px is not None:
        cells = min(img.shape) / spacing_px
        if cells < 3:
            raise ValueError(
                f"the image spans only {cells:.1f} unit cells of {spacing} across; at least 3x3 cells are needed"
            )
        basis = _fftlattice.estimate_lattice(img, min_period=0.3 * spacing_px, max_period=1.6 * spacing_px)
    else:
        basis = _fftlattice.estimate_lattice(img)
    v1, v2 = _fftlattice.orient_basis(basis)
    n1, n2 = _cells_in_view(img.shape, v1, v2)
    if min(n1, n2) < 3:
        raise ValueError(
            f"the image spans only {n1:.1f} x {n2:.1f} unit cells (lattice spacing {np.hypot(*v1):.1f} x "
            f"{np.hypot(*v2):.1f} px); at least 3x3 cells are needed: use a larger field of view"
        )
    return v1, v2


def _site_candidates(img, v1, v2, radius, cancel):
    """Stage 2: candidate maxima (N, 2) px, their brightness and prominence (N,), fractional cell coordinates
    (N, 2) and the motif sites found among them.

    When only one site shows up (B columns without maxima of their own on the tails of wide A columns), the
    found columns are peeled and the others looked for on the residual image.
    """
    d_min = min(np.hypot(*v1), np.hypot(*v2))
    cand, bright, prominence = _candidates(ndimage.gaussian_filter(img, max(0.5, 0.05 * d_min)), d_min)
    gs = _dual(v1, v2)
    frac = _fftlattice.local_phases(img, gs, cand)
    n_cells = img.size / abs(np.linalg.det(np.column_stack([v1, v2])))
    sites = _find_sites(frac, n_cells)
    if len(sites) == 1:
        members = np.abs(_torus_diff(frac, sites[0])).max(axis=1) < 0.18
        fitted = _refine(img, cand[members], radius if radius is not None else 0.25 * d_min, intensity="gaussian",
                         move=True, progress=None, cancel=cancel, done0=0, total=1)
        residual = _minus_model(img, fitted, np.ones(members.sum(), dtype=bool))
        more, more_bright, more_prominence = _candidates(
            ndimage.gaussian_filter(residual, max(0.5, 0.05 * d_min)), d_min)
        more_frac = np.concatenate([frac, _fftlattice.local_phases(img, gs, more)])
        peeled_sites = _find_sites(more_frac, n_cells)
        if len(peeled_sites) >= 2 and _half_offset(peeled_sites[0], peeled_sites[1]) is not None:
            cand = np.concatenate([cand, more])
            bright = np.concatenate([bright, more_bright])
            prominence = np.concatenate([prominence, more_prominence])
            frac, sites = more_frac, peeled_sites
    return cand, bright, prominence, frac, sites


def _decide_motif(sites, v1, v2, projection) -> tuple[np.ndarray, Motif]:
    """Stage 3: the B-site offset (fractions of v1, v2) and the motif, checked against ``projection``."""
    if len(sites) < 2:
        raise ValueError(
            "found only one kind of atom column on the lattice, so A and B cannot be told apart: the B columns "
            "may be too faint (or as bright as A). Try a less noisy image, or set the spacing to the A-A "
            "distance explicitly."
        )
    half = _half_offset(sites[0], sites[1])
    if half is None:
        raise ValueError(unsupported_offset_message(_torus_diff(sites[1], sites[0]), v1, v2))
    motif = motif_from_offset(half, v1, v2)
    if projection != "auto" and get_motif(projection, Lattice((0, 0), v1, v2)) != motif:
        wanted = get_motif(projection, Lattice((0, 0), v1, v2))
        raise ValueError(
            f"projection {wanted.name} was requested, but the B columns sit at {half.tolist()} of the A cell "
            f"(fractions of v1, v2), as in {motif.name} ({motif.description}); use projection='auto' or "
            f"'{motif.name}', or check the image"
        )
    return half, motif


def _select_columns(cand, bright, prominence, frac, sites, shape, v1, v2, c1, c2, radius, d_nn, b_brighter):
    """Stage 4: candidates on the two sites, inside the image, deduplicated and labelled A/B.

    Returns positions (N, 2) px, is_a (N,) bool, grid indices ij (N, 2) and patch labels (N,).
    """
    on_site = np.zeros(len(cand), dtype=bool)
    for site in sites:
        members = np.abs(_torus_diff(frac, site)).max(axis=1) < 0.18
        on_site |= members & (prominence >= 0.3 * np.median(prominence[members]))
    ny, nx = shape
    inside = (cand[:, 0] >= radius) & (cand[:, 0] <= ny - 1 - radius)
    inside &= (cand[:, 1] >= radius) & (cand[:, 1] <= nx - 1 - radius)
    sel = np.flatnonzero(on_site & inside)
    sel = sel[_suppress_duplicates(cand[sel], bright[sel], 0.5 * d_nn)]
    positions = cand[sel]
    label, ij, component = _classify_parity(positions, bright[sel], v1, v2, c1, c2, b_brighter=b_brighter)
    keep = label >= 0
    positions, is_a, ij, component = positions[keep], label[keep] == 1, ij[keep], component[keep]
    if not is_a.any() or is_a.all():
        raise ValueError(
            "could not tell the A and B columns apart (no connected patch holds both); try a less noisy image "
            "or give the A-A spacing explicitly"
        )
    return positions, is_a, ij, component


def _fit_columns(img, positions, is_a, ij, component, grid: _Grid, progress, cancel, steps):
    """Stage 5: refine, fill empty sites, peel, fill again, drop implausible fits.

    Returns the refined columns (Gaussian volumes as intensities) and their is_a flags, A rows first.
    """
    total = steps + max(1, -(-len(positions) // _CHUNK))
    refined = _refine(img, positions, grid.radius, intensity="gaussian", move=True, progress=progress,
                      cancel=cancel, done0=steps - 1, total=total)
    positions, refined, is_a, ij, component = _fill_sites(img, img, positions, refined, is_a, ij, component, grid,
                                                          cancel)
    refined, for_a, for_b = _peel(img, refined, is_a, grid.radius, cancel)
    refined, is_a = _fill_sites(for_a, for_b, positions, refined, is_a, ij, component, grid, cancel,
                                sigma=True)[1:3]
    report(progress, total, total, cancel)
    good = _plausible_columns(refined, is_a)
    order = np.argsort(~is_a[good], kind="stable")
    return Refined(*(np.asarray(arr)[good][order] for arr in refined)), is_a[good][order]


def _neighbour_stage(img, refined: Refined, is_a, grid: _Grid, cancel, *, neighbours: bool, scan_sigma):
    """Stage 7 (``neighbours``): estimate the column profile and refit every column with its neighbours' modelled
    contributions removed (:func:`_profile_refine`); else keep the peeled Gaussian fits.  ``scan_sigma`` (px) is
    added to the sigmas either way.

    Returns the columns (profile-core volumes as intensities with ``neighbours``) and the profile (or None).
    """
    if not neighbours:
        return _add_scan_sigma(refined, scan_sigma), None
    sub = np.where(is_a, "A", "B")
    profile = estimate_profile(img, positions=refined.positions, sublattice=sub, width=refined.width)
    ghost_pos, ghost_a = _ghost_sites(refined.positions, is_a, grid, img.shape, _profile_reach(profile))
    return _profile_refine(img, refined, sub, grid.radius, cancel, profile=profile, scan_sigma=scan_sigma,
                           ghosts=(ghost_pos, np.where(ghost_a, "A", "B")))


def _add_scan_sigma(refined: Refined, scan_sigma) -> Refined:
    """``refined`` with the scan noise ``scan_sigma`` (px, y and x) added in quadrature to its sigmas per axis."""
    if scan_sigma is None:
        return refined
    extra = np.broadcast_to(np.asarray(scan_sigma, dtype=float), (2,))
    return refined._replace(sigma=np.sqrt(_per_axis(refined.sigma) ** 2 + extra**2))


def _per_axis(sigma) -> np.ndarray:
    """(N, 2) per-axis sigmas from (N,) isotropic or (N, 2) ones."""
    sigma = np.asarray(sigma, dtype=float)
    return np.repeat(sigma[:, None], 2, axis=1) if sigma.ndim == 1 else sigma


def _isotropic(sigma, line=0.0) -> np.ndarray:
    """(N,) isotropic sigmas (root mean of the axis variances, ``line`` (N,) px^2 added to x) of (N,) or (N, 2)."""
    var = _per_axis(sigma) ** 2
    return np.sqrt(0.5 * (var[:, 0] + var[:, 1] + line))


@takes_options(ColumnsOptions)
def find_columns(
    image,
    *,
    pixel_size: float | None = None,
    spacing: float | None = None,
    b_brighter: bool = False,
    intensity: str = "gaussian",
    radius: float | None = None,
    projection: str = "auto",
    plausible_spacing: tuple = PLAUSIBLE_SPACING_PM,
    neighbours: bool = True,
    scan_sigma=None,
    scan_correction: bool = True,
    faint_threshold: float = 3.0,
    contrast: str = "auto",
    progress=None,
    cancel=None,
) -> Columns:
    """Find, refine and classify the A and B atom columns of a perovskite STEM image.

    1. The lattice (spacing, orientation) comes from the Bragg peaks of the power spectrum; half-order
       peaks from the A/B contrast make it the A lattice (primitive cell).
    2. Candidate columns are the local maxima of the lightly smoothed image.
    3. Each candidate's fractional position in the *local* unit cell (geometric phase of the two
       Bragg reflections, so curved or strained lattices are followed) is clustered into motif
       sites; the brightest site is A (``b_brighter`` swaps), the next brightest B; candidates off
       both sites (noise, oxygen columns) are dropped.
    4. Columns are refined together (centre of mass, then batched 2D Gaussian fits).
    5. Peeling: the B columns sit in the Gaussian tails of their bright A neighbours, which pull a
       Gaussian + constant fit towards them.  The fitted Gaussians of all A columns are subtracted
       and the B columns refitted on that residual, then the A columns on the image without the B
       Gaussians, and the B columns once more.
    6. Scan distortion (:mod:`napari_causal_lattice.scan`): the line jitter (a shift along x per image row) is
       estimated from the fitted column model; with ``scan_correction``, when it is detected (rms above twice
       its per-line uncertainty), the rows are resampled to undo it and the columns refitted (step 5's last
       round) on the corrected image.  ``Columns.scan`` reports it.
    7. Neighbour-aware fit (``neighbours``): the column profile (core + tail per sublattice) is estimated and
       every column refitted with all its neighbours' modelled contributions removed (see ``neighbours``); what
       is left of the line jitter is kept per scan line (``Columns.line_variance``, shared by a row's columns).
    8. The A lattice is least-squares fitted through all A columns; every column gets a detectability (peak
       amplitude over the local pixel noise of the image minus the column model) and a ``faint`` flag below
       ``faint_threshold``.  When most B columns are faint, a :class:`FaintColumnsWarning` names the fixes.

    Empty lattice sites next to found columns (faint B columns beside bright A columns) are tried as
    well (before and after peeling; B sites on the peeled image) and kept when their Gaussian fit
    reaches R^2 >= 0.2.  When the B columns make no local maxima at all (wide A columns), step 3
    finds a single site; its columns are then fitted and peeled and the B candidates taken from the
    peeled image.  Columns closer than the fit radius to the image border are left out.
    ``provenance["params"]["b_site_offset"]`` records where the B site sits in the A cell, in fractions of
    ``(v1, v2)``; ``Columns.motif`` is the crystal projection it means.  Every column's position uncertainty
    comes from the covariance and residual of its final fit, per axis (``Columns.sigma_axes``, y and x), plus the
    line shift its row shares (``Columns.line_variance``); ``Columns.sigma`` is the isotropic total.
    With a pixel size, a lattice parameter outside ``plausible_spacing`` gives a warning that names the
    likely unit mistake.

    Projections (:mod:`napari_causal_lattice.motif`): [001] perovskites give B at (1/2, 1/2).  Cubic [110]
    (e.g. the SrTiO3 Atomap test image) gives a rectangular a x a/sqrt2 A cell with B at (1/2, 0),
    half-way along ``a``.  Other patterns (B half-way along a short edge, hexagonal [111], offsets other
    than half a cell) are refused with a ValueError that says what was detected.  Orthorhombic (Pnma)
    [110], e.g. the NSMO image, is pseudocubic [100]: a square cell with B at (1/2, 1/2) ("[001]"); its weak
    tilt superstructure peaks (< 2 % of the main Bragg power) are ignored, so the cell is the pseudocubic one.  The brighter
    parity class is called A everywhere in a connected patch, so at an interface where the contrast
    flips (SrRuO3 next to PbTiO3) the labels follow the geometry, not the local brightness.

    Parameters
    ----------
    image : (H, W) array
        HAADF/ADF image (RGB is converted to grey with a warning).
    pixel_size : float, optional
        pm per px; recorded on the result and sets the unit of ``spacing``.
    spacing : float, optional
        Approximate A-A lattice spacing in pm (px when ``pixel_size`` is None); restricts the lattice
        search to periods between 0.3x and 1.6x of it.  Default: found automatically.
    b_brighter : bool
        The B columns are brighter than the A columns.
    intensity : {"gaussian", "disk"}
        Column intensity measure, see :func:`refine_columns`.
    radius : float, optional
        Fit-patch radius in px; default half the A-B nearest-neighbour distance.
    projection : {"auto", "[001]", "[110]"}
        Crystal projection.  ``"auto"`` detects it from where the second kind of column sits; a given one must
        agree with the detection (else ValueError naming both).
    plausible_spacing : (float, float)
        Plausible range in pm of the shorter A-A spacing (warning outside it, only with ``pixel_size``).
    neighbours : bool
        Neighbour-aware final fit (default): the column profile (Gaussian core + tail per sublattice) is
        estimated from the image (``Columns.profile``) and every column refitted with its neighbours' modelled
        contributions removed, so positions do not depend on the neighbours' intensities; intensities are then
        the profile cores' volumes.  False keeps the peeled Gaussian fits.
    scan_sigma : float or (float, float), optional
        Scan noise: rms displacement of a column in px along (y, x) from scan distortion left in the image,
        independent between columns; added in quadrature to every column's ``sigma_axes``.  It replaces the
        estimated line jitter's part: by default (None) the shift left in each scan line after the jitter stage is
        kept as ``Columns.line_variance``, shared by the columns of a row (it cancels in x differences along a
        row and not across rows), and :func:`~napari_causal_lattice.cells.build_cells` propagates it.
    scan_correction : bool
        Correct the estimated line jitter before the final fit (default True).  False still estimates and
        reports it (``Columns.scan.applied`` is False).
    faint_threshold : float
        Detectability (peak over local background noise, dimensionless) below which a column is ``faint``.
    contrast : {"auto", "bright", "dark"}
        Column contrast.  ``"bright"``: columns are maxima (HAADF, ADF).  ``"dark"``: columns are minima
        (ABF, BF); the inverted image is analysed and ``provenance["params"]["note"]`` says so.  ``"auto"``
        (default) measures it (:func:`detect_contrast`) and refuses dark-column images with a ValueError that
        names the contrast and the ``contrast="dark"`` option.
    progress, cancel
        See :mod:`napari_causal_lattice.progress`.

    Returns
    -------
    Columns

    Raises
    ------
    ValueError
        No periodic lattice, fewer than 3x3 unit cells, only one kind of column, bad pixels, an unsupported
        projection or one that disagrees with ``projection``, or dark-column contrast with ``contrast="auto"``.

    Examples
    --------
    >>> from napari_causal_lattice.synthetic import synthetic_perovskite
    >>> sample = synthetic_perovskite(shape_cells=(6, 6))
    >>> cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    >>> len(cols.a), len(cols.b), cols.motif.name
    (49, 36, '[001]')
    """
    img = as_image(image)
    pixel_size = _check_pixel_size(pixel_size)
    _check_intensity(intensity)
    _check_projection(projection)
    spacing_px = _spacing_px(spacing, pixel_size)
    if radius is not None:
        radius = float(radius)
        if not np.isfinite(radius) or radius < 1:
            raise ValueError(f"radius must be at least 1 px, got {radius!r}")
    faint_threshold = float(faint_threshold)
    if not np.isfinite(faint_threshold) or faint_threshold < 0:
        raise ValueError(f"faint_threshold must be a non-negative number (peak over noise), got {faint_threshold!r}")
    steps = 4
    report(progress, 0, steps + 1, cancel)
    v1, v2 = _estimate_basis(img, spacing_px, spacing)
    img, note = _apply_contrast(img, contrast, v1, v2)
    if pixel_size is not None:
        check_calibration(min(np.hypot(*v1), np.hypot(*v2)) * pixel_size, plausible=plausible_spacing)
    report(progress, 1, steps + 1, cancel)
    cand, bright, prominence, frac, sites = _site_candidates(img, v1, v2, radius, cancel)
    report(progress, 2, steps + 1, cancel)
    half, motif = _decide_motif(sites, v1, v2, projection)
    sites = sites[:2]
    c1, c2 = _combined_basis(v1, v2, half)
    d_nn = min(np.hypot(*c1), np.hypot(*c2))
    radius = float(0.5 * d_nn) if radius is None else radius
    positions, is_a, ij, component = _select_columns(cand, bright, prominence, frac, sites, img.shape, v1, v2, c1,
                                                     c2, radius, d_nn, b_brighter)
    report(progress, 3, steps + 1, cancel)
    grid = _Grid(c1, c2, v1, v2, radius, d_nn)
    refined, is_a = _fit_columns(img, positions, is_a, ij, component, grid, progress, cancel, steps)
    img, refined, scan = _scan_stage(img, refined, is_a, grid, pixel_size, scan_correction, cancel)
    scan_sigma = _check_scan_sigma(scan_sigma)
    # the line shift left after the jitter stage is shared by the columns of a row (it cancels in x differences
    # along a row): it stays a covariance for the cells, unless a scan_sigma is given instead
    line_variance = scan.line_variance if scan_sigma is None else None
    gaussian = refined  # consistent Gaussian (volume, width) pairs: what the detectability is measured from
    refined, profile = _neighbour_stage(img, refined, is_a, grid, cancel, neighbours=neighbours,
                                        scan_sigma=scan_sigma)
    if intensity == "disk":
        refined = refined._replace(intensity=_disk_sum(img, refined.positions, radius))
    sublattice = np.where(is_a, "A", "B")
    lattice = _fit_lattice(refined.positions[is_a], v1, v2, img.shape)
    detectability = _detectability(img, gaussian, radius)
    faint = detectability < faint_threshold
    _warn_faint(faint, is_a, faint_threshold)
    params = {
        "pixel_size": pixel_size,
        "spacing": spacing,
        "b_brighter": bool(b_brighter),
        "intensity": intensity,
        "radius": radius,
        "b_site_offset": half.tolist(),
        "projection": projection if isinstance(projection, str) else projection.name,
        "neighbours": bool(neighbours),
        "scan_sigma": None if scan_sigma is None else np.broadcast_to(np.asarray(scan_sigma, float), (2,)).tolist(),
        "scan_correction": bool(scan_correction),
        "faint_threshold": faint_threshold,
        "contrast": contrast,
        "note": note,
    }
    columns = _make_columns(refined, sublattice, lattice, pixel_size, img.shape, "find_columns", params, motif,
                            profile=profile, line_variance=line_variance)
    return dataclasses.replace(columns, scan=scan, detectability=detectability, faint=faint)


class FaintColumnsWarning(UserWarning):
    """Most columns of a sublattice are barely above the noise: their positions are not measurable."""


class ContrastWarning(UserWarning):
    """The image's column contrast was inverted for the analysis."""


#: Estimated line jitter (px rms) below which the image is not resampled: it would move positions by far less
#: than their uncertainty (about 0.01-0.05 px on good scans).
_MIN_JITTER_PX = 0.005
#: The image is resampled only when the estimated jitter (rms) exceeds this many times its per-line uncertainty:
#: an undetected jitter is reported, not "corrected" with noise.
_JITTER_SIGNIFICANCE = 2.0

#: Line shifts with more than this share of their variance at the lattice's row frequencies are model misfit, not
#: scan jitter, and are not corrected (see _lattice_row_share).
_MAX_LATTICE_SHARE = 0.5

#: Contrast statistic (skewness of the high-passed image) below which columns are dark (see detect_contrast).
_DARK_SKEW = -0.1


def detect_contrast(image, *, cell_px: float | None = None) -> tuple[str, float]:
    """Whether the atom columns are bright (HAADF, ADF) or dark (ABF, BF) spots.

    Bright columns are narrow peaks on a broad, low background; dark columns are narrow dips on a bright
    one.  The image, high-passed at about one cell (``cell_px``, default 1/8 of the shorter side) and lightly
    smoothed, is skewed positive in the first case and negative in the second.

    Parameters
    ----------
    image : (H, W) array
    cell_px : float, optional
        Lattice spacing in px (sets the high-pass scale).

    Returns
    -------
    contrast : {"bright", "dark"}
    skewness : float
        The statistic (dimensionless); ``"dark"`` below -0.1.
    """
    img = as_image(image)
    scale = float(cell_px) if cell_px else min(img.shape) / 8.0
    step = max(1, int(scale // 10))  # a cell keeps >= 10 samples: columns stay resolved
    img, scale = img[::step, ::step], scale / step
    smooth = ndimage.gaussian_filter(img, max(0.5, 0.05 * scale))
    high = smooth - ndimage.uniform_filter(smooth, 2 * int(scale) + 1, mode="nearest")
    high = high - high.mean()
    sd = high.std()
    skew = float(np.mean(high**3) / sd**3) if sd > 0 else 0.0
    return ("dark" if skew < _DARK_SKEW else "bright"), skew


def _apply_contrast(img, contrast, v1, v2):
    """The image to analyse (inverted for dark columns) and a note for the provenance ("" when unchanged)."""
    if contrast not in ("auto", "bright", "dark"):
        raise ValueError(f"contrast must be 'auto', 'bright' (HAADF/ADF) or 'dark' (ABF/BF), got {contrast!r}")
    if contrast == "bright":
        return img, ""
    if contrast == "auto":
        found, skew = detect_contrast(img, cell_px=min(np.hypot(*v1), np.hypot(*v2)))
        if found == "bright":
            return img, ""
        raise ValueError(
            f"the atom columns of this image are dark spots on a bright background (skewness {skew:.2f} of the "
            "high-passed image), as in annular bright-field (ABF) or bright-field (BF) images; the analysis "
            "expects bright columns (HAADF/ADF). Analyse an ADF/HAADF image of the same area if there is one, or "
            "pass contrast='dark' to analyse the inverted image (dark-field positions are more robust: ABF "
            "column positions shift with defocus and tilt, and light columns such as oxygen show up too)."
        )
    note = ("columns are dark (ABF/BF contrast): the inverted image (max - image) was analysed; intensities are "
            "dips below the background, not HAADF Z-contrast")
    warn(note, ContrastWarning)
    return img.max() - img, note


def _scan_stage(img, refined: Refined, is_a, grid: _Grid, pixel_size, correct: bool, cancel):
    """Stage 6: estimate the line jitter and the slow drift; with ``correct`` resample the rows to undo what is
    significant (the jitter unless it follows the lattice rows, the drift above 3 sigma) and refit the columns.

    Returns the (corrected) image, the columns and the :class:`~napari_causal_lattice.scan.ScanDistortion`.
    """
    lattice = _fit_lattice(refined.positions[is_a], grid.v1, grid.v2, img.shape)
    scan = estimate_scan_distortion(img, refined.positions, refined.width, refined.intensity,
                                    pixel_size=pixel_size, is_a=is_a, lattice=lattice)
    if not correct:
        return img, refined, scan
    jitter = scan.rms_px >= max(_MIN_JITTER_PX, _JITTER_SIGNIFICANCE * scan.residual_px)
    periodic = _lattice_row_share(scan.shifts, grid.v1, grid.v2, img.shape[1]) if jitter else 0.0
    if periodic > _MAX_LATTICE_SHARE:
        jitter = False
        note = (f"the line shifts repeat with the lattice rows ({100 * periodic:.0f} % of their variance at the "
                "lattice's row frequencies): that is the column model's misfit, not scan jitter, so the image was "
                "not resampled for them")
        scan = dataclasses.replace(scan, provenance={**scan.provenance, "note": note})
    drift = scan.drift_significant()
    if not (jitter or drift):
        return img, refined, scan
    scan = dataclasses.replace(scan, applied=jitter, drift_applied=drift)
    img = correct_scan(img, scan.correction)
    refined = _peel(img, refined, is_a, grid.radius, cancel)[0]
    return img, refined, scan


def _lattice_row_share(shifts, v1, v2, width: int, *, order: int = 3) -> float:
    """Share of the variance of the per-line shifts at the frequencies with which the lattice repeats down the
    image rows (the reciprocal vectors up to ``order`` that are nearly constant along a row of ``width`` px).

    Scan jitter has no reason to follow the lattice; the misfit of the column model does (rows through columns
    differ from rows between them), so a shift pattern concentrated there is not jitter.
    """
    s = np.asarray(shifts, dtype=float) - np.mean(shifts)
    power = np.abs(np.fft.rfft(s)) ** 2
    total = power[1:].sum()
    if total <= 0:
        return 0.0
    dual = _dual(np.asarray(v1, float), np.asarray(v2, float))  # rows: reciprocal vectors (y, x), cycles per px
    freqs = np.fft.rfftfreq(len(s))
    near = np.zeros(len(freqs), dtype=bool)
    for h in range(-order, order + 1):
        for k in range(-order, order + 1):
            g = h * dual[0] + k * dual[1]
            if (h or k) and abs(g[1]) * width < 0.5 and abs(g[0]) > 0:
                near |= np.abs(freqs - abs(g[0])) <= 1.5 / len(s)
    near[0] = False
    return float(power[near].sum() / total)


def _detectability(img, refined: Refined, radius: float) -> np.ndarray:
    """(N,) peak amplitude of each column over the local noise on its fit patch (a square of +-``radius`` px).

    The noise is the rms of the pixel-to-pixel differences (along x, divided by sqrt 2) of the image minus the
    column model: counting and read-out noise, without the smooth misfit of the column shapes (a bright
    neighbour's tail is not noise).
    """
    model = _gaussian_model(img.shape, refined, np.ones(len(refined.positions), dtype=bool))
    resid = np.subtract(img, model, out=model)
    step = np.empty_like(resid)
    step[:, :-1] = np.diff(resid, axis=1)
    step[:, -1] = step[:, -2]
    del resid, model
    np.square(step, out=step)
    var = ndimage.uniform_filter(step, 2 * int(round(radius)) + 1, mode="nearest") / 2.0
    del step
    ny, nx = img.shape
    iy = np.clip(np.rint(refined.positions[:, 0]).astype(int), 0, ny - 1)
    ix = np.clip(np.rint(refined.positions[:, 1]).astype(int), 0, nx - 1)
    noise = np.sqrt(np.maximum(var[iy, ix], 1e-30))
    amp = refined.intensity / (2.0 * np.pi * refined.width**2)
    return np.where(np.isfinite(amp), amp / noise, 0.0)


def _warn_faint(faint, is_a, threshold):
    """Warn (:class:`FaintColumnsWarning`) when more than half of the B columns are faint."""
    b = ~is_a
    if b.any() and faint[b].mean() > 0.5:
        warn(
            f"{int(faint[b].sum())} of {int(b.sum())} B columns are barely above the noise (peak below "
            f"{threshold:g} x the local background noise): their positions, and the polarization Px, Py from them, "
            "are not measurable and their cells are flagged 'faint'. Record with a longer dwell time (or more "
            "frames), analyse a denoised image, or use the A sublattice only (lattice parameters a, b, alpha).",
            FaintColumnsWarning,
        )


def columns_from_positions(
    image,
    a_positions,
    b_positions,
    *,
    pixel_size: float | None = None,
    refine: bool = False,
    radius: float | None = None,
    intensity: str = "gaussian",
    projection: str = "auto",
) -> Columns:
    """Build :class:`Columns` from hand-edited A and B positions.

    Intensities, widths and qualities are measured on ``image`` by Gaussian fits with free centres, as in
    :func:`find_columns` (each sublattice fitted on the image minus the other's Gaussians); the positions
    are the given ones, or the fitted ones when ``refine``.  The A lattice is fitted through the A positions.

    Parameters
    ----------
    image : (H, W) array
    a_positions, b_positions : (Na, 2), (Nb, 2) arrays
        Column positions (y, x) in px.
    pixel_size : float, optional
        pm per px.
    refine : bool
        Also refine the positions (batched Gaussian fits).
    radius : float, optional
        Fit-patch radius in px; default half the median nearest-neighbour distance.
    intensity : {"gaussian", "disk"}
    projection : {"auto", "[001]", "[110]"}
        Crystal projection; ``"auto"`` reads it from where the B positions sit in the A lattice (a given one
        must agree).

    Returns
    -------
    Columns
        ``sigma`` holds the fitted position uncertainties when ``refine``, NaN for the given positions.
    """
    img = as_image(image)
    pixel_size = _check_pixel_size(pixel_size)
    _check_intensity(intensity)
    a = np.asarray(a_positions, dtype=float).reshape(-1, 2)
    b = np.asarray(b_positions, dtype=float).reshape(-1, 2)
    positions = np.concatenate([a, b])
    if not np.all(np.isfinite(positions)):
        raise ValueError("column positions contain NaN or inf; remove those points")
    sublattice = np.array(["A"] * len(a) + ["B"] * len(b))
    if radius is None:
        radius = _default_radius(positions)
    # intensities and widths always come from a full fit (centre free), so they mean the same as
    # find_columns'; the positions are the given ones unless ``refine``
    refined = refine_columns(img, positions, radius=radius, move=True, neighbours=False)
    is_a = sublattice == "A"
    if is_a.any() and not is_a.all():
        refined = _peel(img, refined, is_a, float(radius), None)[0]
    if intensity == "disk":
        refined = refined._replace(intensity=_disk_sum(img, refined.positions, radius))
    if not refine:
        refined = refined._replace(positions=positions.copy(), sigma=np.full(len(positions), np.nan))
    _check_projection(projection)
    a_pos = refined.positions[: len(a)]
    v1, v2 = _lattice_vectors_from_positions(a_pos)
    if pixel_size is not None:
        check_calibration(min(np.hypot(*v1), np.hypot(*v2)) * pixel_size)
    lattice = _fit_lattice(a_pos, v1, v2, img.shape)
    half = _b_site_of_positions(refined.positions[len(a):], lattice)
    sites = [np.zeros(2), half] if half is not None else []
    motif = _decide_motif(sites, v1, v2, projection)[1] if len(b) else get_motif(
        "[001]" if projection == "auto" else projection, lattice)
    params = {"pixel_size": pixel_size, "refine": bool(refine), "radius": float(radius), "intensity": intensity,
              "projection": projection if isinstance(projection, str) else projection.name}
    return _make_columns(refined, sublattice, lattice, pixel_size, img.shape, "columns_from_positions", params,
                         motif)


def fit_variants(image, columns: Columns, *, radii=(0.7, 1.3)) -> dict[str, Columns]:
    """The same columns measured with other fit models, for the systematic uncertainty of a mean P.

    An absolute polarization depends on how a column's position is read off its (asymmetric, overlapping) image:
    each variant re-measures every position on ``image`` (scan-corrected as ``columns.scan`` says) from the
    current fits:

    * ``"gaussian"``: one Gaussian + constant per column on the image itself (neighbours not subtracted);
    * ``"centre_of_mass"``: background-subtracted centre of mass on a disk of 0.6 x the fit radius;
    * ``"radius x<f>"``: the Gaussian fits with neighbours subtracted (as :func:`find_columns`), at ``f`` times
      the fit radius, for each ``f`` in ``radii``.

    Parameters
    ----------
    image : (H, W) array
        The image the columns were found on.
    columns : Columns
        Columns from :func:`find_columns` (or :func:`columns_from_positions`).
    radii : sequence of float
        Fit-radius factors of the radius variants.

    Returns
    -------
    dict
        Variant name -> Columns (same columns, same order; positions re-measured).
    """
    img = as_image(image)
    if img.shape != tuple(columns.image_shape):
        raise ValueError(f"image has shape {img.shape}, but the columns were found on {tuple(columns.image_shape)}")
    if columns.scan is not None and (columns.scan.applied or columns.scan.drift_applied):
        img = correct_scan(img, columns.scan.correction)
    radius = columns.provenance.get("params", {}).get("radius") or _default_radius(columns.positions)
    is_a = columns.sublattice == "A"
    start = Refined(columns.positions, columns.width, columns.intensity, columns.quality, columns.sigma)
    out = {}
    plain = _refine(img, columns.positions, float(radius), intensity="gaussian", move=True, progress=None,
                    cancel=None, done0=0, total=1)
    out["gaussian"] = plain.positions
    out["centre_of_mass"] = _gaussfit.centre_of_mass(img, columns.positions, 0.6 * float(radius))
    for factor in radii:
        out[f"radius x{factor:g}"] = _peel(img, start, is_a, float(radius) * float(factor), None)[0].positions
    return {name: dataclasses.replace(columns, positions=pos) for name, pos in out.items()}


def _b_site_of_positions(b_pos: np.ndarray, lattice: Lattice):
    """Circular-mean offset (2,) of B positions in the A cell, fractions of ``(v1, v2)``; None without B."""
    if len(b_pos) == 0:
        return None
    frac = lattice.to_grid(b_pos)[:, ::-1]
    phase = np.angle(np.exp(2j * np.pi * frac).mean(axis=0))
    return (phase / (2 * np.pi)) % 1.0
