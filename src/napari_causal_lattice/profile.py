"""Column profile: the shape of an atom column in the image, per sublattice, and the model image it makes.

A column of sublattice ``s`` with intensity ``I`` at ``(y0, x0)`` is modelled as a Gaussian core plus a wider
Gaussian tail (real probes have tails, which reach into the neighbouring columns)::

    f(r) = amp * (exp(-r^2 / (2 core^2)) + ratio * exp(-r^2 / (2 tail^2))),
    I    = 2 pi amp core^2                            (the core's volume, image units * px^2)

``core`` and ``tail`` are standard deviations in px, ``ratio`` the tail peak over the core peak.  The intensity is the core's volume, the quantity a
Gaussian fit measures, so it stays comparable with pure-Gaussian fits and does not depend on how a faint tail
is told apart from the background.  The profile is
estimated from the image (:func:`estimate_profile`); :meth:`ColumnProfile.render` re-draws the model image, with
scan-line shifts when given, so an instrument null can re-render images from what the fit learned.  Besides the
shape, the profile records the image background and a noise model (pixel variance ``gain * signal +
read_variance``), estimated by the column fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._gaussfit import STAMP_BATCH, add_stamps, stamp_band
from ._warn import warn

__all__ = ["ColumnProfile", "estimate_profile"]

#: Profiles are drawn out to this many (largest) sigma.
RENDER_REACH = 4.0
#: Wide tails (drawn by convolution) are drawn out to this many tail sigma (the rest is < 1.2 % of the tail's
#: peak, itself a fraction of the column's).
TAIL_REACH = 3.0


@dataclass(frozen=True)
class ColumnProfile:
    """Core + tail Gaussian profile of the A and B columns (module docstring gives the model).

    Parameters
    ----------
    core_a, core_b : float
        Core sigma of the A / B columns, px.
    tail_ratio_a, tail_ratio_b : float
        Tail peak over core peak, >= 0 (0 = pure Gaussian columns).
    tail_a, tail_b : float
        Tail sigma of the A / B columns, px (>= the core sigma).
    background : float
        Uniform image background, image units (added by :meth:`render` with ``background=True``).
    noise_gain : float
        Pixel variance per unit of signal above zero (counting noise; ~1 for images in electron counts).
    read_variance : float
        Pixel variance independent of the signal (read-out noise), image units squared.
    """

    core_a: float
    core_b: float
    tail_ratio_a: float = 0.0
    tail_ratio_b: float = 0.0
    tail_a: float = 1.0
    tail_b: float = 1.0
    background: float = 0.0
    noise_gain: float = 0.0
    read_variance: float = 0.0

    def __post_init__(self):
        for name, value in asdict(self).items():
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f"ColumnProfile.{name} must be finite, got {value!r}")
            object.__setattr__(self, name, value)
        for name in ("core_a", "core_b", "tail_a", "tail_b"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ColumnProfile.{name} must be a positive width in px, got {getattr(self, name)}")
        for name in ("tail_ratio_a", "tail_ratio_b", "noise_gain", "read_variance"):
            if getattr(self, name) < 0:
                raise ValueError(f"ColumnProfile.{name} must be >= 0, got {getattr(self, name)}")

    def of(self, sublattice: str) -> tuple[float, float, float]:
        """``(core sigma px, tail ratio, tail sigma px)`` of ``"A"`` or ``"B"``."""
        if sublattice == "A":
            return self.core_a, self.tail_ratio_a, self.tail_a
        if sublattice == "B":
            return self.core_b, self.tail_ratio_b, self.tail_b
        raise ValueError(f"sublattice must be 'A' or 'B', got {sublattice!r}")

    def shape_arrays(self, sublattice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per column (N,) arrays of core sigma, tail ratio and tail sigma for labels ``sublattice`` (N,)."""
        is_a = np.asarray(sublattice).astype(str) == "A"
        pick = np.where
        return (pick(is_a, self.core_a, self.core_b), pick(is_a, self.tail_ratio_a, self.tail_ratio_b),
                pick(is_a, self.tail_a, self.tail_b))

    def peak(self, intensity, sublattice) -> np.ndarray:
        """Core peak amplitude ``amp`` (N,) of columns of (core) volume ``intensity`` (N,)."""
        core = self.shape_arrays(sublattice)[0]
        return np.asarray(intensity, dtype=float) / (2.0 * np.pi * core**2)

    def volume(self, amp, sublattice) -> np.ndarray:
        """Core volume (N,) of columns of core peak ``amp`` (N,): the inverse of :meth:`peak`."""
        core = self.shape_arrays(sublattice)[0]
        return np.asarray(amp, dtype=float) * 2.0 * np.pi * core**2

    def noise_variance(self, signal) -> np.ndarray:
        """Pixel variance of the noise model at ``signal`` (model value including background)."""
        return self.noise_gain * np.maximum(np.asarray(signal, dtype=float), 0.0) + self.read_variance

    def render(self, shape, positions, sublattice, intensity, row_shift=None, *, background: bool = True,
               chunk_values: int = 1 << 22) -> np.ndarray:
        """The model image of the columns.

        Parameters
        ----------
        shape : (int, int)
            ``(H, W)`` of the image.
        positions : (N, 2) float array
            Column positions (y, x) in px.
        sublattice : (N,) str array
            ``"A"`` or ``"B"`` per column.
        intensity : (N,) float array
            Column intensities, the :attr:`Columns.intensity` convention: the core's volume
            ``2 pi amp core^2`` (image units * px^2); the tail adds ``ratio`` times the core's peak on top.
        row_shift : (H,) float array, optional
            Shift in px along x of each image row's content (scan-line jitter, as ``synthetic``'s
            ``line_jitter``).
        background : bool
            Add :attr:`background`.
        chunk_values : int
            Stamp values summed on one band of image rows before it is added to the image (the stamps are drawn
            ``_gaussfit.STAMP_BATCH`` values at a time).

        Returns
        -------
        (H, W) float array
        """
        ny, nx = (int(s) for s in shape)
        pos = np.asarray(positions, dtype=float).reshape(-1, 2)
        sub = np.asarray(sublattice).astype(str).reshape(-1)
        inten = np.asarray(intensity, dtype=float).reshape(-1)
        if not (len(pos) == len(sub) == len(inten)):
            raise ValueError(f"positions ({len(pos)}), sublattice ({len(sub)}) and intensity ({len(inten)}) must "
                             "have one row per column")
        shift = None
        if row_shift is not None:
            shift = np.asarray(row_shift, dtype=float).reshape(-1)
            if shift.shape != (ny,):
                raise ValueError(f"row_shift must hold one shift per image row ({ny}), got shape {shift.shape}")
        out = np.zeros(ny * nx)
        ok = np.isfinite(inten) & np.all(np.isfinite(pos), axis=1)
        wide_tails = []
        for label in ("A", "B"):
            rows = ok & (sub == label)
            if rows.any():
                core, ratio, tail = self.of(label)
                amp = inten[rows] / (2.0 * np.pi * core**2)
                if ratio > 0 and shift is None and tail >= 2.0:
                    wide_tails.append((pos[rows], amp, ratio, tail))
                    ratio = 0.0
                _accumulate(out, (ny, nx), pos[rows], amp, core, ratio, tail, shift, chunk_values)
        if wide_tails:
            _splat_tails(out, (ny, nx), wide_tails)
        out = out.reshape(ny, nx)
        if background:
            out += self.background
        return out

    def to_state(self) -> dict:
        """Dict of floats; :meth:`from_state` restores it exactly."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> "ColumnProfile":
        """Rebuild from :meth:`to_state` output."""
        return cls(**{k: float(np.asarray(v)) for k, v in dict(state).items()})


def _splat_tails(out, shape, tails):
    """Add wide tails to the flat image ``out`` by convolution, all sublattices in one inverse FFT.

    ``tails`` holds one ``(positions (n, 2) px, core peaks (n,), tail ratio, tail sigma px)`` per sublattice.
    Each column's tail volume is split bilinearly over its 4 nearest pixels (which keeps its centre exact and
    widens it by 1/6 px^2 per axis, taken off the filter's variance) and the grid filtered with the Gaussian of
    its sublattice's tail, truncated at ``TAIL_REACH`` sigma (multiplied in Fourier space, zero-padded so nothing
    wraps around): a wide tail costs one image transform instead of ``(8 tail)^2`` values per column.
    """
    import scipy.fft

    ny, nx = shape
    pad = int(np.ceil(TAIL_REACH * max(tail for *_, tail in tails))) + 1  # columns beyond the border reach in
    hy, hx = ny + 2 * pad, nx + 2 * pad
    size = [scipy.fft.next_fast_len(n + pad, real=True) for n in (hy, hx)]
    spectrum = 0.0
    for pos, amp, ratio, tail in tails:
        base = np.floor(pos).astype(np.int64) + pad
        frac = pos + pad - base
        volume = ratio * amp * 2.0 * np.pi * tail**2
        corners = []
        for oy, ox in ((0, 0), (0, 1), (1, 0), (1, 1)):
            w = (frac[:, 0] if oy else 1 - frac[:, 0]) * (frac[:, 1] if ox else 1 - frac[:, 1])
            corners.append((base[:, 0] + oy, base[:, 1] + ox, volume * w))
        r, c, v = (np.concatenate(parts) for parts in zip(*corners))
        ok = (r >= 0) & (r < hy) & (c >= 0) & (c < hx)
        grid = np.bincount(r[ok] * hx + c[ok], weights=v[ok], minlength=hy * hx).reshape(hy, hx)
        width = np.sqrt(max(tail**2 - 1.0 / 6.0, 0.25))
        kernel = np.fft.fft(_gaussian_kernel(width, size[0])).real[:, None]
        kernel = kernel * np.fft.rfft(_gaussian_kernel(width, size[1])).real[None, :]
        spectrum = spectrum + scipy.fft.rfft2(grid, size) * kernel
    smooth = scipy.fft.irfft2(spectrum, size)
    out += smooth[pad : pad + ny, pad : pad + nx].reshape(-1)


def _gaussian_kernel(sigma: float, n: int) -> np.ndarray:
    """(n,) sampled Gaussian of ``sigma`` px, truncated at ``TAIL_REACH`` sigma and normalised to sum 1, centred on
    index 0 with negative offsets wrapped to the end (the filter of ``scipy.ndimage.gaussian_filter``)."""
    reach = int(TAIL_REACH * sigma + 0.5)
    offsets = np.arange(-reach, reach + 1)
    weights = np.exp(-0.5 * offsets**2 / sigma**2)
    out = np.zeros(n)
    out[offsets % n] = weights / weights.sum()
    return out


def _accumulate(out, shape, pos, amp, core, ratio, tail, shift, chunk_values):
    """Add core + tail Gaussians (peak ``amp``) at ``pos`` to the flat image ``out`` (in place): the columns of
    ``chunk_values`` stamp values at a time summed on one band of rows, drawn ``STAMP_BATCH`` values at a time."""
    ny, nx = shape
    reach = RENDER_REACH * (tail if ratio > 0 else core)
    r = int(np.ceil(reach))
    steps = np.arange(-r, r + 1)
    per = len(steps) ** 2
    chunk = max(1, chunk_values // per)
    batch = max(1, STAMP_BATCH // per)
    order = np.lexsort((pos[:, 1], pos[:, 0]))
    pos, amp = pos[order], amp[order]
    for start in range(0, len(pos), chunk):
        stop = min(start + chunk, len(pos))
        first, band = stamp_band(shape, np.rint(pos[start:stop, 0]).astype(np.int64), r)
        for lo in range(start, stop, batch):
            p, a = pos[lo : min(lo + batch, stop)], amp[lo : min(lo + batch, stop)]
            base = np.rint(p).astype(np.int64)
            rows = base[:, :1] + steps[None, :]
            cols = base[:, 1:] + steps[None, :]
            dy2 = (rows - p[:, :1]) ** 2
            if shift is None:
                dx2 = ((cols - p[:, 1:]) ** 2)[:, None, :]
            else:
                s = shift[np.clip(rows, 0, ny - 1)][:, :, None]
                dx2 = (cols[:, None, :] - p[:, 1:, None] - s) ** 2
            values = np.exp(-0.5 / core**2 * dy2)[:, :, None] * np.exp(-0.5 / core**2 * dx2)
            if ratio > 0:
                values += ratio * np.exp(-0.5 / tail**2 * dy2)[:, :, None] * np.exp(-0.5 / tail**2 * dx2)
            values *= a[:, None, None]
            add_stamps(band, first, shape, rows, cols, values)
        out[first * nx : first * nx + band.size] += band


def _crop(shape, positions, sublattice, window):
    """Pixel box (y0, y1, x0, x1) of at most ``window`` px per side around the centre of the A columns."""
    ny, nx = shape
    centre = np.median(positions[sublattice == "A"], axis=0) if np.any(sublattice == "A") else np.array(shape) / 2
    half = int(window // 2)
    y0 = int(np.clip(np.rint(centre[0]) - half, 0, max(ny - 2 * half, 0)))
    x0 = int(np.clip(np.rint(centre[1]) - half, 0, max(nx - 2 * half, 0)))
    return y0, min(ny, y0 + 2 * half), x0, min(nx, x0 + 2 * half)


def _stamps(box, p, reach):
    """Pixel stamps of ``2 ceil(reach) + 1`` px per side around the columns at ``p`` (n, 2) (px in ``box``).

    Returns flat pixel indices in the box (n, m, m), which of them lie inside it (n, m, m) and the squared
    offsets along y and x (n, m), px^2.
    """
    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0
    steps = np.arange(-int(np.ceil(reach)), int(np.ceil(reach)) + 1)
    base = np.rint(p).astype(np.int64)
    rows = base[:, :1] + steps
    cols = base[:, 1:] + steps
    dy2, dx2 = (rows - p[:, :1]) ** 2, (cols - p[:, 1:]) ** 2
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    return rows[:, :, None] * w + cols[:, None, :], inside, dy2, dx2


def _gauss(dy2, dx2, sigma):
    """Unit-peak Gaussian of ``sigma`` px on the stamps of :func:`_stamps` (n, m, m)."""
    return np.exp(-0.5 / sigma**2 * dy2)[:, :, None] * np.exp(-0.5 / sigma**2 * dx2)[:, None, :]


class _StampCache:
    """The stamps (:func:`_stamps`) of each sublattice's columns and the unit Gaussians on them, for one ``theta``:
    drawn once for the design and reused by its derivatives."""

    def __init__(self, box, pos):
        self.box, self.pos, self.store = box, pos, {}

    def stamps(self, label, idx, reach):
        """``(flat, inside, dy2, dx2)`` of :func:`_stamps` for the columns ``idx`` of sublattice ``label``."""
        key = (label, reach)
        if key not in self.store:
            y0, _, x0, _ = self.box
            self.store[key] = _stamps(self.box, self.pos[idx] - (y0, x0), reach)
        return self.store[key]

    def gauss(self, label, idx, reach, sigma):
        """:func:`_gauss` of ``sigma`` px on :meth:`stamps`."""
        key = (label, reach, sigma)
        if key not in self.store:
            dy2, dx2 = self.stamps(label, idx, reach)[2:]
            self.store[key] = _gauss(dy2, dx2, sigma)
        return self.store[key]


def _design(box, pos, sub, theta, max_reach, cache: _StampCache | None = None):
    """Sparse design matrix (pixels of ``box``, columns + 1 background) of unit-peak profiles for ``theta``,
    each drawn out to at most ``max_reach`` px (the rest of a very wide tail is a pedestal the background
    takes up).  ``cache`` keeps the stamps and Gaussians drawn (for :func:`_design_derivatives` of this
    ``theta``)."""
    from scipy.sparse import csr_matrix

    cache = _StampCache(box, pos) if cache is None else cache

    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0
    core_a, core_b, ratio, width = theta
    blocks_r, blocks_c, blocks_v = [], [], []
    for label, core in (("A", core_a), ("B", core_b)):
        idx = np.flatnonzero(sub == label)
        if not len(idx):
            continue
        tail = core * width
        reach = min(RENDER_REACH * (tail if ratio > 0 else core), max_reach)
        flat, inside = cache.stamps(label, idx, reach)[:2]
        v = cache.gauss(label, idx, reach, core)
        if ratio > 0:
            v = v + ratio * cache.gauss(label, idx, reach, tail)
        which = np.broadcast_to(idx[:, None, None], flat.shape)
        blocks_r.append(flat[inside])
        blocks_c.append(which[inside])
        blocks_v.append(v[inside])
    n = len(pos)
    blocks_r.append(np.arange(h * w))
    blocks_c.append(np.full(h * w, n))
    blocks_v.append(np.ones(h * w))
    return csr_matrix((np.concatenate(blocks_v), (np.concatenate(blocks_r), np.concatenate(blocks_c))),
                      shape=(h * w, n + 1))


def _design_derivatives(box, pos, sub, theta, max_reach, coef, residual,
                        cache: _StampCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of the design ``A`` (:func:`_design`) with respect to ``theta = (core_a, core_b, tail ratio,
    tail width / core)``, applied to the amplitudes and to the residual: ``(dA/dtheta @ coef`` (pixels of ``box``,
    4), ``dA/dtheta^T @ residual`` (columns + 1, 4)``)`` (``coef``: (columns + 1,), ``residual``: (pixels,)).
    ``cache``: the stamps :func:`_design` drew for this ``theta``.

    The tail's derivatives are drawn out to its reach also where ``ratio`` is 0 (the design then holds no tail).
    """
    cache = _StampCache(box, pos) if cache is None else cache
    y0, y1, x0, x1 = box
    npix = (y1 - y0) * (x1 - x0)
    core_a, core_b, ratio, width = theta
    d_model, d_dot_residual = np.zeros((4, npix)), np.zeros((4, len(pos) + 1))
    for k, (label, core) in enumerate((("A", core_a), ("B", core_b))):
        idx = np.flatnonzero(sub == label)
        if not len(idx):
            continue
        tail = core * width
        reach = min(RENDER_REACH * max(tail, core), max_reach)
        flat, inside, dy2, dx2 = cache.stamps(label, idx, reach)
        r2 = dy2[:, :, None] + dx2[:, None, :]
        g_core, g_tail = cache.gauss(label, idx, reach, core), cache.gauss(label, idx, reach, tail)
        d_tail_sigma = ratio * g_tail * r2 / tail**3  # d(ratio * G(tail)) / d tail
        amp = coef[idx][:, None, None]
        where = flat[inside]
        seen = np.where(inside, residual[np.clip(flat, 0, npix - 1)], 0.0)
        for row, dv in ((k, g_core * r2 / core**3 + width * d_tail_sigma), (2, g_tail), (3, core * d_tail_sigma)):
            d_model[row] += np.bincount(where, weights=(amp * dv)[inside], minlength=npix)
            d_dot_residual[row, idx] += np.einsum("nij,nij->n", dv, seen)
    return d_model.T, d_dot_residual.T


