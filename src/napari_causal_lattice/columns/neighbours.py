"""The neighbour-aware fit: every column refitted with its neighbours' modelled contributions (column profile:
Gaussian core + tail per sublattice) removed, weighted by a fitted pixel-noise model.

Also the "ghost" sites (lattice sites next to the found columns without a fitted column) that enter the model
image, so columns at the image border or at a specimen edge see all their neighbours modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial import cKDTree

from .. import _gaussfit
from ..profile import estimate_profile
from ..progress import report
from .gaussians import _CHUNK
from .geometry import _dual, _Grid, _suppress_duplicates
from .result import Refined, _add_scan_sigma, _isotropic, _per_axis


#: A column the neighbour-aware fit moves farther than this fraction of the fit radius from its Gaussian fit
#: keeps the Gaussian-fit position (see _profile_refine).
_PROFILE_MAX_SHIFT = 0.25
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
    fit = _start(refined, sub, profile)
    ghost = _kept_ghosts(ghosts, sub)
    columns_only = None
    if len(ghost.pos):  # before the first round, so no round starts from a model with guessed empty sites
        columns_only = profile.render(image.shape, fit.pos, sub, profile.volume(fit.amp, sub), background=False)
        ghost.fit = _ghost_amplitudes(np.subtract(image, columns_only), ghost.pos, np.zeros(len(ghost.pos)),
                                      profile.shape_arrays(ghost.sub)[0], radius)
    for k in range(rounds):
        last = k == rounds - 1
        ghost_amp = ghost.amplitudes(fit.amp, sub)
        if k == 0 and columns_only is not None:  # the columns have not moved yet: only the ghosts are new
            model = columns_only + profile.render(image.shape, ghost.pos, ghost.sub,
                                                  profile.volume(ghost_amp, ghost.sub), background=False)
        else:
            model = profile.render(image.shape, np.concatenate([fit.pos, ghost.pos]),
                                   np.concatenate([sub, ghost.sub]),
                                   profile.volume(np.concatenate([fit.amp, ghost_amp]),
                                                  np.concatenate([sub, ghost.sub])), background=False)
        residual = np.subtract(image, model)
        _profile_round(residual, model, fit, profile.shape_arrays(sub)[0], radius, last, cancel)
        if len(ghost.pos) and not last:
            ghost.fit = _ghost_amplitudes(residual, ghost.pos, ghost_amp, profile.shape_arrays(ghost.sub)[0], radius)
    volume = _keep_gaussian_where_lost(fit, refined, sub, ghost, profile.volume(fit.amp, sub), radius, max_shift)
    if fit.noise is not None:
        profile = replace(profile, noise_gain=fit.noise[0], read_variance=fit.noise[1],
                          background=float(np.median(fit.bg[np.isfinite(fit.bg)])) if np.isfinite(fit.bg).any()
                          else 0.0)
    # quality stays the Gaussian fit's R^2 (how column-like the patch looks); the profile fit's R^2 on the
    # neighbour-subtracted patch would measure something else
    out = Refined(fit.pos, refined.width.copy(), volume, refined.quality.copy(), fit.spread)
    return _add_scan_sigma(out, scan_sigma), profile


@dataclass
class _ProfileFit:
    """The state of the neighbour-aware fit, updated in place round by round (one row per column)."""

    pos: np.ndarray  #: (N, 2) centres (y, x) px
    amp: np.ndarray  #: (N,) core peak amplitudes
    bg: np.ndarray  #: (N,) local backgrounds
    spread: np.ndarray  #: (N, 2) position sigmas per axis px (NaN until the last round)
    noise: tuple | None = None  #: (gain, read variance) of the pixel noise, fitted after the first round


@dataclass
class _Ghosts:
    """The ghost sites the model image holds: positions (M, 2) px, labels (M,) and fitted amplitudes (M,) (NaN
    where the image does not show the site)."""

    pos: np.ndarray
    sub: np.ndarray
    fit: np.ndarray

    def amplitudes(self, amp, sub) -> np.ndarray:
        """(M,) amplitudes of the ghosts in the model: the fitted ones, else their sublattice's median of ``amp``."""
        return np.where(np.isfinite(self.fit), self.fit, _sublattice_medians(amp, sub, self.sub))


