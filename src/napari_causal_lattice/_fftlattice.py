"""Lattice spacing and orientation from the Fourier transform, and local lattice phases.

Frequencies are in cycles per px as (ky, kx); a reciprocal vector ``g`` is dual to a real
lattice vector ``v`` (px) when ``g . v = 1``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

#: Bragg peaks must stand this many times above the median power of their frequency ring.
PEAK_RATIO = 60.0
#: A half-order superlattice peak (A/B contrast) must stand this many times above its ring median...
SUPERLATTICE_RATIO = 25.0
#: ... and carry at least this fraction of the strongest Bragg peak's power (weaker ones, such as
#: octahedral-tilt superstructure reflections, do not change the cell).
SUPERLATTICE_POWER = 0.02


def _gauss_reduce(b1: np.ndarray, b2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange-Gauss reduction of a 2D basis: shortest pair of vectors spanning the same lattice."""
    b1, b2 = np.array(b1, float), np.array(b2, float)
    if b1 @ b1 > b2 @ b2:
        b1, b2 = b2, b1
    for _ in range(100):
        mu = np.rint((b1 @ b2) / (b1 @ b1))
        b2 = b2 - mu * b1
        if b2 @ b2 >= b1 @ b1:
            break
        b1, b2 = b2, b1
    return b1, b2


def _fast_size_below(n: int, cap: int = 1024) -> int:
    """Largest FFT-friendly size (2^a 3^b 5^c) not above ``min(n, cap)``."""
    best = 1
    limit = min(n, cap)
    p2 = 1
    while p2 <= limit:
        p3 = p2
        while p3 <= limit:
            p5 = p3
            while p5 <= limit:
                best = max(best, p5)
                p5 *= 5
            p3 *= 3
        p2 *= 2
    return best


def _median(values: np.ndarray) -> float:
    """``np.median`` of a 1D float array (NaN when it holds one), 0 when empty, without its per-call overhead."""
    n = len(values)
    if n == 0:
        return 0.0
    k = n // 2
    part = np.partition(values, (k - 1, k, n - 1) if n % 2 == 0 else (k, n - 1))
    if np.isnan(part[-1]):
        return np.nan
    return float(part[k]) if n % 2 else float((part[k - 1] + part[k]) / 2)


def _spectrum(image: np.ndarray):
    sy, sx = (_fast_size_below(s) for s in image.shape)
    y0, x0 = (image.shape[0] - sy) // 2, (image.shape[1] - sx) // 2
    image = image[y0 : y0 + sy, x0 : x0 + sx]
    ny, nx = image.shape
    win = np.outer(np.hanning(ny), np.hanning(nx))
    power = np.abs(np.fft.fft2((image - image.mean()) * win)) ** 2
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    k = np.hypot(ky, kx)
    step = 1.0 / min(ny, nx)
    ring = np.minimum((k / step).astype(np.int64), int(0.75 / step) + 1)
    medians = np.zeros(ring.max() + 1)
    # a stable sort of the smallest integer type is a radix sort (the medians do not depend on the order)
    order = np.argsort(ring.astype(np.min_scalar_type(ring.max())), axis=None, kind="stable")
    flat_pow = power.ravel()[order]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(ring.ravel(), minlength=ring.max() + 1))])
    for r in range(ring.max() + 1):
        medians[r] = _median(flat_pow[bounds[r] : bounds[r + 1]])
    floor = max(np.median(power), 1e-300) * 1e-6
    ratio = power / np.maximum(medians[ring], floor)
    return power, ratio, ky, kx, k


def _peak_position(power: np.ndarray, iy: int, ix: int) -> np.ndarray:
    """Sub-bin (ky, kx) of a spectral peak: power-weighted centroid of its 3x3 neighbourhood."""
    ny, nx = power.shape
    dy, dx = np.mgrid[-1:2, -1:2]
    w = power[(iy + dy) % ny, (ix + dx) % nx]
    fy = np.fft.fftfreq(ny)[iy] + (w * dy).sum() / w.sum() / ny
    fx = np.fft.fftfreq(nx)[ix] + (w * dx).sum() / w.sum() / nx
    return np.array([fy, fx])