def _ridged_gram(design, ridge) -> np.ndarray:
    """Dense normal matrix ``design^T design`` (columns + 1, columns + 1) with ``ridge`` times its largest diagonal
    entry added to the diagonal (a small ridge for edge columns)."""
    gram = (design.T @ design).toarray()
    gram[np.diag_indices_from(gram)] += ridge * np.maximum(np.diag(gram).max(), 1e-300)
    return gram


def _solve_amplitudes(design, values, gram, extra=0.0):
    """Least-squares peak amplitudes (and background, last) for one design and its :func:`_ridged_gram`.

    ``values`` is (pixels,) or (pixels, k) for k right-hand sides at once; ``extra`` (same columns) is added to
    the normal equations' right-hand side ``design^T values``."""
    return np.linalg.solve(gram, design.T @ values + extra)


def _spacing_and_core_starts(shape, pos, sub, widths) -> tuple[float, list]:
    """``(spacing, [core_a, core_b])``: the median A-A nearest-neighbour distance (px; a third of the image
    without two A columns) and the starting core widths (px): the columns' median fitted widths, else 0.12
    spacing (B starts like A without B columns)."""
    from scipy.spatial import cKDTree

    a_pos = pos[sub == "A"]
    if len(a_pos) >= 2:
        d, _ = cKDTree(a_pos).query(a_pos, k=2)
        spacing = float(np.median(d[:, 1]))
    else:
        spacing = float(min(shape)) / 3
    starts = []
    for label in ("A", "B"):
        w = None if widths is None else np.asarray(widths, float)[(sub == label) & np.isfinite(widths)]
        starts.append(float(np.median(w)) if w is not None and len(w) else 0.12 * spacing)
    return spacing, [starts[0], starts[1] if np.any(sub == "B") else starts[0]]