def _sublattice_medians(amp, sub, labels) -> np.ndarray:
    """(M,) median of ``amp`` (N,) over the columns of each sublattice in ``labels`` (M,) (``sub``: (N,) labels)."""
    out = np.empty(len(labels))
    for label in np.unique(labels):
        out[labels == label] = np.median(amp[sub == label])
    return out


def _start(refined: Refined, sub, profile) -> _ProfileFit:
    """The fit's starting state: the Gaussian fits' centres, their peaks shared out between core and tail, and the
    profile's background."""
    core, ratio, _ = profile.shape_arrays(sub)
    peak = refined.intensity / (2.0 * np.pi * np.where(np.isfinite(refined.width), refined.width, core) ** 2)
    amp = np.where(np.isfinite(peak) & (peak > 0), peak / (1.0 + ratio), 0.0)
    n = len(sub)
    return _ProfileFit(refined.positions.copy(), amp, np.full(n, profile.background), np.full((n, 2), np.nan))


def _kept_ghosts(ghosts, sub) -> _Ghosts:
    """The ghost sites (positions, labels) of a sublattice the columns have, amplitudes not yet fitted."""
    ghost_pos, ghost_sub = (np.empty((0, 2)), np.empty(0, "<U1")) if ghosts is None else ghosts
    keep = np.isin(ghost_sub, np.unique(sub))
    return _Ghosts(ghost_pos[keep], ghost_sub[keep], np.full(int(keep.sum()), np.nan))


def _profile_round(residual, model, fit: _ProfileFit, core, radius, last: bool, cancel) -> None:
    """One Jacobi sweep: every column refitted on ``residual`` plus its own core (centre, amplitude, width and
    background free), chunk by chunk, all from the round's starting state.  The last round computes the position
    sigmas; the first (without a noise model yet) fits the pixel-noise model to its residuals."""
    free = (True, True, True, _PROFILE_FREE_WIDTH, True)
    signals, residuals, dof_scale = [], [], []
    start_state = (fit.pos.copy(), fit.amp.copy(), fit.bg.copy())
    n = len(fit.amp)
    for start in range(0, n, _CHUNK):
        sel = slice(start, min(start + _CHUNK, n))
        values, yy, xx, mask, signal, weights = _profile_patches(residual, model, start_state, core, sel, radius,
                                                                 fit.noise)
        p0 = np.column_stack([fit.amp[sel], fit.pos[sel], core[sel], fit.bg[sel]])
        params = _gaussfit.fit_gaussians(values, yy, xx, mask, p0, radius=radius, free=free, weights=weights)[0]
        if last:
            fit.spread[sel] = _gaussfit.position_sigma(values, yy, xx, mask, params, weights=weights, free=free,
                                                       axes=True)
        elif fit.noise is None:
            fitted = params[:, 4:5] + params[:, :1] * np.exp(
                -((yy - params[:, 1:2]) ** 2 + (xx - params[:, 2:3]) ** 2) / (2.0 * params[:, 3:4] ** 2))
            signals.append((signal - fit.bg[sel, None] + params[:, 4:5])[mask])
            residuals.append((values - fitted)[mask])
            dof_scale.append(mask.sum() / max(mask.sum() - 4.0 * mask.shape[0], 1.0))
        fit.amp[sel], fit.pos[sel], fit.bg[sel] = params[:, 0], params[:, 1:3], params[:, 4]
        report(None, 0, 1, cancel)
    if fit.noise is None and signals:
        fit.noise = _noise_model(np.concatenate(signals), np.concatenate(residuals), float(np.mean(dof_scale)))


