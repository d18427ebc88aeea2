"""The instrument null: a parametric image bootstrap of the measurement with the physics removed.

A causal link between descriptors can be a property of the measurement rather than of the crystal: column
tails overlap (a bright B column pulls its A neighbours, ``a <- I5``), cells share corners, whole scan lines
shift together (``Px <-> Py``).  :func:`instrument_null` re-renders the image ``n_images`` times from its own
fitted model with the physics taken out, runs the identical measurement on every re-rendered image, and keeps
what the causal step finds there.  :class:`InstrumentNull` then tests an observed result against it: an edge
is reported only when it beats both the calibrated test (``LingamResult.significant``) and the null; a
calibrated edge that the null reproduces is labelled ``instrument``.

The image model (stage by stage, :func:`estimate_instrument`)
-------------------------------------------------------------
* **Positions.**  A columns on a smooth lattice: a polynomial of degree ``smooth_degree`` in the grid index
  ``(i, j)`` fitted through the measured A columns (keeps scan distortion and gentle bending, drops local
  strain).  B columns at their nominal site of that smooth lattice (``Motif.b_site``): P = 0.
* **Column profile** per column: a Gaussian core plus an optional wider Gaussian tail.  ``profile=None``
  uses what exists today: each column's fitted Gaussian width (``Columns.width``) as the core sigma and, as a
  fallback, a tail per sublattice (peak ratio and width factor) fitted by linear least squares to the image
  minus the cores (:func:`_fit_tails`), one tail sigma per sublattice.  **Seam for the column-profile
  model:** pass ``profile=`` an object with ``render(shape, positions, sublattice, intensity, row_shift=None)``
  (``ColumnProfile``) or a mapping ``{"A": (core_sigma, tail_ratio, tail_sigma), "B": (...)}`` in px.
* **Intensities** as measured (Gaussian volumes of ``Columns.intensity``), optionally shuffled among the
  columns of the same sublattice in every null image (``shuffle_intensities``).
* **Background** (a constant) and the **noise model** ``variance = gain * model + read_variance``, fitted to
  the squared residual ``image - model`` (less the expected scan-jitter misfit).
* **Scan jitter**: every image row shifted along x by a normal draw of rms ``jitter`` px (a Fourier shift of
  the rendered rows, :func:`shift_rows`).  **Seam for the
  scan-jitter estimate:** ``jitter=None`` reads ``columns.scan.rms`` when the columns carry one, else 0.

The measurement replayed on each null image
-------------------------------------------
The same set of columns is refined from its known (null) positions with
:func:`~napari_causal_lattice.columns.columns_from_positions` (``refine=True``, the same fit radius,
intensity measure and projection; the A and B sublattices peeled as in :func:`find_columns`) instead of a
full search: the lattice and motif are known.  ``tests/test_null.py`` checks that this gives the same
positions as :func:`~napari_causal_lattice.columns.find_columns` on a null image.  Then :func:`build_cells`
with the same options, cells matched to the observed cells through their B column, :func:`fit_lingam` with
the observed fit's variables, prior knowledge and decision options, and :func:`sliding_lingam` with the
observed windows (no bootstrap in the null fits: the test statistic is the regression coefficient, see
:meth:`InstrumentNull.test`).

Randomness: one numpy Generator per null image, spawned from the int ``seed`` (``SeedSequence(seed).spawn``),
so the result is bit-identical whatever the executor.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from .causal.confidence import DEFAULT_ALPHA, fdr_adjust
from .causal.fit import DeterministicDescriptorWarning
from .executors import run_units
from .lattice import DESCRIPTORS
from .provenance import jsonable, make_provenance

__all__ = ["InstrumentNull", "InstrumentModel", "estimate_instrument", "instrument_null", "render_columns",
           "shift_rows", "null_columns", "IDENTITY_PAIRS"]

#: Descriptor pairs related by the exact identity ``Vol = a b sin(alpha)`` (any direction).
IDENTITY_PAIRS: tuple[tuple[str, str], ...] = (("Vol", "a"), ("Vol", "b"), ("Vol", "alpha"))

_TAIL_FACTORS = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0)  # tail sigma / core sigma tried by the fallback tail fit
_TAIL_FIT_PIXELS = 300 * 300  # the fallback tail fit uses at most this many pixels (a central crop)
_REACH = 4.0  # columns are drawn out to this many of their sigmas


# ------------------------------------------------------------------------------------------------ rendering
def render_columns(shape, positions, amplitude, sigma, row_shift=None, *, max_values: int = 2**22) -> np.ndarray:
    """Sum of isotropic Gaussians on an image grid, with optional scan-line jitter.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the image.
    positions : (N, 2) float array
        Centres (y, x) in px.
    amplitude : (N,) float array
        Peak values, image units.
    sigma : (N,) float array or float
        Standard deviation of each Gaussian in px.
    row_shift : (H,) float array, optional
        Shift in px along x of the content of each image row (scan-line jitter).
    max_values : int
        Patch pixels drawn per batch (memory bound).

    Returns
    -------
    (H, W) float array
    """
    h, w = shape
    positions = np.asarray(positions, dtype=float).reshape(-1, 2)
    amplitude = np.asarray(amplitude, dtype=float).reshape(-1)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), amplitude.shape)
    out = np.zeros(h * w)
    if len(positions) == 0:
        return out.reshape(h, w)
    r = int(math.ceil(_REACH * float(np.max(sigma)) + (0 if row_shift is None else np.max(np.abs(row_shift)))))
    steps = np.arange(-r, r + 1)
    chunk = max(1, max_values // len(steps) ** 2)
    for start in range(0, len(positions), chunk):
        sl = slice(start, start + chunk)
        pos, s = positions[sl], sigma[sl, None]
        centre = np.rint(pos).astype(int)
        rows = centre[:, :1] + steps
        cols = centre[:, 1:] + steps
        gy = np.exp(-0.5 * ((rows - pos[:, :1]) / s) ** 2) * amplitude[sl, None]
        if row_shift is None:
            values = gy[:, :, None] * np.exp(-0.5 * ((cols - pos[:, 1:]) / s) ** 2)[:, None, :]
        else:
            shift = row_shift[np.clip(rows, 0, h - 1)][:, :, None]
            values = gy[:, :, None] * np.exp(-0.5 * ((cols[:, None, :] - pos[:, 1:, None] - shift)
                                                     / s[:, :, None]) ** 2)
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        flat = rows[:, :, None] * w + cols[:, None, :]
        out += np.bincount(flat[inside], weights=values[inside], minlength=h * w)
    return out.reshape(h, w)


def render_blurred(shape, positions, amplitude, sigma: float) -> np.ndarray:
    """Sum of Gaussians of one common ``sigma`` (px) and peaks ``amplitude`` at ``positions`` (N, 2) yx px.

    The volumes are split bilinearly over the 4 pixels round each centre and blurred with
    :func:`scipy.ndimage.gaussian_filter`: O(H W sigma) instead of O(N sigma^2), used for the wide probe tails
    (the bilinear split widens the profile by less than 1 / (12 sigma^2) in variance, < 0.2 % for sigma >= 2 px).
    """
    from scipy import ndimage

    h, w = shape
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    volume = np.asarray(amplitude, dtype=float).reshape(-1) * 2.0 * np.pi * sigma**2
    base = np.floor(pos).astype(int)
    frac = pos - base
    grid = np.zeros(h * w)
    for dy in (0, 1):
        for dx in (0, 1):
            weight = (frac[:, 0] if dy else 1 - frac[:, 0]) * (frac[:, 1] if dx else 1 - frac[:, 1])
            y, x = base[:, 0] + dy, base[:, 1] + dx
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            grid += np.bincount(y[inside] * w + x[inside], weights=(volume * weight)[inside], minlength=h * w)
    return ndimage.gaussian_filter(grid.reshape(h, w), float(sigma), mode="constant", truncate=_REACH)


# ------------------------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class InstrumentModel:
    """What the fit of one image learned about the instrument, enough to re-render it without the physics.

    Attributes
    ----------
    positions : (N, 2) float array
        Null column positions (y, x) px: A on the smooth lattice, B at its nominal site (P = 0); one row per
        column of the ``Columns`` it came from, in the same order.
    sublattice : (N,) str array
        ``"A"`` / ``"B"``.
    amplitude : (N,) float array
        Peak of each column's core (image units), from its measured intensity.
    core_sigma, tail_ratio, tail_sigma : (N,) float arrays
        Column profile: core Gaussian sigma (px), tail peak relative to the core peak, tail sigma (px).
    background : float
        Constant background (image units).
    gain, read_variance : float
        Noise model: pixel variance = ``gain * model + read_variance``.
    jitter : float
        Scan-line jitter, rms shift along x per row in px.
    smooth_rms : float
        rms distance (px) of the measured A columns from the smooth lattice (the local strain removed).
    profile_source : str
        ``"given"``, ``"ColumnProfile"`` or ``"fallback: Columns.width + fitted tail"``.
    """

    positions: np.ndarray
    sublattice: np.ndarray
    amplitude: np.ndarray
    core_sigma: np.ndarray
    tail_ratio: np.ndarray
    tail_sigma: np.ndarray
    background: float
    gain: float
    read_variance: float
    jitter: float
    smooth_rms: float
    profile_source: str
    renderer: object = None

    def render(self, shape, *, amplitude=None, row_shift=None) -> np.ndarray:
        """Noise-free model image (H, W): background + cores + tails (``amplitude`` overrides the peaks)."""
        amp = self.amplitude if amplitude is None else np.asarray(amplitude, dtype=float)
        if self.renderer is not None:  # a ColumnProfile: it draws the columns from Gaussian volumes
            volume = amp * 2.0 * np.pi * self.core_sigma**2
            return self.background + self.renderer.render(shape, self.positions, self.sublattice, volume,
                                                          row_shift=row_shift, background=False)
        image = render_columns(shape, self.positions, amp, self.core_sigma)
        for sigma in np.unique(self.tail_sigma[self.tail_ratio > 0]):
            rows = (self.tail_ratio > 0) & (self.tail_sigma == sigma)
            image += render_blurred(shape, self.positions[rows], amp[rows] * self.tail_ratio[rows], sigma)
        if row_shift is not None:
            image = shift_rows(image, row_shift)
        return image + self.background

    def summary(self) -> dict:
        """JSON-able summary: profile per sublattice (medians), background, noise, jitter, strain removed."""
        out = {}
        for name in ("A", "B"):
            rows = self.sublattice == name
            if rows.any():
                out[name] = {"core_sigma_px": float(np.median(self.core_sigma[rows])),
                             "tail_ratio": float(np.median(self.tail_ratio[rows])),
                             "tail_sigma_px": float(np.median(self.tail_sigma[rows]))}
        out.update(background=float(self.background), gain=float(self.gain), read_variance=float(self.read_variance),
                   jitter_px=float(self.jitter), smooth_rms_px=float(self.smooth_rms),
                   profile_source=self.profile_source)
        return out


def _poly_terms(ij: np.ndarray, degree: int) -> np.ndarray:
    i, j = ij[:, 0], ij[:, 1]
    return np.stack([i**a * j**b for a in range(degree + 1) for b in range(degree + 1 - a)], axis=1)


def _smooth_positions(columns, degree: int) -> tuple[np.ndarray, float]:
    """Null positions (N, 2): A on a polynomial lattice fitted through the measured A columns, B at the motif's
    site of it; and the rms (px) of the A columns about the smooth lattice."""
    lattice, motif = columns.lattice, columns.motif
    grid = lattice.to_grid(columns.positions)
    is_a = columns.sublattice == "A"
    site = np.asarray(motif.b_site, dtype=float)
    nominal = np.where(is_a[:, None], np.rint(grid), np.rint(grid - site) + site)
    a_ij, a_pos = nominal[is_a], columns.positions[is_a]
    if len(a_ij) < 3 * (degree + 1) * (degree + 2) // 2:
        raise ValueError(f"{len(a_ij)} A columns are too few for a smooth lattice of degree {degree}; use "
                         "smooth_degree=1 or a larger field of view")
    centre = a_ij.mean(axis=0)
    design = _poly_terms(a_ij - centre, degree)
    coef, *_ = np.linalg.lstsq(design, a_pos, rcond=None)
    smooth = _poly_terms(nominal - centre, degree) @ coef
    rms = float(np.sqrt(np.mean(np.sum((smooth[is_a] - a_pos) ** 2, axis=1))))
    return smooth, rms


def _profile_from(profile, columns):
    """(core, ratio, tail) (N,) arrays and a source label from ``profile`` (None: Columns.width, no tail yet)."""
    sub = columns.sublattice
    width = np.asarray(columns.width, dtype=float).copy()
    for name in ("A", "B"):
        rows = sub == name
        ok = rows & np.isfinite(width) & (width > 0)
        if rows.any():
            if not ok.any():
                raise ValueError(f"no {name} column has a fitted width; the instrument null needs Gaussian fits "
                                 "(find_columns or columns_from_positions)")
            width[rows & ~(np.isfinite(width) & (width > 0))] = np.median(width[ok])
    if profile is None:
        return width, np.zeros(len(sub)), width.copy(), "fallback", None
    if callable(getattr(profile, "render", None)):  # a ColumnProfile: the intensities are its core volumes
        is_a = sub == "A"
        core = np.where(is_a, profile.core_a, profile.core_b).astype(float)
        ratio = np.where(is_a, profile.tail_ratio_a, profile.tail_ratio_b).astype(float)
        tail = np.where(is_a, profile.tail_a, profile.tail_b).astype(float)
        return core, ratio, tail, "ColumnProfile", profile
    try:
        params = {name: tuple(float(v) for v in profile[name]) for name in ("A", "B")}
    except (KeyError, TypeError, ValueError):
        raise TypeError('profile must be None, a ColumnProfile (with .render) or a mapping {"A": (core_sigma, '
                        'tail_ratio, tail_sigma), "B": (...)} in px') from None
    core, ratio, tail = (np.array([params[s][k] for s in sub]) for k in range(3))
    if np.any(core <= 0) or np.any(ratio < 0) or np.any(tail <= 0):
        raise ValueError(f"profile sigmas must be > 0 px and tail ratios >= 0, got {params}")
    return core, ratio, tail, "given", None


def _crop(shape, max_pixels: int) -> tuple[slice, slice]:
    h, w = shape
    scale = min(1.0, math.sqrt(max_pixels / (h * w)))
    ch, cw = max(1, int(h * scale)), max(1, int(w * scale))
    return slice((h - ch) // 2, (h - ch) // 2 + ch), slice((w - cw) // 2, (w - cw) // 2 + cw)


def _fit_tails(img, positions, sublattice, amp, core):
    """Fallback tail per sublattice: ratio and width by linear least squares on a central crop.

    For each width factor of ``_TAIL_FACTORS`` (times the sublattice's median core sigma) the image minus the
    Gaussian cores is fitted as a constant plus the tails of the A and of the B columns (peak ``amp`` times a
    ratio, non-negative); the factor with the smallest residual wins.  Returns (ratio (N,), tail sigma (N,),
    background).
    """
    ys, xs = _crop(img.shape, _TAIL_FIT_PIXELS)
    shape = (ys.stop - ys.start, xs.stop - xs.start)
    pos = positions - np.array([ys.start, xs.start])
    target = (img[ys, xs] - render_columns(shape, pos, amp, core)).ravel()
    best = None
    typical = {name: float(np.median(core[sublattice == name])) for name in ("A", "B") if np.any(sublattice == name)}
    for factor in _TAIL_FACTORS:
        basis = [np.ones_like(target)]
        names = []
        for name, width in typical.items():
            rows = sublattice == name
            basis.append(render_blurred(shape, pos[rows], amp[rows], width * factor).ravel())
            names.append(name)
        design = np.stack(basis, axis=1)
        coef = np.linalg.lstsq(design, target, rcond=None)[0]
        coef[1:] = np.maximum(coef[1:], 0.0)
        coef[0] = np.mean(target - design[:, 1:] @ coef[1:])
        rss = float(np.sum((target - design @ coef) ** 2))
        if best is None or rss < best[0]:
            best = (rss, factor, dict(zip(names, coef[1:])), float(coef[0]))
    _, factor, ratio, background = best
    ratios = np.array([ratio.get(s, 0.0) for s in sublattice])
    return ratios, np.array([typical[s] * factor for s in sublattice]), background


def _noise_model(img, model, jitter: float, n_bins: int = 24) -> tuple[float, float]:
    """(gain, read variance) of ``variance = gain * model + read_variance`` from the residual ``img - model``.

    The squared residual, less the expected misfit of scan jitter (``(d model / dx)^2 jitter^2``), is averaged in
    quantile bins of the model value and fitted by a line (both coefficients kept >= 0).
    """
    r2 = (img - model) ** 2
    if jitter > 0:
        r2 = r2 - np.gradient(model, axis=1) ** 2 * jitter**2
    m, r2 = model.ravel(), r2.ravel()
    edges = np.unique(np.quantile(m, np.linspace(0, 1, n_bins + 1)))
    which = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    ok = counts > 10
    mean_m = np.bincount(which, weights=m, minlength=len(edges) - 1)[ok] / counts[ok]
    mean_r2 = np.bincount(which, weights=r2, minlength=len(edges) - 1)[ok] / counts[ok]
    gain, read = np.polyfit(mean_m, mean_r2, 1) if ok.sum() >= 2 else (0.0, float(np.mean(r2)))
    if gain < 0:
        gain, read = 0.0, float(np.mean(mean_r2))
    if read < 0:
        gain, read = float(np.sum(mean_m * mean_r2) / np.sum(mean_m**2)), 0.0
    return float(max(gain, 0.0)), float(max(read, 0.0))


def _scan_rms(columns, jitter) -> float:
    if jitter is None:
        scan = getattr(columns, "scan", None)  # the line jitter find_columns estimated (ScanDistortion), if any
        jitter = 0.0 if scan is None else float(scan.rms_px)
    jitter = float(jitter)
    if not np.isfinite(jitter) or jitter < 0:
        raise ValueError(f"jitter must be an rms shift >= 0 px, got {jitter!r}")
    return jitter


def estimate_instrument(image, columns, *, profile=None, jitter=None, smooth_degree: int = 2) -> InstrumentModel:
    """The image model of one image with the physics removed (see the module docstring).

    Parameters
    ----------
    image : (H, W) array
        The STEM image the columns were found in.
    columns : Columns
        Its columns (Gaussian volumes as intensities: ``find_columns(..., intensity="gaussian")``).
    profile : None, ColumnProfile or mapping
        Column profile; None: ``Columns.width`` as the core and a fitted tail (fallback until a profile model is
        given); a mapping ``{"A": (core_sigma, tail_ratio, tail_sigma), "B": ...}`` in px.
    jitter : float, optional
        Scan-line jitter rms in px; None: ``columns.scan.rms`` when present, else 0.
    smooth_degree : int
        Degree of the polynomial smooth lattice in the grid index (2: scan distortion and gentle bending kept).

    Returns
    -------
    InstrumentModel
    """
    from .columns import as_image

    img = as_image(image)
    if tuple(img.shape) != tuple(columns.image_shape) and columns.image_shape:
        raise ValueError(f"the image is {img.shape} px but the columns were found in a {columns.image_shape} image")
    if (columns.provenance.get("params", {}) or {}).get("intensity") == "disk":
        raise ValueError('the instrument null needs Gaussian volumes as column intensities; find the columns with '
                         'intensity="gaussian" (the default)')
    if isinstance(smooth_degree, bool) or not isinstance(smooth_degree, (int, np.integer)) or smooth_degree < 1:
        raise ValueError(f"smooth_degree must be a whole number >= 1, got {smooth_degree!r}")
    jitter = _scan_rms(columns, jitter)
    positions, rms = _smooth_positions(columns, int(smooth_degree))
    if profile is None:  # the column profile find_columns' neighbour-aware fit estimated, if any
        profile = getattr(columns, "profile", None)
    core, ratio, tail, source, renderer = _profile_from(profile, columns)
    volume = np.asarray(columns.intensity, dtype=float)
    if not np.all(np.isfinite(volume)) or np.any(volume <= 0):
        raise ValueError("some column intensities are not positive finite Gaussian volumes; remove those columns")
    amp = volume / (2.0 * np.pi * core**2)
    background = 0.0
    if source == "fallback":
        ratio, tail, background = _fit_tails(img, columns.positions, columns.sublattice, amp, core)
        source = "fallback: Columns.width + fitted tail"
    fields = dict(positions=positions, sublattice=columns.sublattice.copy(), amplitude=amp, core_sigma=core,
                  tail_ratio=ratio, tail_sigma=tail, jitter=jitter, smooth_rms=rms, profile_source=source,
                  renderer=renderer)
    measured = InstrumentModel(**{**fields, "positions": columns.positions}, background=0.0, gain=0.0,
                               read_variance=0.0)
    model = measured.render(img.shape)  # the image's own positions: the residual is noise + misfit
    if source != "fallback: Columns.width + fitted tail":
        background = float(np.median(img - model))
    model += background
    gain, read = _noise_model(img, model, jitter)
    return InstrumentModel(**fields, background=background, gain=gain, read_variance=read)


# ------------------------------------------------------------------------------------------------ one null image
class _Job(NamedTuple):
    """Everything one null image needs (plain, picklable)."""

    model: InstrumentModel
    shape: tuple
    columns: object
    cells_options: dict
    fit_options: dict
    sliding_options: dict | None
    observed_b: np.ndarray  # (n_cells,) column index of each observed cell's B column
    names: tuple  # descriptors stored
    shuffle: bool = False  # shuffle the intensities among the columns of each sublattice
    clean: np.ndarray | None = None  # the noise-free model image (no shuffle, no jitter), drawn once


def shift_rows(image: np.ndarray, row_shift: np.ndarray, *, pad: int = 16) -> np.ndarray:
    """``image`` with the content of each row moved along x by ``row_shift`` (H,) px (Fourier shift).

    Equal to drawing the columns with the shifts (:func:`render_columns` with ``row_shift``) up to the sampling
    of the column profiles (cores of sigma >= 1 px are band-limited to well below 1e-3 of their peak); rows are
    padded by ``pad`` px at both ends (edge values) so no content wraps round.
    """
    padded = np.pad(image, ((0, 0), (pad, pad)), mode="edge")
    k = np.fft.rfftfreq(padded.shape[1])
    spectrum = np.fft.rfft(padded, axis=1) * np.exp(-2j * np.pi * k[None, :] * np.asarray(row_shift)[:, None])
    return np.fft.irfft(spectrum, n=padded.shape[1], axis=1)[:, pad:-pad]


def _draw_image(model: InstrumentModel, shape, rng, *, shuffle: bool, clean=None) -> np.ndarray:
    """One null image: (shuffled) columns, jitter and noise drawn from ``rng``; ``clean`` is the noise-free
    model image without shuffle or jitter, when already drawn."""
    amp = model.amplitude.copy()
    if shuffle:
        for name in ("A", "B"):
            rows = np.flatnonzero(model.sublattice == name)
            amp[rows] = amp[rng.permutation(rows)]
        clean = None
    if clean is None:
        clean = model.render(shape, amplitude=amp)
    if model.jitter > 0:
        clean = shift_rows(clean, rng.normal(0.0, model.jitter, shape[0]))
    sd = np.sqrt(np.maximum(model.gain * clean + model.read_variance, 0.0))
    return clean + sd * rng.standard_normal(shape)


def _measure(image, job: _Job):
    """Columns refined from the known null positions, then cells with the observed options.

    The stages of :func:`~napari_causal_lattice.columns.find_columns` after its search, on the known columns:
    centre of mass and Gaussian fits, peeling of the two sublattices, the implausible fits dropped, the A lattice
    fitted with the observed lattice vectors.  (Calling the stages directly, rather than
    ``columns_from_positions``, skips a lattice search and a second position-sigma pass: measured 2x faster on
    the default sample; ``tests/test_null.py`` checks the cells equal those of a full search.)

    Returns the Cells and, for each null column, the index of the observed column it is.
    """
    from .cells import build_cells
    from .columns.fill import _plausible_columns
    from .columns.gaussians import _peel, _refine
    from .columns.geometry import _combined_basis, _fit_lattice, _Grid
    from .columns.inputs import _default_radius, as_image
    from .columns.jitter import _scan_stage
    from .columns.neighbours import _neighbour_stage
    from .columns.result import Refined, _make_columns

    cols = job.columns
    params = dict(cols.provenance.get("params", {}) or {})
    img = as_image(image)
    index = np.concatenate([cols.a, cols.b])
    is_a = np.arange(len(index)) < len(cols.a)
    positions = job.model.positions[index]
    radius = float(params.get("radius") or _default_radius(positions))
    refined = _refine(img, positions, radius, intensity="gaussian", move=True, progress=None, cancel=None,
                      done0=0, total=1, sigma=False)
    refined = _peel(img, refined, is_a, radius, None)[0]
    good = _plausible_columns(refined, is_a)
    refined = Refined(*(np.asarray(arr)[good] for arr in refined))
    is_a, index = is_a[good], index[good]
    v1, v2 = cols.lattice.v1, cols.lattice.v2
    c1, c2 = _combined_basis(v1, v2, np.asarray(params.get("b_site_offset", cols.motif.b_site), dtype=float))
    grid = _Grid(c1, c2, v1, v2, radius, min(np.hypot(*c1), np.hypot(*c2)))
    # the stages find_columns runs after its Gaussian fits, with the observed options: line jitter, then the
    # neighbour-aware profile fit
    img, refined, scan = _scan_stage(img, refined, is_a, grid, cols.pixel_size,
                                     bool(params.get("scan_correction", True)), None)
    refined, _ = _neighbour_stage(img, refined, is_a, grid, None, neighbours=bool(params.get("neighbours", True)),
                                  scan_sigma=None)
    lattice = _fit_lattice(refined.positions[is_a], v1, v2, img.shape)
    null_cols = _make_columns(refined, np.where(is_a, "A", "B"), lattice, cols.pixel_size, img.shape,
                              "instrument_null", {**params, "warm_start": True}, cols.motif,
                              line_variance=scan.line_variance)
    return build_cells(null_cols, **job.cells_options), index


def _null_one(job: _Job, seed_state) -> dict:
    """Render, measure and fit one null image (the unit of work sent to an executor)."""
    from .causal.fit import fit_lingam
    from .sliding import sliding_lingam

    rng = np.random.default_rng(np.random.SeedSequence(**seed_state))
    image = _draw_image(job.model, job.shape, rng, shuffle=job.shuffle, clean=job.clean)
    cells, column_of = _measure(image, job)
    # the null cells on the observed rows, matched through their B column (same columns, same order)
    lookup = {int(c): r for r, c in enumerate(job.observed_b)}
    rows = np.array([lookup.get(int(column_of[b]), -1) for b in cells.b_index])
    data = np.full((len(job.observed_b), len(job.names)), np.nan)
    values = cells.table[list(job.names)].to_numpy(dtype=float)
    data[rows[rows >= 0]] = values[rows >= 0]
    frame = pd.DataFrame(data, columns=list(job.names))
    fit = fit_lingam(frame, **job.fit_options)
    out = {"data": data, "adjacency": fit.adjacency, "significant": fit.significant}
    if job.sliding_options is not None:
        grid = frame.assign(i=job.sliding_options["_i"], j=job.sliding_options["_j"])
        options = {k: v for k, v in job.sliding_options.items() if not k.startswith("_")}
        sl = sliding_lingam(grid, workers=1, **options)
        out.update(sliding_adjacency=sl.adjacency, sliding_significant=sl.significant)
    return out


# ------------------------------------------------------------------------------------------------ statistics
def _ols_given_order(X: np.ndarray, order: np.ndarray, prior=None) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and standard errors (p, p) of every edge along ``order`` (NaN elsewhere).

    ``X`` (n, p) raw values (rows with a NaN left out); ``beta[i, j]`` is the coefficient of ``j`` when ``i`` is
    regressed, with an intercept, on every variable before it in ``order``.
    """
    p = X.shape[1]
    beta = np.full((p, p), np.nan)
    se = np.full((p, p), np.nan)
    X = X[np.all(np.isfinite(X), axis=1)]
    n = len(X)
    if n < p + 3 or order[0] < 0:
        return beta, se
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / n
    for k in range(1, p):
        e, pred = order[k], order[:k]
        if prior is not None:
            pred = np.array([c for c in pred if prior[e, c] != 0], dtype=int)
        if len(pred) == 0:
            continue
        try:
            inv = np.linalg.inv(S[np.ix_(pred, pred)])
        except np.linalg.LinAlgError:
            continue
        b = inv @ S[pred, e]
        resid = max(S[e, e] - S[e, pred] @ b, 0.0) * n / max(n - len(pred) - 1, 1)
        beta[e, pred] = b
        se[e, pred] = np.sqrt(np.maximum(resid * np.diag(inv) / n, 0.0))
    return beta, se


def _null_pvalues(beta_obs, se_obs, beta_null) -> tuple[np.ndarray, ...]:
    """Two-sided p of the observed coefficient against the null: ``z = (b - mean) / sqrt(max(se, sd)^2 + sd^2/K)``
    with a t(K - 1) tail.  Returns (p, null mean, null sd, z)."""
    finite = np.isfinite(beta_null)
    k = finite.sum(axis=0)
    values = np.where(finite, beta_null, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=0) / k
        sd = np.sqrt(np.where(finite, (values - mean) ** 2, 0.0).sum(axis=0) / (k - 1))
        scale = np.sqrt(np.maximum(se_obs, sd) ** 2 + sd**2 / np.maximum(k, 1))
        z = (beta_obs - mean) / scale
        p = 2.0 * stats.t.sf(np.abs(z), np.maximum(k - 1, 1))
    p = np.where((k >= 3) & np.isfinite(z), p, np.nan)
    return p, mean, sd, z


def _windows_null_pvalues(beta_obs, se_obs, beta_null, se_null) -> np.ndarray:
    """Two-sided p (W, p, p) of each window's coefficient against the null, with the null's spread pooled.

    ``beta_obs``, ``se_obs`` (W, p, p): observed OLS coefficients and standard errors per window; ``beta_null``,
    ``se_null`` (W, K, p, p): the same on the K null images.  With K ~ 10-20 a per-window spread is too uncertain
    for the thousands of tests of a sliding run, so the spread is pooled over the windows: the null mean stays
    per window (the instrument's bias may follow the local intensities), and the ratio of the null images'
    scatter about it to their nominal standard errors, ``lambda`` per element (at least 1; above 1 when the
    errors are spatially correlated: shared corners, scan lines), inflates the observed standard error:
    ``z = (b_obs - mean_w) / (lambda sqrt(se_obs^2 + mean(se_null^2) / K))`` with a Student t tail of
    ``W (K - 1)`` degrees of freedom.
    """
    finite = np.isfinite(beta_null) & np.isfinite(se_null) & (se_null > 0)
    k = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, beta_null, 0.0).sum(axis=1) / k
        dev2 = np.where(finite, ((beta_null - mean[:, None]) / np.where(finite, se_null, 1.0)) ** 2, 0.0)
        dof = np.maximum(k - 1, 0).sum(axis=0)
        lam = np.maximum(np.sqrt(dev2.sum(axis=(0, 1)) / dof), 1.0)
        null_var = np.where(finite, se_null**2, 0.0).sum(axis=1) / k
        z = (beta_obs - mean) / (lam * np.sqrt(se_obs**2 + null_var / k))
        p = 2.0 * stats.t.sf(np.abs(z), np.maximum(dof, 1))
    return np.where((k >= 3) & np.isfinite(z), p, np.nan)