def _fit_shape(residual, jacobian, core_starts, spacing: float, *, tail: bool, max_tail_width: float,
               max_evaluations: int) -> np.ndarray:
    """(4,) ``(core_a, core_b, tail ratio, tail width / core)`` minimising ``residual`` (``jacobian``: its
    (pixels, 4) derivatives); without ``tail`` only the cores are fitted (ratio 0, width 1.5).  Warns when the
    fit stops at ``max_evaluations`` before it converges."""
    from scipy.optimize import least_squares

    lo_core, hi_core = 0.3, 0.5 * spacing
    x_start = [np.clip(core_starts[0], lo_core, hi_core), np.clip(core_starts[1], lo_core, hi_core)]
    if tail:
        theta0 = np.array(x_start + [0.1, min(3.0, max_tail_width)])
        lower, upper = [lo_core, lo_core, 0.0, 1.2], [hi_core, hi_core, 1.0, max_tail_width]
        fit = least_squares(residual, theta0, jac=jacobian, bounds=(lower, upper), x_scale=[0.2, 0.2, 0.05, 0.5],
                            ftol=1e-4, xtol=1e-4, max_nfev=max_evaluations)
        theta = fit.x
    else:
        fit = least_squares(lambda t: residual([t[0], t[1], 0.0, 1.5]), np.array(x_start),
                            jac=lambda t: jacobian([t[0], t[1], 0.0, 1.5])[:, :2],
                            bounds=([lo_core] * 2, [hi_core] * 2), ftol=1e-4, max_nfev=max_evaluations)
        theta = np.array([fit.x[0], fit.x[1], 0.0, 1.5])
    if fit.status == 0:
        warn(f"the column profile fit stopped after {fit.nfev} evaluations without converging (core sigmas "
             f"{theta[0]:.2f} / {theta[1]:.2f} px, tail ratio {theta[2]:.2f}); positions may depend on where it "
             "stopped. Give estimate_profile a larger max_evaluations, or check the columns it is fitted on.")
    return theta


