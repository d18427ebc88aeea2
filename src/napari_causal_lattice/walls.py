"""Causal coupling as a function of the signed distance from a domain wall drawn as a line.

The wall is a straight line through two points ``(y, x)`` in image px.  Each window of a sliding
LiNGAM result (or each unit cell) gets its signed distance ``d`` from that line; the coupling
``effect <- cause`` is averaged (windows) or re-estimated (cells) in distance bins, with bootstrap
confidence intervals, and ``A * tanh((d - d0) / Lc) + c`` is fitted by weighted least squares.  This is
the shape of every strain-polarization coupling of the linearized LGD theory (Eq. 16, see
:mod:`napari_causal_lattice.theory`), with ``A = 2 Q P0 sqrt(1 - eps)``.

Sign convention: with ``t`` the unit vector from the first to the second point, the normal is
``n = (-t_x, t_y)`` in (y, x); for a line drawn top to bottom, positive distances lie to its right
(+x); for a line drawn left to right, positive distances lie above it (-y).  The figure:
:func:`napari_causal_lattice.figures.plot_wall_profile`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._moved import moved
from ._warn import warn
from .lattice import DESCRIPTORS
from .options import WallOptions, check_seed, takes_options
from .progress import report
from .provenance import make_provenance

#: Drawing helpers that lived here (old name -> new module).
_MOVED = {"plot_wall_profile": "napari_causal_lattice.figures"}

_PROFILE_COLUMNS = ("distance", "value", "ci_low", "ci_high", "se", "n")


@dataclass(frozen=True)
class WallProfile:
    """Coupling ``effect <- cause`` vs signed distance from a wall, with a tanh fit.

    Attributes
    ----------
    effect, cause : str
        The coupling ``effect <- cause`` (lingam convention).
    line : (2, 2) array
        The two wall points ``(y, x)`` in image px.
    normal : (2,) array
        Unit normal ``(y, x)`` pointing to positive distances.
    table : DataFrame
        One row per distance bin with enough samples: ``distance`` (bin centre, px), ``value`` (mean window
        coefficient or per-bin estimate), ``ci_low``, ``ci_high`` (bootstrap percentile interval at
        ``confidence``), ``se`` (bootstrap standard error) and ``n`` (windows or cells in the bin).
    method : str
        ``"window mean"`` (sliding result) or ``"bin regression"`` / ``"bin lingam"`` (cells).
    bin_width : float
        Bin width in px.
    confidence : float
        Level of the confidence intervals (e.g. 0.95).
    params : dict
        Fitted ``amplitude`` (coefficient unit), ``Lc`` (px), ``offset`` (coefficient unit) and ``shift``
        (``d0``, px: where the fitted wall sits relative to the drawn line), each with ``<name>_err`` (one
        standard error from the fit covariance, scaled by the reduced chi-square), plus ``chi2_red`` and
        ``window`` (px width of the box average fitted for sliding windows, 0 for cells); empty when
        ``fit=False``.
    units : str
        Unit of the coupling values.
    provenance : dict
        Parameters, seed and versions.
    """

    effect: str
    cause: str
    line: np.ndarray
    normal: np.ndarray
    table: pd.DataFrame
    method: str
    bin_width: float
    confidence: float
    params: dict
    units: str
    provenance: dict

    def model(self, distance) -> np.ndarray:
        """Fitted ``A tanh((d - d0) / Lc) + c`` at ``distance`` (px); raises if no fit was made."""
        if not self.params:
            raise ValueError("this profile was measured with fit=False; rerun wall_profile with fit=True")
        p = self.params
        return tanh_profile(distance, amplitude=p["amplitude"], Lc=p["Lc"], offset=p["offset"], shift=p["shift"],
                            window=p["window"])

    def local_model(self, distance) -> np.ndarray:
        """Fitted local coupling ``A tanh((d - d0) / Lc) + c`` (px), without the window average."""
        p = self.params
        if not p:
            raise ValueError("this profile was measured with fit=False; rerun wall_profile with fit=True")
        return tanh_profile(distance, amplitude=p["amplitude"], Lc=p["Lc"], offset=p["offset"], shift=p["shift"])

    @property
    def plateaus(self) -> tuple[float, float]:
        """Fitted coupling far on the negative and positive side, ``(c - A, c + A)``."""
        if not self.params:
            raise ValueError("this profile was measured with fit=False; rerun wall_profile with fit=True")
        return self.params["offset"] - self.params["amplitude"], self.params["offset"] + self.params["amplitude"]

    def fit_problem(self, *, max_relative_error: float = 1.0) -> str:
        """Why the tanh fit cannot be read as a wall width, or ``""`` when it can.

        A fit is failed when the width ``Lc`` or the step ``A`` is not determined (standard error missing, zero
        because the fit stopped at a bound, or above ``max_relative_error`` times the value), or when ``Lc``
        lies outside what the profile can resolve: narrower than half a bin or wider than half the measured
        distance range.

        Parameters
        ----------
        max_relative_error : float
            Largest accepted ratio of standard error to value for ``Lc`` and ``A``.
        """
        p = self.params
        if not p:
            return "no fit was made (fit=False)"
        lc, lc_err = p["Lc"], p["Lc_err"]
        amp, amp_err = abs(p["amplitude"]), p["amplitude_err"]
        if not (np.isfinite(lc_err) and lc_err > 0) or lc_err > max_relative_error * lc:
            return f"the wall width is not determined (Lc = {lc:.3g} \u00b1 {lc_err:.2g} px)"
        if not (np.isfinite(amp_err) and amp_err > 0) or amp_err > max_relative_error * amp:
            return (f"the step across the wall is not distinguishable from zero "
                    f"(A = {p['amplitude']:.3g} \u00b1 {amp_err:.2g})")
        distance = self.table["distance"].to_numpy(dtype=float)
        span = float(distance.max() - distance.min()) if distance.size else 0.0
        if lc < 0.5 * self.bin_width or lc > 0.5 * span:
            return (f"the fitted width Lc = {lc:.3g} px lies outside what the profile resolves "
                    f"({0.5 * self.bin_width:.3g} to {0.5 * span:.3g} px: half a bin to half the measured range)")
        return ""

    @property
    def sign_change(self) -> bool:
        """True when the fitted coupling has opposite signs on the two sides of the wall."""
        low, high = self.plateaus
        return bool(low * high < 0)

    def to_state(self) -> dict:
        return {
            "effect": self.effect,
            "cause": self.cause,
            "line": self.line.copy(),
            "normal": self.normal.copy(),
            "table": {
                "columns": [str(c) for c in self.table.columns],
                "data": {str(c): self.table[c].to_numpy().copy() for c in self.table.columns},
            },
            "method": self.method,
            "bin_width": float(self.bin_width),
            "confidence": float(self.confidence),
            "params": {"names": list(self.params), "values": np.array(list(self.params.values()), dtype=float)},
            "units": self.units,
            "provenance": self.provenance,
        }

    @classmethod
    def from_state(cls, state: dict) -> "WallProfile":
        columns = list(state["table"]["columns"])
        data = state["table"]["data"]
        names = list(state["params"]["names"])
        values = np.asarray(state["params"]["values"], dtype=float).reshape(-1)
        return cls(
            effect=str(state["effect"]),
            cause=str(state["cause"]),
            line=np.asarray(state["line"], dtype=float),
            normal=np.asarray(state["normal"], dtype=float),
            table=pd.DataFrame({c: np.asarray(data[c]) for c in columns}, columns=columns),
            method=str(state["method"]),
            bin_width=float(state["bin_width"]),
            confidence=float(state["confidence"]),
            params={n: float(v) for n, v in zip(names, values)},
            units=str(state["units"]),
            provenance=state["provenance"],
        )


def line_frame(line) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Origin, unit tangent, unit normal and length (px) of a wall line.

    Parameters
    ----------
    line : (2, 2) array_like
        Two points ``(y, x)`` in image px (e.g. the vertices of a napari Shapes ``line``).

    Returns
    -------
    origin, tangent, normal : (2,) arrays
    length : float
    """
    pts = np.asarray(line, dtype=float)
    if pts.ndim != 2 or pts.shape[1] < 2 or pts.shape[0] < 2:
        raise ValueError(f"line must be two (y, x) points in image px, shape (2, 2); got shape {pts.shape}")
    pts = pts[[0, -1], -2:]
    if not np.all(np.isfinite(pts)):
        raise ValueError("line points must be finite (y, x) positions in px")
    vec = pts[1] - pts[0]
    length = float(np.hypot(*vec))
    if length < 1e-9:
        raise ValueError("the two line points coincide; draw the wall as a line with two distinct ends")
    tangent = vec / length
    normal = np.array([-tangent[1], tangent[0]])
    return pts[0], tangent, normal, length


