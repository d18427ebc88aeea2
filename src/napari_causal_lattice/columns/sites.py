"""Where the columns sit in the cell: candidate maxima, motif sites (A, B), the crystal projection, and the A/B
sublattice of each column."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import _fftlattice
from ..lattice import Lattice, index_lattice
from ..motif import Motif, get_motif, motif_from_offset, unsupported_offset_message
from .gaussians import _minus_model, _refine
from .geometry import WALK_TOLERANCE, _dual, _Grid, _suppress_duplicates, _torus_diff


def _window_min(image: np.ndarray, iy: np.ndarray, ix: np.ndarray, half: int, *, chunk: int = 1 << 16) -> np.ndarray:
    """(N,) minimum of ``image`` over the square of ``2 half + 1`` px per side centred on each pixel (iy, ix) (N,),
    edges held (``ndimage.minimum_filter(image, 2 half + 1, mode="nearest")`` at those pixels, without filtering
    the whole image); ``chunk`` pixels at a time (bounds the memory)."""
    ny, nx = image.shape
    steps = np.arange(-half, half + 1)
    flat = np.ascontiguousarray(image).reshape(-1)
    out = np.empty(len(iy), dtype=image.dtype)
    for start in range(0, len(iy), chunk):
        rows = np.clip(iy[start : start + chunk, None] + steps, 0, ny - 1)
        cols = np.clip(ix[start : start + chunk, None] + steps, 0, nx - 1)
        out[start : start + chunk] = flat.take(rows[:, :, None] * nx + cols[:, None, :]).min(axis=(1, 2))
    return out


def _local_maxima(smooth: np.ndarray, min_distance: int) -> np.ndarray:
    """(N, 2) yx px of the pixels that are the maximum of the square of ``2 min_distance + 1`` px around them and
    above its minimum (not on a plateau)."""
    half = max(min_distance, 1)
    iy, ix = np.nonzero(ndimage.maximum_filter(smooth, size=2 * half + 1, mode="nearest") == smooth)
    peaks = smooth[iy, ix] > _window_min(smooth, iy, ix, half)
    return np.column_stack([iy[peaks], ix[peaks]]).astype(float)


def _candidates(smooth: np.ndarray, d_min: float):
    """Local maxima (N, 2) yx px of a smoothed image, their values (N,) and prominences (N,) over the local
    minimum within half a cell."""
    cand = _local_maxima(smooth, int(0.25 * d_min))
    ci, cj = cand[:, 0].astype(int), cand[:, 1].astype(int)
    bright = smooth[ci, cj]
    prominence = bright - _window_min(smooth, ci, cj, int(0.5 * d_min))
    return cand, bright, prominence


def _half_offset(site_a, site_b):
    """Offset (2,) of ``site_b`` from ``site_a`` rounded to 0 or 1/2 per lattice vector, or None when it is not
    half a cell (within 0.15) along at least one of them."""
    offset = _torus_diff(site_b, site_a)
    half = np.abs(np.rint(2 * offset) / 2)
    if np.abs(np.abs(offset) - half).max() > 0.15 or not half.any():
        return None
    return half


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


def _classify_parity(positions, brightness, v1, v2, c1, c2, *, b_brighter: bool):
    """A/B label per column from its place on the lattice of all columns: 1 = A, 0 = B, -1 = isolated.

    Columns are indexed by walking the all-column lattice (``c1``, ``c2``); the index parity tells the
    two sublattices apart, whatever the local contrast.  In each connected patch the brighter parity
    class (mean brightness) is A, or B when ``b_brighter``.
    """
    ij, component = index_lattice(positions, c1, c2, tolerance=WALK_TOLERANCE, extra_steps=(v1, v2))[:2]
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


def _select_columns(cand, bright, prominence, frac, sites, shape, grid: _Grid, b_brighter):
    """Stage 4: candidates on the two sites, inside the image by the fit radius, deduplicated and labelled A/B.

    Returns positions (N, 2) px, is_a (N,) bool, grid indices ij (N, 2) and patch labels (N,).
    """
    on_site = np.zeros(len(cand), dtype=bool)
    for site in sites:
        members = np.abs(_torus_diff(frac, site)).max(axis=1) < 0.18
        on_site |= members & (prominence >= 0.3 * np.median(prominence[members]))
    ny, nx = shape
    radius = grid.radius
    inside = (cand[:, 0] >= radius) & (cand[:, 0] <= ny - 1 - radius)
    inside &= (cand[:, 1] >= radius) & (cand[:, 1] <= nx - 1 - radius)
    sel = np.flatnonzero(on_site & inside)
    sel = sel[_suppress_duplicates(cand[sel], bright[sel], 0.5 * grid.d_nn)]
    positions = cand[sel]
    label, ij, component = _classify_parity(positions, bright[sel], grid.v1, grid.v2, grid.c1, grid.c2,
                                             b_brighter=b_brighter)
    keep = label >= 0
    positions, is_a, ij, component = positions[keep], label[keep] == 1, ij[keep], component[keep]
    if not is_a.any() or is_a.all():
        raise ValueError(
            "could not tell the A and B columns apart (no connected patch holds both); try a less noisy image "
            "or give the A-A spacing explicitly"
        )
    return positions, is_a, ij, component


def _b_site_of_positions(b_pos: np.ndarray, lattice: Lattice):
    """Circular-mean offset (2,) of B positions in the A cell, fractions of ``(v1, v2)``; None without B."""
    if len(b_pos) == 0:
        return None
    frac = lattice.to_grid(b_pos)[:, ::-1]
    phase = np.angle(np.exp(2j * np.pi * frac).mean(axis=0))
    return (phase / (2 * np.pi)) % 1.0