def _projected_problem(box, pos, sub, values, max_reach: float, ridge: float):
    """``(residual, jacobian, solved)`` of the window fit as functions of ``theta`` (variable projection).

    ``residual(theta)`` (pixels,) is the model image minus ``values`` with the amplitudes and background solved
    linearly for ``theta``; ``jacobian(theta)`` (pixels, 4) its derivatives (Golub and Pereyra; the ridge is
    held fixed) ``(I - P) dA/dtheta c - A G^-1 dA/dtheta^T r`` (``A`` the design, ``G`` its ridged Gram matrix,
    ``c`` the solved amplitudes, ``r`` the residual, ``P = A G^-1 A^T``), which need no further model images,
    so the fit follows the path of finite differences at a fraction of the cost.  The design of the last
    ``theta`` and its ridged Gram matrix are kept for the Jacobian; ``solved(theta)`` returns it with the solved
    amplitudes (background last).
    """
    last = {}

    def solved(theta):
        key = tuple(float(t) for t in theta)
        if last.get("theta") != key:
            stamps = _StampCache(box, pos)
            design = _design(box, pos, sub, key, max_reach, stamps)
            gram = _ridged_gram(design, ridge)
            last.update(theta=key, design=design, gram=gram, coef=_solve_amplitudes(design, values, gram),
                        stamps=stamps)
        return last["design"], last["coef"]

    def residual(theta):
        design, coef = solved(theta)
        return design @ coef - values

    def jacobian(theta):
        design, coef = solved(theta)
        d_model, d_dot_residual = _design_derivatives(box, pos, sub, last["theta"], max_reach, coef,
                                                      design @ coef - values, last["stamps"])
        return d_model - design @ _solve_amplitudes(design, d_model, last["gram"], extra=d_dot_residual)

    return residual, jacobian, solved