def _pair_mirror(p: np.ndarray) -> np.ndarray:
    """p-values of tested edges copied onto the reverse direction (a pair is tested along its order)."""
    return np.where(np.isfinite(p), p, np.swapaxes(p, -1, -2))


# ------------------------------------------------------------------------------------------------ the result
@dataclass(frozen=True)
class InstrumentNull:
    """What the measurement alone produces: K images re-rendered without the physics, measured and fitted.

    Attributes
    ----------
    names : tuple of str
        Descriptors stored per cell (the 8 of :data:`DESCRIPTORS` present in the cells).
    grid_ij : (n, 2) int array
        Grid index ``(i, j)`` of each observed cell (row of ``cells.table``).
    observed : (n, q) float array
        The observed descriptors (descriptor units, NaN for flagged cells).
    null_data : (K, n, q) float array
        The descriptors measured on each null image, on the observed cells' rows (NaN where the null cell was
        flagged or not found).
    fit_names : tuple of str
        Variables of the global null fits.
    adjacency : (K, p, p) float array
        Each null image's own global fit (standardised, ``B[i, j]`` = effect of ``j`` on ``i``).
    significant : (K, p, p) bool array
        Its calibrated edge decision (no bootstrap: direction of the full fit).
    sliding_adjacency, sliding_significant : (K, ny, nx, p, p) arrays or None
        The same per window, with the observed sliding result's windows; None when no sliding result was given.
    sliding_params : dict or None
        Window options replayed (window, stride, min_cells, variables, grid_origin_ij, ...).
    model : dict
        :meth:`InstrumentModel.summary` of the image model.
    options : dict
        The options of :func:`instrument_null` (seed, n_images, shuffle_intensities, ...).
    provenance : dict
    """

    names: tuple
    grid_ij: np.ndarray
    observed: np.ndarray
    null_data: np.ndarray
    fit_names: tuple
    adjacency: np.ndarray
    significant: np.ndarray
    sliding_adjacency: np.ndarray | None = None
    sliding_significant: np.ndarray | None = None
    sliding_params: dict | None = None
    model: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        """K, the number of null images."""
        return int(self.null_data.shape[0])

    # ------------------------------------------------------------------ how often / how strongly
    def rates(self) -> pd.DataFrame:
        """How often and how strongly the null produces each global edge.

        Returns
        -------
        DataFrame
            One row per ordered pair ``effect <- cause`` of ``fit_names``: ``rate`` (share of null images whose
            own calibrated fit calls it significant), ``mean_abs`` (mean |coefficient| of the null fits,
            standardised), ``mean`` (mean coefficient).
        """
        p = len(self.fit_names)
        rows = [(self.fit_names[c], self.fit_names[e], float(self.significant[:, e, c].mean()),
                 float(np.abs(self.adjacency[:, e, c]).mean()), float(self.adjacency[:, e, c].mean()))
                for e in range(p) for c in range(p) if e != c]
        table = pd.DataFrame(rows, columns=["cause", "effect", "rate", "mean_abs", "mean"])
        return table.sort_values(["rate", "mean_abs"], ascending=False).reset_index(drop=True)

    def window_rate(self, effect: str, cause: str) -> np.ndarray:
        """(ny, nx) share of null images whose window fit calls ``effect <- cause`` significant."""
        sig = self._sliding()[1]
        names = list(self.sliding_params["variables"])
        return sig[:, :, :, names.index(effect), names.index(cause)].mean(axis=0)

    def _sliding(self):
        if self.sliding_significant is None:
            raise ValueError("this instrument null has no sliding windows; run instrument_null(..., sliding=result) "
                             "with the observed SlidingResult")
        return self.sliding_adjacency, self.sliding_significant

    # ------------------------------------------------------------------ testing a global result
    def _columns_of(self, names) -> list[int]:
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ValueError(f"the null holds {list(self.names)}, not {missing}")
        return [self.names.index(n) for n in names]

    def _global_stats(self, result):
        cols = self._columns_of(result.names)
        X = self.observed[:, cols]
        complete = int(np.all(np.isfinite(X), axis=1).sum())
        if complete != int(result.n_samples):
            raise ValueError(f"the result was fitted on {result.n_samples} cells but the null's observed cells have "
                             f"{complete} complete rows: test a result fitted on the cells given to instrument_null")
        order, prior = np.asarray(result.causal_order), result.prior_knowledge
        beta, se = _ols_given_order(X, order, prior)
        null_beta = np.stack([_ols_given_order(D[:, cols], order, prior)[0] for D in self.null_data])
        return beta, se, null_beta

    def test(self, result, *, alpha: float | None = None, fdr: str = "bh") -> pd.DataFrame:
        """Test every edge of a global :class:`LingamResult` against the null.

        Each pair is tested along the result's causal order: the observed OLS coefficient of ``effect <- cause``
        given the order (descriptor units; the regression of the calibrated order t-test) against the same
        regression on the K null images.  With K ~ 20 a rank p-value cannot go below 1 / (K + 1), so the null
        is fitted parametrically: ``z = (b_obs - mean_null) / sqrt(max(se_obs, sd_null)^2 + sd_null^2 / K)``
        (the larger of the observed standard error and the null spread, which carries the spatially correlated
        measurement errors, plus the error of the null mean) with a two-sided Student t(K - 1) tail.  p-values
        are FDR-adjusted over the tested pairs (``fdr``, Benjamini-Hochberg by default) and copied onto the
        reverse direction of each pair.

        Parameters
        ----------
        result : LingamResult
            Fitted on the cells given to :func:`instrument_null` (any subset of its descriptors).
        alpha : float, optional
            Level of the null test; default the result's own ``alpha``.
        fdr : {"bh", "by"} or None

        Returns
        -------
        DataFrame
            One row per ordered pair: ``cause``, ``effect``, ``coefficient`` (the result's), ``ols`` (observed
            OLS coefficient, descriptor units), ``null_mean``, ``null_sd``, ``z``, ``p_null``, ``q_null``,
            ``null_rate`` (share of null images whose own fit calls it significant), ``significant_calibrated``,
            ``significant`` (both tests) and ``instrument`` (calibrated but reproduced by the null).
        """
        p_adj, q_adj, beta, mean, sd, z = self._global_test(result, fdr)
        alpha = float(result.params.get("alpha", DEFAULT_ALPHA)) if alpha is None else float(alpha)
        cal = np.zeros_like(q_adj, dtype=bool) if result.significant is None else result.significant
        beats = np.nan_to_num(q_adj, nan=1.0) <= alpha
        rate = self._rate_for(result.names)
        rows = []
        n = len(result.names)
        for e in range(n):
            for c in range(n):
                if e == c:
                    continue
                rows.append((result.names[c], result.names[e], float(result.adjacency[e, c]), beta[e, c], mean[e, c],
                             sd[e, c], z[e, c], p_adj[e, c], q_adj[e, c], rate[e, c], bool(cal[e, c]),
                             bool(cal[e, c] and beats[e, c]), bool(cal[e, c] and not beats[e, c])))
        return pd.DataFrame(rows, columns=["cause", "effect", "coefficient", "ols", "null_mean", "null_sd", "z",
                                           "p_null", "q_null", "null_rate", "significant_calibrated", "significant",
                                           "instrument"])

    def _rate_for(self, names) -> np.ndarray:
        n = len(names)
        rate = np.full((n, n), np.nan)
        for e, ne in enumerate(names):
            for c, nc in enumerate(names):
                if ne in self.fit_names and nc in self.fit_names:
                    rate[e, c] = self.significant[:, self.fit_names.index(ne), self.fit_names.index(nc)].mean()
        return rate

    def _global_test(self, result, fdr):
        beta, se, null_beta = self._global_stats(result)
        p, mean, sd, z = _null_pvalues(beta, se, null_beta)
        q = fdr_adjust(p, fdr) if fdr else p
        return _pair_mirror(p), _pair_mirror(q), beta, mean, sd, z

    def apply(self, result, *, alpha: float | None = None, fdr: str = "bh"):
        """``result`` with the null applied: ``significant`` = calibrated AND beats the null; ``null_p_values``
        (the FDR-adjusted null p-values, pair tested along the order) and ``instrument`` (calibrated edges that
        the null reproduces) filled in; ``params["null"]`` records the null's seed and options."""
        p_adj, q_adj = self._global_test(result, fdr)[:2]
        alpha = float(result.params.get("alpha", DEFAULT_ALPHA)) if alpha is None else float(alpha)
        if result.significant is None:
            raise ValueError("this result has no calibrated edge test (saved by an older version); fit it again")
        beats = np.nan_to_num(q_adj, nan=1.0) <= alpha
        params = {**result.params, "null": self._record(alpha, fdr)}
        return dataclasses.replace(result, significant=result.significant & beats, null_p_values=q_adj,
                                   instrument=result.significant & ~beats, params=params)

    def _record(self, alpha, fdr) -> dict:
        return {"seed": self.options.get("seed"), "n_images": self.n_images, "alpha": float(alpha), "fdr": fdr,
                "shuffle_intensities": self.options.get("shuffle_intensities"), "model": dict(self.model)}

    # ------------------------------------------------------------------ testing a sliding result
    def _sliding_test(self, sliding, fdr):
        self._sliding()
        if (int(sliding.window), int(sliding.stride)) != (self.sliding_params["window"], self.sliding_params["stride"]):
            raise ValueError(f"the sliding result has window {sliding.window}, stride {sliding.stride}; the null was "
                             f"run with window {self.sliding_params['window']}, stride {self.sliding_params['stride']}")
        cols = self._columns_of(sliding.names)
        i0, j0 = sliding.provenance.get("params", {}).get("grid_origin_ij", self.sliding_params["grid_origin_ij"])
        w, s = int(sliding.window), int(sliding.stride)
        ny, nx = sliding.shape
        n = len(sliding.names)
        p = np.full((ny, nx, n, n), np.nan)
        beta = np.full_like(p, np.nan)
        gi, gj = self.grid_ij[:, 0] - i0, self.grid_ij[:, 1] - j0
        fitted = list(zip(*np.nonzero(sliding.fitted)))
        obs = np.full((len(fitted), 2, n, n), np.nan)  # (window, [beta, se], e, c)
        null = np.full((len(fitted), self.n_images, 2, n, n), np.nan)
        for k, (ky, kx) in enumerate(fitted):
            rows = (gi >= ky * s) & (gi < ky * s + w) & (gj >= kx * s) & (gj < kx * s + w)
            order, prior = sliding.orders[ky, kx], sliding.prior_knowledge
            obs[k] = _ols_given_order(self.observed[rows][:, cols], order, prior)
            null[k] = [_ols_given_order(D[rows][:, cols], order, prior) for D in self.null_data]
        values = _windows_null_pvalues(obs[:, 0], obs[:, 1], null[:, :, 0], null[:, :, 1])
        index = tuple(np.array(fitted).T)
        p[index], beta[index] = values, obs[:, 0]
        q = fdr_adjust(p, fdr) if fdr else p
        return _pair_mirror(p), _pair_mirror(q), beta

    def test_sliding(self, sliding, *, alpha: float | None = None, fdr: str = "bh") -> pd.DataFrame:
        """Test every window element of a :class:`SlidingResult` against the null (the regression of :meth:`test`
        per window, the null's spread pooled over the windows, see :func:`_windows_null_pvalues`; FDR over
        windows x pairs).

        Returns
        -------
        DataFrame
            One row per fitted window and ordered pair: ``ky``, ``kx``, ``cause``, ``effect``, ``ols``,
            ``p_null``, ``q_null``, ``null_rate`` (share of null images whose own window fit calls it
            significant), ``significant_calibrated``, ``significant``, ``instrument``.
        """
        p, q, beta = self._sliding_test(sliding, fdr)
        alpha = float(sliding.provenance.get("params", {}).get("alpha", DEFAULT_ALPHA)) if alpha is None else alpha
        cal = sliding.significant if sliding.significant is not None else np.zeros(q.shape, bool)
        beats = np.nan_to_num(q, nan=1.0) <= alpha
        names = list(self.sliding_params["variables"])
        rate = self.sliding_significant.mean(axis=0)
        rows = []
        for ky, kx in zip(*np.nonzero(sliding.fitted)):
            for e, ne in enumerate(sliding.names):
                for c, nc in enumerate(sliding.names):
                    if e == c:
                        continue
                    r = rate[ky, kx, names.index(ne), names.index(nc)] if ne in names and nc in names else np.nan
                    rows.append((int(ky), int(kx), nc, ne, beta[ky, kx, e, c], p[ky, kx, e, c], q[ky, kx, e, c],
                                 float(r), bool(cal[ky, kx, e, c]), bool(cal[ky, kx, e, c] and beats[ky, kx, e, c]),
                                 bool(cal[ky, kx, e, c] and not beats[ky, kx, e, c])))
        return pd.DataFrame(rows, columns=["ky", "kx", "cause", "effect", "ols", "p_null", "q_null", "null_rate",
                                           "significant_calibrated", "significant", "instrument"])

    def apply_sliding(self, sliding, *, alpha: float | None = None, fdr: str = "bh"):
        """``sliding`` with the null applied (as :meth:`apply`, per window element)."""
        q = self._sliding_test(sliding, fdr)[1]
        params = sliding.provenance.get("params", {})
        alpha = float(params.get("alpha", DEFAULT_ALPHA)) if alpha is None else float(alpha)
        if sliding.significant is None:
            raise ValueError("this sliding result has no significance mask (older version); run sliding_lingam again")
        beats = np.nan_to_num(q, nan=1.0) <= alpha
        provenance = {**sliding.provenance, "null": self._record(alpha, fdr)}
        return dataclasses.replace(sliding, significant=sliding.significant & beats, null_p_values=q,
                                   instrument=sliding.significant & ~beats, provenance=provenance)

    # ------------------------------------------------------------------ io
    def to_state(self) -> dict:
        """Nested dict of arrays / str / numbers / None (exact round trip with :meth:`from_state`)."""
        return {
            "type": "InstrumentNull",
            "names": list(self.names), "grid_ij": self.grid_ij.copy(), "observed": self.observed.copy(),
            "null_data": self.null_data.copy(), "fit_names": list(self.fit_names),
            "adjacency": self.adjacency.copy(), "significant": self.significant.copy(),
            "sliding_adjacency": None if self.sliding_adjacency is None else self.sliding_adjacency.copy(),
            "sliding_significant": None if self.sliding_significant is None else self.sliding_significant.copy(),
            "sliding_params": None if self.sliding_params is None else jsonable(self.sliding_params),
            "model": jsonable(self.model), "options": jsonable(self.options), "provenance": jsonable(self.provenance),
        }

    @classmethod
    def from_state(cls, state: dict) -> InstrumentNull:
        """Rebuild from :meth:`to_state` output."""
        if state.get("type", "InstrumentNull") != "InstrumentNull":
            raise ValueError(f"This state holds a {state.get('type')!r}, not an InstrumentNull.")
        opt = lambda v, dtype: None if v is None else np.asarray(v, dtype=dtype)  # noqa: E731
        return cls(
            names=tuple(str(n) for n in state["names"]), grid_ij=np.asarray(state["grid_ij"], dtype=np.int64),
            observed=np.asarray(state["observed"], dtype=float), null_data=np.asarray(state["null_data"], dtype=float),
            fit_names=tuple(str(n) for n in state["fit_names"]), adjacency=np.asarray(state["adjacency"], dtype=float),
            significant=np.asarray(state["significant"], dtype=bool),
            sliding_adjacency=opt(state.get("sliding_adjacency"), float),
            sliding_significant=opt(state.get("sliding_significant"), bool),
            sliding_params=state.get("sliding_params"), model=dict(state.get("model", {})),
            options=dict(state.get("options", {})), provenance=dict(state.get("provenance", {})),
        )