def signed_distance(points_yx, line) -> np.ndarray:
    """Signed distance (px) of points (..., 2) ``(y, x)`` from the infinite line through ``line``."""
    origin, _, normal, _ = line_frame(line)
    return (np.asarray(points_yx, dtype=float) - origin) @ normal


def _samples_from_sliding(source, effect, cause):
    if source.lattice is None:
        raise ValueError(
            "this sliding result has no lattice (window -> image px), so window positions are unknown; "
            "run sliding_lingam on Cells from build_cells"
        )
    values = np.asarray(source.element(effect, cause), dtype=float)
    centres = source.centers_image
    ok = np.isfinite(values)
    units = source.element_units(effect, cause) if hasattr(source, "element_units") else ""
    spacing = float(np.mean(source.lattice.spacings))
    return centres[ok], values[ok], units, spacing


def _table_from_cells(source):
    if isinstance(source, pd.DataFrame):
        return source, None, {}
    table = getattr(source, "table", None)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            "source must be a SlidingResult (from sliding_lingam), a Cells object (from build_cells) or a "
            f"DataFrame with columns y, x and the descriptors; got {type(source).__name__}"
        )
    return table, getattr(source, "lattice", None), dict(getattr(source, "units", None) or {})


def _nn_spacing(yx: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(yx).query(yx, k=2)
    return float(np.median(dist[:, 1]))


def _ci(boot: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return low, high, boot.std(axis=0, ddof=1)


def _bin_regression(d, cause, effect, idx, rng, n_bootstrap):
    """Slope of effect on cause with intercept (and a linear distance term when d varies in the bin)."""
    n = idx.size
    dd = d[idx] - d[idx].mean()
    columns = [np.ones(n), cause[idx]]
    if np.ptp(dd) > 1e-9 * max(np.abs(d[idx]).max(), 1.0):
        columns.append(dd)
    design = np.stack(columns, axis=1)
    target = effect[idx]
    if np.linalg.matrix_rank(design) < design.shape[1]:
        return np.nan, np.full(n_bootstrap, np.nan)
    estimate = np.linalg.lstsq(design, target, rcond=None)[0][1]
    picks = rng.integers(0, n, size=(n_bootstrap, n))
    xb = design[picks]
    yb = target[picks]
    xtx = np.einsum("bni,bnj->bij", xb, xb)
    xty = np.einsum("bni,bn->bi", xb, yb)
    det = np.linalg.det(xtx)
    good = np.abs(det) > 1e-12 * np.abs(np.einsum("bii->b", xtx)) ** design.shape[1]
    boot = np.full(n_bootstrap, np.nan)
    if good.any():
        boot[good] = np.linalg.solve(xtx[good], xty[good][..., None])[:, 1, 0]
    return float(estimate), boot


def _bin_lingam(table, names, effect, cause, idx, seed, n_bootstrap, backend=None):
    from .causal import DeterministicDescriptorWarning, fit_lingam

    try:
        with warnings.catch_warnings():  # near-deterministic descriptors are the caller's concern, not per bin
            warnings.simplefilter("ignore", DeterministicDescriptorWarning)
            # the bins' coefficients only: no error-independence test per bin (small bins, O(n^2) each)
            result = fit_lingam(table.iloc[idx][list(names)].to_numpy(dtype=float), variables=list(names),
                                n_bootstrap=n_bootstrap, seed=seed, standardize=False, backend=backend,
                                independence_max_samples=0)
    except ValueError:  # too few complete or degenerate cells in this bin: leave the bin out
        return np.nan, np.full(n_bootstrap, np.nan)
    e, c = list(names).index(effect), list(names).index(cause)
    boot = np.asarray(result.bootstrap_adjacency)[:, e, c]
    return float(result.coefficient(effect, cause)), boot


def _window_mean_estimator(values, rng, n_bootstrap: int):
    """Bin estimate of window coefficients: their mean, with a bootstrap of the mean."""
    def estimate(members):
        v = values[members]
        return float(v.mean()), v[rng.integers(0, v.size, size=(n_bootstrap, v.size))].mean(axis=1)
    return estimate


def _cell_estimator(table, distance, effect, cause, method: str, backend, rng, n_bootstrap: int):
    """Bin estimate from the cells: regression slope or a LiNGAM fit of the bin (see :func:`wall_profile`)."""
    if method == "regression":
        cause_v = table[cause].to_numpy(dtype=float)
        effect_v = table[effect].to_numpy(dtype=float)
        return lambda members: _bin_regression(distance, cause_v, effect_v, members, rng, n_bootstrap)
    names = [n for n in DESCRIPTORS if n in table.columns]
    names += [n for n in (effect, cause) if n not in names]
    return lambda members: _bin_lingam(table, names, effect, cause, members, int(rng.integers(2**31)), n_bootstrap,
                                       backend)


def _binned_rows(distance, bin_width: float, min_count: int, estimate, confidence: float, progress, cancel) -> list:
    """Profile rows (distance, estimate, low, high, se, count) of every bin with enough samples."""
    bin_index = np.floor(distance / bin_width + 0.5).astype(np.int64)
    bins = np.unique(bin_index)
    rows = []
    for done, b in enumerate(bins):
        members = np.flatnonzero(bin_index == b)
        if members.size >= min_count:
            value, boot = estimate(members)
            boot = boot[np.isfinite(boot)]
            if np.isfinite(value) and boot.size >= 10:
                low, high, se = _ci(boot, confidence)
                rows.append((b * bin_width, value, float(low), float(high), float(se), members.size))
        report(progress, done + 1, len(bins), cancel)
    return rows


def _logcosh(z):
    z = np.abs(z)
    return z + np.log1p(np.exp(-2.0 * z)) - np.log(2.0)


def tanh_profile(distance, *, amplitude, Lc, offset=0.0, shift=0.0, window=0.0) -> np.ndarray:
    """``A tanh((d - d0) / Lc) + c``, optionally averaged over a box of width ``window`` (same unit as d).

    The box average models a sliding-window coefficient: each window reports (about) the mean of the
    local coupling over its width, ``Lc / w * [log cosh((d - d0 + w/2) / Lc) - log cosh((d - d0 - w/2) / Lc)]``.

    Parameters
    ----------
    distance : array_like
        Signed distance from the wall, px.
    amplitude, Lc, offset, shift : float
        ``A`` (coupling unit), ``Lc`` (px, > 0), ``c`` (coupling unit), ``d0`` (px).
    window : float
        Width of the averaging box along the normal in px (0: no averaging).

    Returns
    -------
    ndarray
        Same shape as ``distance``.
    """
    z = (np.asarray(distance, dtype=float) - shift) / Lc
    if window <= 0:
        return amplitude * np.tanh(z) + offset
    h = 0.5 * window / Lc
    return amplitude * (_logcosh(z + h) - _logcosh(z - h)) / (2.0 * h) + offset


def _fit_tanh(table: pd.DataFrame, fit_shift: bool, bin_width: float, window: float = 0.0) -> dict:
    from scipy.optimize import curve_fit

    d = table["distance"].to_numpy()
    v = table["value"].to_numpy()
    se = table["se"].to_numpy()
    n_params = 4 if fit_shift else 3
    if len(d) < n_params + 2:
        raise ValueError(
            f"only {len(d)} distance bins have enough samples; the tanh fit needs at least {n_params + 2}. "
            "Draw a longer line across the wall, use a smaller bin width or no distance limit (max_distance=None)"
        )
    floor = np.nanmedian(se[se > 0]) if np.any(se > 0) else 1.0
    sigma = np.where(np.isfinite(se) & (se > 0), se, floor)
    sigma = np.maximum(sigma, 0.1 * floor)
    span = float(d.max() - d.min())

    def model(x, amplitude, Lc, offset, shift=0.0):
        return tanh_profile(x, amplitude=amplitude, Lc=Lc, offset=offset, shift=shift, window=window)

    neg, pos = v[d < 0], v[d >= 0]
    amp0 = (np.mean(pos) - np.mean(neg)) / 2.0 if neg.size and pos.size else float(np.ptp(v)) / 2.0
    lower = [-np.inf, 0.05 * bin_width, -np.inf] + ([-span / 2] if fit_shift else [])
    upper = [np.inf, 2.0 * span, np.inf] + ([span / 2] if fit_shift else [])
    best = None
    for lc0 in bin_width * np.array([0.5, 1.0, 2.0, 4.0, 8.0]):
        p0 = [amp0 if amp0 != 0 else 1e-3, min(max(lc0, lower[1] * 1.01), upper[1] * 0.99), float(np.mean(v))]
        if fit_shift:
            p0.append(0.0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                popt, pcov = curve_fit(model, d, v, p0=p0, sigma=sigma, absolute_sigma=False,
                                       bounds=(lower, upper), maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        chi2 = float(np.sum(((model(d, *popt) - v) / sigma) ** 2))
        if best is None or chi2 < best[2]:
            best = (popt, pcov, chi2)
    if best is None:
        raise ValueError("the tanh fit did not converge; check that the line crosses the wall and the profile")
    popt, pcov, chi2 = best
    errs = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.all(np.isfinite(pcov)) else np.full(len(popt), np.nan)
    names = ["amplitude", "Lc", "offset", "shift"][: len(popt)]
    params = {}
    for name, value, err in zip(names, popt, errs):
        params[name] = float(value)
        params[f"{name}_err"] = float(err)
    if not fit_shift:
        params["shift"] = 0.0
        params["shift_err"] = 0.0
    params["chi2_red"] = chi2 / max(len(d) - len(popt), 1)
    params["window"] = float(window)
    return params



class _WallSamples(NamedTuple):
    """What :func:`wall_profile` bins: sample positions and, for windows, their values; or the cell table."""

    yx: np.ndarray  #: (n, 2) sample positions, px
    values: np.ndarray | None  #: (n,) window coefficients (sliding source), else None
    table: pd.DataFrame | None  #: the complete cells (cell source), else None
    spacing: float  #: lattice spacing of the samples, px (the default bin width)
    window_px: float  #: window width along the normal to deconvolve, px (0: none)
    units: str  #: unit of the coupling
    label: str  #: how each bin is estimated
    min_count: int  #: fewest samples per bin


def _wall_samples(source, effect, cause, estimator: str, *, deconvolve_window: bool, min_count) -> _WallSamples:
    """The samples of a sliding result (window coefficients) or of cells (a table re-estimated per bin)."""
    if hasattr(source, "element") and hasattr(source, "adjacency"):
        yx, values, units, spacing = _samples_from_sliding(source, effect, cause)
        window_px = float(source.window) * spacing / max(int(source.stride), 1) if deconvolve_window else 0.0
        return _WallSamples(yx, values, None, spacing, window_px, units, "window mean",
                            3 if min_count is None else int(min_count))
    table, lattice, unit_map = _table_from_cells(source)
    missing = [c for c in ("y", "x", effect, cause) if c not in table.columns]
    if missing:
        raise ValueError(f"the cell table lacks column(s) {missing}; it needs y, x (px) and the descriptors")
    sub = table.dropna(subset=["y", "x", effect, cause])
    yx = sub[["y", "x"]].to_numpy(dtype=float)
    spacing = float(np.mean(lattice.spacings)) if lattice is not None else (_nn_spacing(yx) if len(yx) > 1 else 1.0)
    ue, uc = unit_map.get(effect, ""), unit_map.get(cause, "")
    return _WallSamples(yx, None, sub, spacing, 0.0, f"{ue}/{uc}" if ue and uc else "", f"bin {estimator}",
                        12 if min_count is None else int(min_count))


def _near_the_line(yx, origin, tangent, normal, length, *, within_segment: bool, max_distance):
    """Signed distance (n,) px of every sample from the line, and the indices of the samples to use."""
    rel = yx - origin
    dist = rel @ normal
    along = rel @ tangent
    keep = np.ones(len(dist), dtype=bool)
    if within_segment:
        keep &= (along >= 0) & (along <= length)
    if max_distance is not None:
        keep &= np.abs(dist) <= float(max_distance)
    if not keep.any():
        raise ValueError(
            "no window or cell lies next to the drawn line; draw the line across the region with results "
            "(or also use cells beyond the line's ends: within_segment=False)"
        )
    return dist, np.flatnonzero(keep)


def _estimator_and_backend(estimator, backend, method):
    """The bin estimator and the causal backend (resolved), mapping the deprecated ``method``."""
    if method is not None:
        new = (f"estimator={method!r}" if isinstance(method, str) and method in ("regression", "lingam")
               else "estimator='lingam', backend=...")
        warn(f"wall_profile(method=...) is deprecated; use {new}", DeprecationWarning)
        if isinstance(method, str) and method in ("regression", "lingam"):
            estimator = method
        else:
            estimator, backend = "lingam", method
    if backend is None:
        return estimator, None
    from .causal.methods import resolve_method

    return estimator, resolve_method(backend)


@takes_options(WallOptions)
def wall_profile(
    source,
    line,
    *,
    effect: str = "Px",
    cause: str = "Py",
    bin_width: float | None = None,
    max_distance: float | None = None,
    within_segment: bool = True,
    estimator: str = "regression",
    backend=None,
    min_count: int | None = None,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed=None,
    fit: bool = True,
    fit_shift: bool = True,
    deconvolve_window: bool = True,
    progress=None,
    cancel=None,
    method=None,
) -> WallProfile:
    """Measure the coupling ``effect <- cause`` vs signed distance from a wall and fit a tanh profile.

    Parameters
    ----------
    source : SlidingResult, Cells or DataFrame
        A sliding LiNGAM result (the window coefficients ``source.element(effect, cause)`` are averaged
        per bin, windows placed with ``source.lattice``), or unit cells (a table with ``y``, ``x`` in px
        and the descriptors): then the coupling is re-estimated inside each distance bin (see ``method``).
        Cells resolve walls narrower than a sliding window.
    line : (2, 2) array_like
        Two points ``(y, x)`` in image px on the wall (e.g. a napari Shapes line).
    effect, cause : str
        The coupling ``effect <- cause``.
    bin_width : float, optional
        Width of the distance bins in px; default one lattice spacing (of the windows or of the cells).
    max_distance : float, optional
        Only use samples with ``|d| <= max_distance`` px; default all.
    within_segment : bool
        Only use samples whose projection on the line falls between its two ends.
    estimator : {"regression", "lingam"}
        Cells only.  ``"regression"``: least-squares slope of ``effect`` on ``cause`` with an intercept and a
        linear term in distance inside the bin (removes the wall's own trend within the bin; equals the
        LiNGAM coefficient when ``cause`` is the only parent of ``effect``).  ``"lingam"``: ``fit_lingam``
        on all descriptors of the bin (unstandardized), coefficient ``effect <- cause``, with ``backend``.
    backend : "engine", "lingam" or CausalMethod, optional
        The causal backend of ``estimator="lingam"`` (default the fast engine; ``"lingam"`` is the reference
        package), as in :func:`~napari_causal_lattice.causal.fit_lingam`.
    min_count : int, optional
        Fewest samples for a bin to be used; default 3 windows or 12 cells.
    n_bootstrap : int
        Bootstrap resamples per bin for the confidence intervals (at least 20).
    confidence : float
        Level of the intervals, in (0, 1).
    seed : int or None
        Seed (>= 0) of the bootstrap; None draws one, recorded in the provenance.
    fit : bool
        Fit ``A tanh((d - d0) / Lc) + c`` to the binned profile (weighted by 1 / se).
    fit_shift : bool
        Fit the offset ``d0`` of the wall from the drawn line (else ``d0 = 0``).
    deconvolve_window : bool
        Sliding results only: fit the tanh averaged over the window width (``window`` cells along the
        normal, see :func:`tanh_profile`), so ``Lc`` is the local wall width and not the window-blurred one.
    progress, cancel
        See :mod:`napari_causal_lattice.progress` (one unit per bin).
    method : deprecated
        The former name: ``"regression"``/``"lingam"`` are now ``estimator``, a causal backend is ``backend``.
    options : WallOptions, optional
        All of the options above but ``backend`` at once (:class:`~napari_causal_lattice.options.WallOptions`, the
        Theory dock's form); keywords given as well replace its fields.

    Returns
    -------
    WallProfile
    """
    estimator, backend = _estimator_and_backend(estimator, backend, method)
    n_bootstrap = int(n_bootstrap)  # options are validated by WallOptions (see takes_options)
    seed = check_seed(seed)
    origin, tangent, normal, length = line_frame(line)
    samples = _wall_samples(source, effect, cause, estimator, deconvolve_window=deconvolve_window,
                            min_count=min_count)
    dist, kept = _near_the_line(samples.yx, origin, tangent, normal, length, within_segment=within_segment,
                                max_distance=max_distance)
    bin_width = samples.spacing if bin_width is None else float(bin_width)
    if not np.isfinite(bin_width) or bin_width <= 0:
        raise ValueError(f"bin_width must be a positive distance in px, got {bin_width!r}")
    bin_estimate = _bin_estimator(samples, dist, kept, effect, cause, estimator, backend,
                                  np.random.default_rng(seed), n_bootstrap)
    rows = _binned_rows(dist[kept], bin_width, samples.min_count, bin_estimate, float(confidence), progress, cancel)
    profile = pd.DataFrame(rows, columns=list(_PROFILE_COLUMNS))
    params = _fit_tanh(profile, fit_shift, bin_width, samples.window_px) if fit else {}
    provenance = make_provenance(
        "wall_profile",
        {
            "effect": effect, "cause": cause, "line": np.asarray(line, dtype=float)[[0, -1], -2:],
            "bin_width": bin_width, "max_distance": max_distance, "within_segment": within_segment,
            "method": samples.label, "backend": None if backend is None else backend.name,
            "min_count": samples.min_count, "n_bootstrap": n_bootstrap, "confidence": confidence, "fit": fit,
            "fit_shift": fit_shift, "window_px": samples.window_px,
        },
        seed=seed,
        inputs={"source": getattr(source, "provenance", {}) or {}},
    )
    return WallProfile(
        effect=effect, cause=cause, line=np.stack([origin, origin + tangent * length]), normal=normal,
        table=profile, method=samples.label, bin_width=bin_width, confidence=float(confidence), params=params,
        units=samples.units, provenance=provenance,
    )


def _bin_estimator(samples: _WallSamples, dist, kept, effect: str, cause: str, estimator: str, backend, rng,
                   n_bootstrap: int):
    """The estimate of one bin (rows of the kept samples -> value and bootstrap values): the mean of the window
    coefficients of a sliding result, or the coupling re-estimated from the cells of the bin."""
    if samples.table is None:
        return _window_mean_estimator(samples.values[kept], rng, n_bootstrap)
    return _cell_estimator(samples.table.iloc[kept], dist[kept], effect, cause, estimator, backend, rng, n_bootstrap)


def __getattr__(name: str):
    return moved(__name__, _MOVED, name)