def _keep_gaussian_where_lost(fit: _ProfileFit, refined: Refined, sub, ghost: _Ghosts, volume, radius,
                              max_shift) -> np.ndarray:
    """Columns the profile fit does not describe keep their Gaussian fit (position, sigma and volume, written
    into ``fit`` and ``volume``): moved more than ``max_shift`` x ``radius``, a sigma grown more than
    ``_PROFILE_MAX_SIGMA_GAIN`` times, or within 2.4 ``radius`` of a ghost that is only guessed.  Returns the
    volumes (N,).

    A Gaussian volume is not a core volume of the profile (on SrTiO3 [110] the A cores hold 0.51 of their
    Gaussian volume, on PTO/SRO 0.96), so a kept Gaussian volume is put on the profile's scale with the median
    ratio of the two over the other columns of its sublattice (left as it is when no column of the sublattice
    kept its profile fit).  Without it the intensities of the columns at the image edges, which keep their
    Gaussian fits, read 2x those of the rest on SrTiO3."""
    pos, spread, amp = fit.pos, fit.spread, fit.amp
    lost = ~(np.hypot(*(pos - refined.positions).T) <= max_shift * radius)
    lost |= _isotropic(spread) > _PROFILE_MAX_SIGMA_GAIN * _isotropic(refined.sigma)
    guessed = ~(ghost.fit < _GHOST_EMPTY * _sublattice_medians(amp, sub, ghost.sub))
    if guessed.any():  # next to a column that is only guessed (median amplitude beyond the border, or a site the
        # image shows a column at but the search did not find), the neighbour model is not known well enough
        lost |= cKDTree(ghost.pos[guessed]).query(pos)[0] < 2.4 * radius
    pos[lost], volume[lost] = refined.positions[lost], refined.intensity[lost] * _profile_scale(volume, refined,
                                                                                              sub, lost)[lost]
    spread[lost] = _per_axis(refined.sigma)[lost]
    return volume


def _profile_scale(volume, refined: Refined, sub, lost) -> np.ndarray:
    """(N,) median ratio of profile core volume to Gaussian volume over the columns of each one's sublattice that
    keep their profile fit (``~lost``, finite positive volumes); 1 for a sublattice without such columns."""
    scale = np.ones(len(volume))
    ratio = volume / refined.intensity
    for label in np.unique(sub):
        rows = sub == label
        usable = rows & ~lost & np.isfinite(ratio) & (ratio > 0)
        if usable.any():
            scale[rows] = np.median(ratio[usable])
    return scale


def _ghost_amplitudes(residual, ghost_pos, ghost_amp, core, radius, *, min_share: float = _GHOST_MIN_SHARE):
    """Core peak amplitudes (M,) of the ghost sites the image shows, NaN for the others.

    A ghost whose fit disk lies at least ``min_share`` inside the image is fitted like a column (its own core
    added back to the residual image, amplitude and local background by linear least squares, centre and width
    fixed at the lattice site and the profile's core) and clipped at 0: a crystal that ends inside the image (a
    vacuum margin, a specimen edge) leaves its empty sites empty, and columns cut by the border get their own
    intensity instead of the median.  Sites farther out stay unknown (the caller's median).
    """
    flat, _, _, mask, r2 = _gaussfit.patch_layout(residual.shape, ghost_pos, radius)
    g = np.exp(-r2 / (2.0 * core[:, None] ** 2))
    values = _gaussfit.gather(residual, flat) + ghost_amp[:, None] * g
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
    flat, yy, xx, mask, r2 = _gaussfit.patch_layout(residual.shape, pos[sel], radius)
    values = _gaussfit.gather(residual, flat) + amp[sel, None] * np.exp(-r2 / (2.0 * core[sel, None] ** 2))
    signal = _gaussfit.gather(model, flat) + bg[sel, None]
    weights = None if noise is None else 1.0 / np.maximum(noise[0] * np.maximum(signal, 0) + noise[1], 1e-300)
    return values, yy, xx, mask, signal, weights


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