def null_columns(table: pd.DataFrame, images, fits, nulls) -> pd.DataFrame:
    """``compare_images``' tidy table with the null test of each image on its image rows.

    Parameters
    ----------
    table : DataFrame
        ``ComparisonResult.table`` (columns ``level``, ``image``, ``effect``, ``cause``, ...).
    images : sequence of str
        Image names, in the order of ``fits``.
    fits : sequence of LingamResult
        Each image's fit.
    nulls : dict or sequence
        InstrumentNull per image name (dict) or per image (sequence); None skips an image.

    Returns
    -------
    DataFrame
        ``table`` with ``p_null`` (FDR-adjusted), ``significant`` and ``instrument`` columns (NaN / False on
        group rows and images without a null).
    """
    if isinstance(nulls, dict):
        unknown = [k for k in nulls if k not in images]
        if unknown:
            raise ValueError(f"null has entries for unknown image(s) {unknown}; the images are {list(images)}")
        per_image = [nulls.get(name) for name in images]
    else:
        per_image = list(nulls)
        if len(per_image) != len(images):
            raise ValueError(f"got {len(per_image)} nulls for {len(images)} images; give one per image (or None)")
    parts = []
    for name, fit, null in zip(images, fits, per_image):
        if null is None:
            continue
        if not isinstance(null, InstrumentNull):
            raise TypeError(f"null for {name!r} must be an InstrumentNull, got {type(null).__name__}")
        tested = null.test(fit)
        parts.append(tested.assign(image=name, level="image")[["level", "image", "effect", "cause", "q_null",
                                                               "significant", "instrument"]])
    if not parts:
        return table
    extra = pd.concat(parts, ignore_index=True).rename(columns={"q_null": "p_null"})
    out = table.merge(extra, on=["level", "image", "effect", "cause"], how="left")
    out["significant"] = out["significant"].fillna(False).astype(bool)
    out["instrument"] = out["instrument"].fillna(False).astype(bool)
    return out