def _find_peaks(power, ratio, k, kmin, threshold):
    ny, nx = power.shape
    ky = np.fft.fftfreq(ny)[:, None] * np.ones((1, nx))
    kx = np.fft.fftfreq(nx)[None, :] * np.ones((ny, 1))
    half = (ky > 0) | ((ky == 0) & (kx > 0))
    iy, ix = np.nonzero(half & (ratio > threshold) & (k > kmin) & (k < 0.45))
    # local maxima of the ratio over 5 x 5 bins (wrapped), tested at these bins only
    steps = np.arange(-2, 3)
    window = ratio[((iy[:, None] + steps) % ny)[:, :, None], ((ix[:, None] + steps) % nx)[:, None, :]]
    local = window.max(axis=(1, 2)) == ratio[iy, ix]
    iy, ix = iy[local], ix[local]
    order = np.argsort(-power[iy, ix])
    iy, ix = iy[order], ix[order]
    g = np.array([_peak_position(power, a, b) for a, b in zip(iy, ix)]).reshape(-1, 2)
    return g, power[iy, ix], ratio[iy, ix]


def _has_peak_near(power: np.ndarray, ratio: np.ndarray, g: np.ndarray, min_power: float) -> bool:
    ny, nx = ratio.shape
    if np.hypot(*g) >= 0.45:
        return False
    iy, ix = int(np.rint(g[0] * ny)), int(np.rint(g[1] * nx))
    dy, dx = np.mgrid[-1:2, -1:2]
    sel = ((iy + dy) % ny, (ix + dx) % nx)
    return bool(np.any((ratio[sel] > SUPERLATTICE_RATIO) & (power[sel] > min_power)))


def _superlattice_seen(power, ratio, half, ga, gb, kmin, min_power) -> bool:
    """True when at least 2 of the 4 shortest (sign-distinct) members of a half-order coset show a peak.

    Requiring two members rejects broad low-frequency content that happens to sit at one of them.
    """
    reps = {}
    for m in range(-2, 3):
        for n in range(-2, 3):
            g = half + m * ga + n * gb
            if g[0] < 0 or (g[0] == 0 and g[1] < 0):
                g = -g
            norm = np.hypot(*g)
            if norm > kmin:
                reps[(round(g[0], 9), round(g[1], 9))] = (norm, g)
    shortest = sorted(reps.values(), key=lambda item: item[0])[:4]
    hits = sum(_has_peak_near(power, ratio, g, min_power) for _, g in shortest)
    return hits >= 2


def estimate_lattice(image: np.ndarray, *, min_period: float | None = None, max_period: float | None = None):
    """Primitive lattice of a periodic image from its power spectrum.

    The two strongest non-collinear Bragg peaks give a first reciprocal basis; half-order
    superlattice peaks (e.g. from A/B contrast in a perovskite) then make the cell primitive.

    Parameters
    ----------
    image : (H, W) float array
    min_period, max_period : float, optional
        Only Fourier peaks with periods (px) in this range are considered.

    Returns
    -------
    (2, 2) float array
        Real-space basis vectors (rows, (y, x) in px), Gauss-reduced.

    Raises
    ------
    ValueError
        When fewer than two non-collinear Bragg peaks stand out of the noise.
    """
    power, ratio, _, _, k = _spectrum(image)
    kmin = 1.5 / min(power.shape)
    if max_period is not None:
        kmin = max(kmin, 1.0 / max_period)
    ratio = np.where(k < (1.0 / min_period if min_period else np.inf), ratio, 0.0)
    g, strength, _ = _find_peaks(power, ratio, k, kmin, PEAK_RATIO)
    if len(g) < 2:
        raise ValueError(_no_lattice_message(len(g)))
    ga = g[0]
    norms = np.hypot(g[:, 0], g[:, 1])
    sines = np.abs(g[:, 0] * ga[1] - g[:, 1] * ga[0]) / (norms * norms[0])
    others = np.flatnonzero(sines > 0.25)
    if others.size == 0:
        raise ValueError(_no_lattice_message(1))
    gb = g[others[0]]
    ga, gb = _gauss_reduce(ga, gb)
    for _ in range(3):
        found = None
        for half in (0.5 * ga, 0.5 * gb, 0.5 * (ga + gb)):
            if _superlattice_seen(power, ratio, half, ga, gb, kmin, SUPERLATTICE_POWER * strength[0]):
                found = half
                break
        if found is None:
            break
        pairs = [(ga, found), (gb, found)]
        dets = [abs(a[0] * b[1] - a[1] * b[0]) for a, b in pairs]
        ga, gb = _gauss_reduce(*pairs[int(np.argmax(dets))])
    basis = np.linalg.inv(np.stack([ga, gb]))  # columns are the dual real vectors
    a1, a2 = _gauss_reduce(basis[:, 0], basis[:, 1])
    return np.stack([a1, a2])


