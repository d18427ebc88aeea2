"""Batched Gaussian fits of atom columns and peeling (each sublattice refitted on the image minus the other's
fitted Gaussians).

A fit is one isotropic Gaussian plus a constant per column on a disk of ``radius`` px; intensities are Gaussian
volumes ``2 pi amp sigma^2`` (image units x px^2) unless a disk sum is asked for.
"""

from __future__ import annotations

import numpy as np

from .. import _gaussfit
from ..progress import report
from .result import Refined


#: Columns refined per progress/cancel checkpoint.
_CHUNK = 1024
#: Rounds of refitting the A columns on the image without the B Gaussians before the final B fit (see _peel).
_PEEL_ROUNDS = 1
#: Peeled Gaussians are drawn out to this many sigma.
_PEEL_REACH = 4.0
#: Columns whose fitted width (volume) exceeds this (squared) times their sublattice's median are not peeled.
_PEEL_OUTLIER = 1.5


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
        values, yy, xx, mask, dist2 = _patches(image, centres, radius)
        p0 = _gaussfit.initial_guess(values, yy, xx, mask, centres, radius, r2=dist2)
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


def _patches(image, centres, radius):
    """The patches of :func:`~napari_causal_lattice._gaussfit.extract_patches` around ``centres`` (N, 2) px and each
    pixel's squared distance (N, M) px^2 from its centre."""
    flat, yy, xx, mask, dist2 = _gaussfit.patch_layout(image.shape, centres, radius)
    return _gaussfit.gather(image, flat), yy, xx, mask, dist2


def _refit(image, refined: Refined, rows, radius, cancel, *, sigma: bool = False) -> Refined:
    """``refined`` with the columns ``rows`` (bool mask) refitted on ``image``, starting from their current fit
    (their position sigmas computed when ``sigma``, else NaN)."""
    idx = np.flatnonzero(rows)
    out = [np.array(arr, copy=True) for arr in refined]
    for start in range(0, len(idx), _CHUNK):
        sel = idx[start : start + _CHUNK]
        centres = refined.positions[sel]
        values, yy, xx, mask, dist2 = _patches(image, centres, radius)
        p0 = _gaussfit.initial_guess(values, yy, xx, mask, centres, radius, r2=dist2)
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


def _minus_model(image, refined: Refined, rows) -> np.ndarray:
    """``image`` minus the fitted Gaussians of the columns ``rows``, written over the model's own buffer."""
    model = _gaussian_model(image.shape, refined, rows)
    return np.subtract(image, model, out=model)


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


def _disk_sum(image, positions, radius) -> np.ndarray:
    """(N,) raw sum of the pixels within ``radius`` px of each position."""
    values, _, _, mask = _gaussfit.extract_patches(image, np.asarray(positions, float).reshape(-1, 2), radius)
    return np.where(mask, values, 0.0).sum(axis=1)