# ------------------------------------------------------------------------------------------------ the function
def _fit_options(result, names) -> dict:
    if result is None:
        return {"variables": list(names), "n_bootstrap": 0, "independence_max_samples": 0}
    params = result.params
    # the null fits only need the coefficients: no bootstrap, no error-independence test (the observed fit has it)
    return {"variables": list(result.names), "prior_knowledge": result.prior_knowledge, "n_bootstrap": 0,
            "standardize": bool(result.standardized), "alpha": float(params.get("alpha", DEFAULT_ALPHA)),
            "fdr": params.get("fdr"), "min_direction": float(params.get("min_direction", 0.75)),
            "backend": params.get("method"), "independence_max_samples": 0}


def _sliding_options(sliding, cells) -> dict | None:
    if sliding is None:
        return None
    params = sliding.provenance.get("params", {})
    return {"window": int(sliding.window), "stride": int(sliding.stride), "min_cells": params.get("min_cells"),
            "variables": list(sliding.names), "prior_knowledge": sliding.prior_knowledge,
            "standardize": bool(sliding.standardized), "alpha": float(params.get("alpha", DEFAULT_ALPHA)),
            "fdr": params.get("fdr"), "min_direction": float(params.get("min_direction", 0.75)),
            "backend": params.get("method"), "n_bootstrap": 0, "_i": cells.table["i"].to_numpy(),
            "_j": cells.table["j"].to_numpy()}