def _no_lattice_message(n_peaks: int) -> str:
    return (
        "no periodic lattice found: the Fourier transform shows "
        f"{'no' if n_peaks == 0 else 'only one direction of'} Bragg peaks above the noise. "
        "Check that the layer is an atomically resolved image with at least 3x3 unit cells; try cropping to the "
        "crystalline region, binning or averaging noisy frames, or give the lattice spacing explicitly."
    )


def orient_basis(basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``v1`` (closest to image +x) and ``v2`` (closest to image +y) among +-basis vectors.

    Returns
    -------
    v1, v2 : (2,) float arrays, (y, x) in px.
    """
    cands = np.concatenate([basis, -basis])
    unit = cands / np.hypot(cands[:, 0], cands[:, 1])[:, None]
    k1 = int(np.argmax(unit[:, 1]))
    v1 = cands[k1]
    rest = [k for k in range(4) if k % 2 != k1 % 2]
    k2 = max(rest, key=lambda k: unit[k, 0])
    return v1, cands[k2]


def _full_spectrum_band(half: np.ndarray, rows: np.ndarray, cols: np.ndarray, nx: int) -> np.ndarray:
    """Values of the full 2D spectrum at ``rows`` x ``cols`` (indices mod the padded shape) from ``rfft2``'s
    half spectrum ``half``, using ``F(-k) = conj(F(k))`` of a real image for the columns it leaves out."""
    ny = half.shape[0]
    stored = cols <= nx // 2
    band = np.empty((len(rows), len(cols)), dtype=np.complex128)
    band[:, stored] = half[np.ix_(rows, cols[stored])]
    band[:, ~stored] = np.conj(half[np.ix_((-rows) % ny, (nx - cols[~stored]) % nx)])
    return band


def local_phases(image: np.ndarray, gs: np.ndarray, points: np.ndarray, *, bandwidth: float = 0.25) -> np.ndarray:
    """Local lattice phase of each reciprocal vector at each point, as fractions of a cycle in [0, 1).

    A Gaussian mask of width ``bandwidth * |g|`` around each Bragg peak ``g`` (geometric phase
    analysis) gives a complex image whose argument at ``r`` is ``2 pi g . (r - R0(r))`` with ``R0``
    the local lattice origin, so the result follows slow lattice distortions and rotations.  The
    band around ``g`` is demodulated and inverse-transformed on a small grid, then interpolated.

    Parameters
    ----------
    image : (H, W) float array
    gs : (K, 2) float array
        Reciprocal vectors (ky, kx) in cycles/px.
    points : (N, 2) float array
        Positions (y, x) in px.

    Returns
    -------
    (N, K) float array
        Fractional coordinates along each ``g``, in [0, 1).
    """
    ny, nx = (sp_fft.next_fast_len(int(s)) for s in image.shape)
    # numpy.fft, not scipy.fft: scipy.fft's dispatch crashed (segfault) in a napari worker thread once an
    # earlier worker had imported it (Descriptors then Compare widget in one session)
    # the half spectrum of a float32 copy (4 + 4 bytes per pixel instead of 8 + 32): phases to ~1e-6 of a cycle
    spec = np.fft.rfft2(np.subtract(image, image.mean(), dtype=np.float32), s=(ny, nx))
    out = np.empty((len(points), len(gs)))
    for col, g in enumerate(gs):
        width = bandwidth * np.hypot(*g)
        cy, cx = int(np.rint(g[0] * ny)), int(np.rint(g[1] * nx))
        hy, hx = int(np.ceil(4 * width * ny)), int(np.ceil(4 * width * nx))
        dy, dx = np.arange(-hy, hy + 1), np.arange(-hx, hx + 1)
        fy = ((cy + dy) / ny)[:, None]
        fx = ((cx + dx) / nx)[None, :]
        band = _full_spectrum_band(spec, (cy + dy) % ny, (cx + dx) % nx, nx)
        band = band * np.exp(-((fy - g[0]) ** 2 + (fx - g[1]) ** 2) / (2 * width**2))
        ly, lx = 4 * (2 * hy + 1), 4 * (2 * hx + 1)
        small = np.zeros((ly, lx), dtype=complex)
        small[np.ix_(dy % ly, dx % lx)] = band
        demod = np.fft.ifft2(small)
        coords = np.stack([points[:, 0] * ly / ny, points[:, 1] * lx / nx])
        re = ndimage.map_coordinates(demod.real, coords, order=1, mode="grid-wrap")
        im = ndimage.map_coordinates(demod.imag, coords, order=1, mode="grid-wrap")
        carrier = cy * points[:, 0] / ny + cx * points[:, 1] / nx
        out[:, col] = np.mod(np.arctan2(im, re) / (2 * np.pi) + carrier, 1.0)
    return out
