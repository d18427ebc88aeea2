"""Filling empty lattice sites next to found columns, and dropping fits that do not look like atom columns."""

from __future__ import annotations

import numpy as np

from .gaussians import _refine_split
from .geometry import _dual, _Grid
from .result import Refined


#: A column predicted at an empty lattice site is kept when its Gaussian fit reaches this R^2.
_FILL_QUALITY = 0.2
#: A column fainter than this fraction of its sublattice's median Gaussian volume and with a fit R^2
#: below ``_FILL_QUALITY`` is dropped as noise.
_FAINT = 0.3
#: Rounds of filling empty lattice sites next to found columns (each round grows into a hole by one site).
_FILL_PASSES = 3


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