def _cells_options(cells) -> dict:
    params = cells.provenance.get("params", {}) or {}
    keys = ("frame", "min_quality", "max_sigma", "min_b_distance", "max_offset", "outlier_threshold")
    out = {k: params[k] for k in keys if k in params}
    if cells.pixel_size is not None:
        out["pixel_size"] = cells.pixel_size
    return out


def _run_jobs(job: _Job, seeds: list, *, executor, workers: int, progress, cancel) -> list:
    """Run every null image (here in order, on ``workers`` local threads, or on ``executor``); results in seed
    order, identical in every case."""
    out = [None] * len(seeds)

    def store(k, result) -> int:
        out[k] = result
        return 1

    with warnings.catch_warnings():  # the observed fit warned already (Vol = a b sin alpha); once, not K times
        warnings.simplefilter("ignore", DeterministicDescriptorWarning)
        run_units(range(len(seeds)), lambda k: (_null_one, (job, seeds[k]), {}), store, total=len(seeds),
                  workers=min(workers, len(seeds)), executor=executor, progress=progress, cancel=cancel)
    return out


def instrument_null(
    image,
    columns,
    cells,
    *,
    n_images: int = 20,
    seed: int = 0,
    shuffle_intensities: bool = False,
    result=None,
    sliding=None,
    profile=None,
    jitter: float | None = None,
    smooth_degree: int = 2,
    workers: int | None = None,
    progress=None,
    cancel=None,
    executor=None,
) -> InstrumentNull:
    """Re-render the image ``n_images`` times with the physics removed and measure each one like the original.

    See the module docstring for the image model and the measurement that is replayed.

    Parameters
    ----------
    image : (H, W) array
        The STEM image.
    columns : Columns
        Its columns (from ``find_columns``, Gaussian intensities).
    cells : Cells
        Its cells (from ``build_cells(columns, ...)``); the same gating options are replayed.
    n_images : int
        K, the number of null images (>= 5; 20 gives a t(19) tail for the parametric null).
    seed : int
        Root seed; null image ``k`` draws from ``SeedSequence(seed).spawn(K)[k]``, so results do not depend on
        the executor.
    shuffle_intensities : bool
        Shuffle the measured intensities among the columns of the same sublattice in each null image (removes
        any spatial pattern of the intensities as well).
    result : LingamResult, optional
        The observed global fit whose variables, prior knowledge and decision options the null fits replay
        (default: ``fit_lingam`` defaults on the 8 descriptors).  Null fits never bootstrap.
    sliding : SlidingResult, optional
        The observed sliding result whose windows the null replays (None: no per-window null).
    profile : None, ColumnProfile or mapping, optional
        Column profile (see :func:`estimate_instrument`).
    jitter : float, optional
        Scan-line jitter rms in px (None: ``columns.scan.rms`` when present, else 0).
    smooth_degree : int
        Degree of the smooth A lattice (polynomial in the grid index).
    workers : int, optional
        Null images measured at once on local threads (default the number of CPUs; 1 runs them in order in the
        calling thread).  Ignored with ``executor``.  Results are identical for any value.
    progress, cancel
        See :mod:`napari_causal_lattice.progress`; one unit per null image (cancel is checked between images).
    executor : concurrent.futures.Executor or distributed.Client, optional
        Runs the null images there (each one is a picklable job: the image model, the columns and the options,
        a few MB), e.g. a ``ProcessPoolExecutor`` or a dask cluster; it is not shut down.

    Returns
    -------
    InstrumentNull
    """
    workers = _checked_null_args(n_images, seed, workers)
    table = getattr(cells, "table", None)
    if not isinstance(table, pd.DataFrame) or not hasattr(cells, "b_index"):
        raise TypeError(f"cells must be the Cells built from these columns, got {type(cells).__name__}")
    model = estimate_instrument(image, columns, profile=profile, jitter=jitter, smooth_degree=smooth_degree)
    names = tuple(n for n in DESCRIPTORS if n in table.columns)
    job = _Job(model=model, shape=tuple(np.shape(image)[:2]), columns=columns, cells_options=_cells_options(cells),
               fit_options=_fit_options(result, names), sliding_options=_sliding_options(sliding, cells),
               observed_b=np.asarray(cells.b_index), names=names, shuffle=bool(shuffle_intensities),
               clean=None if shuffle_intensities else model.render(tuple(np.shape(image)[:2])))
    children = np.random.SeedSequence(int(seed)).spawn(n_images)
    seeds = [{"entropy": child.entropy, "spawn_key": child.spawn_key} for child in children]
    outs = _run_jobs(job, seeds, executor=executor, workers=workers, progress=progress, cancel=cancel)
    options = {"n_images": int(n_images), "seed": int(seed), "shuffle_intensities": bool(shuffle_intensities),
               "jitter": model.jitter, "smooth_degree": int(smooth_degree), "profile": model.profile_source,
               "cells_options": job.cells_options,
               "fit_options": {k: v for k, v in job.fit_options.items() if k != "prior_knowledge"}}
    return InstrumentNull(
        names=names, grid_ij=table[["i", "j"]].to_numpy(dtype=np.int64),
        observed=table[list(names)].to_numpy(dtype=float), null_data=np.stack([o["data"] for o in outs]),
        fit_names=tuple(job.fit_options["variables"]), adjacency=np.stack([o["adjacency"] for o in outs]),
        significant=np.stack([o["significant"] for o in outs]),
        sliding_adjacency=None if sliding is None else np.stack([o["sliding_adjacency"] for o in outs]),
        sliding_significant=None if sliding is None else np.stack([o["sliding_significant"] for o in outs]),
        sliding_params=_null_sliding_params(job, sliding, table), model=model.summary(), options=options,
        provenance=make_provenance("instrument_null", options, seed=int(seed),
                                   inputs={"cells": getattr(cells, "provenance", {}) or {}}),
    )


def _checked_null_args(n_images, seed, workers) -> int:
    """Check the counts and the seed of :func:`instrument_null`; returns ``workers`` (default: the CPUs)."""
    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)) or n_images < 5:
        raise ValueError(f"n_images must be a whole number >= 5 (20 recommended), got {n_images!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a whole number >= 0 (the same seed gives the same null), got {seed!r}")
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    return workers


def _null_sliding_params(job: _Job, sliding, table: pd.DataFrame) -> dict | None:
    """The sliding fit's parameters the null's windows were made with (None without a sliding result)."""
    if sliding is None:
        return None
    params = {k: v for k, v in job.sliding_options.items() if not k.startswith("_") and k != "prior_knowledge"}
    params["grid_origin_ij"] = list(sliding.provenance.get("params", {}).get(
        "grid_origin_ij", [int(table["i"].min()), int(table["j"].min())]))
    return params