def estimate_profile(image, columns=None, *, positions=None, sublattice=None, width=None, window_cells: float = 4.0,
                     max_tail_width: float = 6.0, tail: bool = True, max_evaluations: int = 40) -> ColumnProfile:
    """Estimate the core + tail column profile of each sublattice from the image.

    On a window of about ``window_cells`` A-A spacings around the centre of the columns, the image is fitted by
    the model image of all columns in it (each with its own peak amplitude, solved linearly, plus a uniform
    background), so every column's neighbours, core and tail, are part of the fit.  The nonlinear parameters
    are the two core sigmas, one tail ratio and one tail width (tail sigma / core sigma) shared by A and B (the
    tail is the probe's), found by bounded least squares (``scipy.optimize.least_squares``).  The positions are
    kept fixed (the fit's current ones).  The noise model is not estimated here (0); the column fit sets it.

    Parameters
    ----------
    image : (H, W) array
    columns : Columns, optional
        Found columns (positions, sublattice, and ``width`` as a start); or give ``positions``/``sublattice``.
    positions : (N, 2) array, optional
        Column positions (y, x) in px.
    sublattice : (N,) str array, optional
        ``"A"`` / ``"B"`` labels.
    width : (N,) array, optional
        Gaussian widths (px) of the columns, as starting core sigmas.
    window_cells : float
        Side of the fitted window in A-A nearest-neighbour distances (bounds the cost; the whole image when
        smaller).
    max_tail_width : float
        Upper bound of the tail sigma over the core sigma.
    tail : bool
        Fit a tail; False gives pure Gaussian columns (tail ratio 0).
    max_evaluations : int
        Most model evaluations of the shape fit (a warning says when it stops there unconverged).  The
        synthetics converge in 4-7 and PTO/SRO in 5; SrTiO3 [110] needs 17 (at the earlier limit of 12 its
        positions were off by up to 0.13 sigma).

    Returns
    -------
    ColumnProfile
        With ``background`` from the window fit.
    """
    if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, (int, np.integer)) or max_evaluations < 1:
        raise ValueError(f"max_evaluations must be a whole number >= 1, got {max_evaluations!r}")
    img = np.asarray(image, dtype=float)
    if columns is not None:
        positions, sublattice = columns.positions, columns.sublattice
        widths = getattr(columns, "width", None)
    else:
        widths = width
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    sub = np.asarray(sublattice).astype(str).reshape(-1)
    if len(pos) != len(sub) or not np.any(sub == "A"):
        raise ValueError("estimate_profile needs column positions with A/B labels (at least one A column)")
    spacing, core_starts = _spacing_and_core_starts(img.shape, pos, sub, widths)
    box = _crop(img.shape, pos, sub, window_cells * spacing)
    y0, y1, x0, x1 = box
    values = img[y0:y1, x0:x1].reshape(-1)
    reach = 1.5 * spacing
    near = ((pos[:, 0] > y0 - reach) & (pos[:, 0] < y1 + reach) & (pos[:, 1] > x0 - reach)
            & (pos[:, 1] < x1 + reach))
    near &= np.all(np.isfinite(pos), axis=1)
    cpos, csub = pos[near], sub[near]
    residual, jacobian, solved = _projected_problem(box, cpos, csub, values, 1.5 * spacing, 1e-6)
    theta = _fit_shape(residual, jacobian, core_starts, spacing, tail=tail, max_tail_width=max_tail_width,
                       max_evaluations=max_evaluations)
    core_a, core_b, ratio, width = (float(v) for v in theta)
    coef = solved(theta)[1]
    return ColumnProfile(core_a=core_a, core_b=core_b, tail_ratio_a=ratio, tail_ratio_b=ratio,
                         tail_a=core_a * width, tail_b=core_b * width, background=float(coef[-1]))
