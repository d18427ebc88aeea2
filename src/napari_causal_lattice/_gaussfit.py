"""Batched sub-pixel refinement of atom columns: patches, centre of mass, 2D Gaussian fits.

All columns are refined together with numpy: one Levenberg-Marquardt step updates every
column's 5 parameters at once (batched 5x5 normal equations), so there is no Python-level
optimizer call per column.  Model of one column on its disk-shaped patch::

    f(y, x) = amp * exp(-((y - y0)^2 + (x - x0)^2) / (2 sigma^2)) + bg

Positions are (y, x) in px, pixel centres at integer coordinates.
"""

from __future__ import annotations

import numpy as np

#: Parameter order of the Gaussian model.
PARAMS = ("amp", "y0", "x0", "sigma", "bg")


def extract_patches(image: np.ndarray, centres: np.ndarray, radius: float):
    """Disk-shaped pixel patches around ``centres``.

    Parameters
    ----------
    image : (H, W) float array
    centres : (N, 2) float array
        Patch centres (y, x) in px.
    radius : float
        Disk radius in px.

    Returns
    -------
    values, yy, xx : (N, M) float arrays
        Pixel values and their (y, x) coordinates in px; ``M`` offsets within ``radius + 0.71`` px of
        the rounded centre, which covers the disk around the sub-pixel centre.
    mask : (N, M) bool array
        Pixels inside both the image and the disk around the (sub-pixel) centre.
    """
    flat, yy, xx, mask, _ = patch_layout(image.shape, centres, radius)
    return gather(image, flat), yy, xx, mask


def patch_layout(shape, centres: np.ndarray, radius: float):
    """The pixels of :func:`extract_patches` without their values, to gather several images on the same patches.

    Returns the flat pixel indices (N, M) int64 (clipped into the ``(H, W)`` image ``shape``) for :func:`gather`,
    the pixel coordinates ``yy``, ``xx`` (N, M) px, the ``mask`` (N, M) of :func:`extract_patches` and the squared
    distance ``r2`` (N, M) px^2 of each pixel from its centre.
    """
    ny, nx = shape
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r - 1 : r + 2, -r - 1 : r + 2]
    near = dy**2 + dx**2 <= (radius + 0.71) ** 2
    dy, dx = dy[near], dx[near]
    base = np.rint(centres).astype(np.int64)
    yy = base[:, :1].astype(float) + dy.astype(float)
    xx = base[:, 1:].astype(float) + dx.astype(float)
    r2 = (yy - centres[:, :1]) ** 2 + (xx - centres[:, 1:]) ** 2
    disk = r2 <= radius**2
    all_inside = len(base) > 0 and bool(np.all(base.min(axis=0) + (dy.min(), dx.min()) >= 0)
                                        and np.all(base.max(axis=0) + (dy.max(), dx.max()) < (ny, nx)))
    if all_inside:  # no pixel to clip or leave out
        return (base[:, 0] * nx + base[:, 1])[:, None] + (dy * nx + dx)[None, :], yy, xx, disk, r2
    iy, ix = base[:, :1] + dy[None, :], base[:, 1:] + dx[None, :]
    inside = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    return np.clip(iy, 0, ny - 1) * nx + np.clip(ix, 0, nx - 1), yy, xx, inside & disk, r2


def gather(image: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Values (N, M) of the ``(H, W)`` ``image`` at the flat pixel indices ``flat`` of :func:`patch_layout`."""
    image = np.asarray(image)
    if image.flags.c_contiguous:
        return image.reshape(-1).take(flat)
    nx = image.shape[1]
    return image[flat // nx, flat % nx]


def centre_of_mass(image: np.ndarray, centres: np.ndarray, radius: float, *, iterations: int = 3) -> np.ndarray:
    """Background-subtracted centre of mass in a disk, iterated; (N, 2) yx px.

    The background of each patch is its minimum inside the disk; a centre never moves further
    than ``radius`` from where it started.
    """
    start = np.asarray(centres, dtype=float)
    pos = start.copy()
    for _ in range(iterations):
        values, yy, xx, mask = extract_patches(image, pos, radius)
        low = np.where(mask, values, np.inf).min(axis=1, keepdims=True)
        w = np.where(mask, values - low, 0.0)
        total = w.sum(axis=1)
        ok = total > 0
        ok = slice(None) if ok.all() else ok  # all rows: views instead of copies
        new = pos.copy()
        new[ok, 0] = (w[ok] * yy[ok]).sum(axis=1) / total[ok]
        new[ok, 1] = (w[ok] * xx[ok]).sum(axis=1) / total[ok]
        shift = new - start
        dist = np.hypot(shift[:, 0], shift[:, 1])
        too_far = dist > radius
        new[too_far] = start[too_far] + shift[too_far] * (radius / dist[too_far])[:, None]
        pos = new
    return pos


def _model(p: np.ndarray, yy: np.ndarray, xx: np.ndarray):
    """Model values (n, M) and Jacobian (n, 5, M) in float32; ``yy``, ``xx`` are offsets from a reference."""
    q = p.astype(np.float32)
    amp, y0, x0, sig, bg = (q[:, k : k + 1] for k in range(5))
    jac = np.empty((yy.shape[0], 5, yy.shape[1]), dtype=np.float32)
    dy = np.subtract(yy, y0, out=jac[:, 1])
    dx = np.subtract(xx, x0, out=jac[:, 2])
    r2 = np.multiply(dy, dy, out=jac[:, 3])
    r2 += np.multiply(dx, dx, out=jac[:, 4])
    inv = 1.0 / (sig * sig)
    e = np.multiply(r2, -0.5 * inv, out=jac[:, 0])
    np.exp(e, out=e)
    ae = amp * e
    f = ae + bg
    ae *= inv
    jac[:, 1] *= ae
    jac[:, 2] *= ae
    ae /= sig
    jac[:, 3] *= ae
    jac[:, 4] = 1.0
    return f, jac


def _model_values(p: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """The model values (n, M) of :func:`_model` (the same float32 operations) without the Jacobian."""
    q = p.astype(np.float32)
    amp, y0, x0, sig, bg = (q[:, k : k + 1] for k in range(5))
    dy = np.subtract(yy, y0)
    r2 = np.multiply(dy, dy, out=dy)
    dx = np.subtract(xx, x0)
    r2 += np.multiply(dx, dx, out=dx)
    e = np.multiply(r2, -0.5 * (1.0 / (sig * sig)), out=r2)
    np.exp(e, out=e)
    e *= amp
    e += bg
    return e


def initial_guess(values: np.ndarray, yy: np.ndarray, xx: np.ndarray, mask: np.ndarray, centres: np.ndarray,
                  radius: float, *, r2: np.ndarray | None = None) -> np.ndarray:
    """(N, 5) starting parameters from the patches: amplitude, centre, moment width, background.

    ``r2`` (N, M) px^2 is each pixel's squared distance from its centre, when known (:func:`patch_layout`)."""
    bg = np.where(mask, values, np.inf).min(axis=1)
    top = np.where(mask, values, -np.inf).max(axis=1)
    w = np.where(mask, values - bg[:, None], 0.0)
    if r2 is None:
        r2 = (yy - centres[:, :1]) ** 2 + (xx - centres[:, 1:]) ** 2
    total = np.maximum(w.sum(axis=1), 1e-300)
    sigma = np.sqrt(np.maximum((w * r2).sum(axis=1) / (2.0 * total), 1e-6))
    sigma = np.clip(0.6 * sigma, 0.5, radius / 1.5)
    return np.column_stack([np.maximum(top - bg, 1e-12), centres[:, 0], centres[:, 1], sigma, bg])


def fit_gaussians(
    values: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    mask: np.ndarray,
    p0: np.ndarray,
    *,
    radius: float,
    free=(True, True, True, True, True),
    iterations: int = 30,
    weights: np.ndarray | None = None,
):
    """Batched Levenberg-Marquardt fit of the isotropic Gaussian model on every patch.

    Parameters
    ----------
    values, yy, xx : (N, M) float arrays
        Patch values and pixel coordinates (px), from :func:`extract_patches`.
    mask : (N, M) bool array
        Pixels that take part in each fit.
    p0 : (N, 5) float array
        Starting parameters in the order of :data:`PARAMS`.
    radius : float
        Patch radius in px; centres stay within it of their start, ``sigma`` in [0.3, radius] px.
    free : sequence of 5 bool
        Which parameters are fitted (the others stay at ``p0``).
    iterations : int
        Maximum number of LM steps.
    weights : (N, M) float array, optional
        Least-squares weight of each pixel (the inverse of its noise variance); default 1 on ``mask``.

    Returns
    -------
    params : (N, 5) float array
    r_squared : (N,) float array
        Coefficient of determination (unweighted) on the masked pixels, clipped to [0, 1].

    Each patch's fit depends on its own pixels only; the patches are fitted ``FIT_BATCH`` at a time, so the
    Jacobians and residuals of a batch stay cache-sized.
    """
    p0 = np.asarray(p0, dtype=float)
    if len(p0) <= FIT_BATCH:
        return _fit_batch(values, yy, xx, mask, p0, radius, free, iterations, weights)
    params, r_squared = np.empty_like(p0), np.empty(len(p0))
    for start in range(0, len(p0), FIT_BATCH):
        sl = slice(start, start + FIT_BATCH)
        params[sl], r_squared[sl] = _fit_batch(values[sl], yy[sl], xx[sl], mask[sl], p0[sl], radius, free, iterations,
                                               None if weights is None else weights[sl])
    return params, r_squared


#: Patches fitted at a time by :func:`fit_gaussians`.
FIT_BATCH = 256


def _fit_batch(values, yy, xx, mask, p0, radius, free, iterations, weights):
    """:func:`fit_gaussians` of one batch of patches: ``(params, r_squared)``."""
    ref = np.rint(np.asarray(p0, dtype=float)[:, 1:3])
    p = np.array(p0, dtype=float)
    p[:, 1:3] -= ref
    w_all = mask.astype(np.float32)
    if weights is not None:
        w_all = w_all * np.sqrt(np.maximum(weights, 0.0)).astype(np.float32)
    v_all = values.astype(np.float32)
    y_all = (yy - ref[:, :1]).astype(np.float32)
    x_all = (xx - ref[:, 1:]).astype(np.float32)
    start = p[:, 1:3].copy()
    free = np.asarray(free, dtype=bool)
    fixed_diag = np.diag((~free).astype(float))
    n = p.shape[0]
    lam = np.full(n, 1e-3)
    cost = np.empty(n)
    idx = np.arange(n)
    vv, yw, xw, ww = v_all, y_all, x_all, w_all

    free32 = None if free.all() else free.astype(np.float32)[None, :, None]

    def evaluate(params):
        """Weighted residuals (n, M), weighted Jacobian of the free parameters (n, 5, M) and cost (n,)."""
        f, jac = _model(params, yw, xw)
        res = np.subtract(vv, f, out=f)
        res *= ww
        if free32 is not None:
            jac *= free32
        jac *= ww[:, None, :]
        return res, jac, np.einsum("nm,nm->n", res, res, dtype=np.float64)

    res, jw, cost_w = evaluate(p)
    cost[:] = cost_w
    for _ in range(iterations):
        step, trial = _lm_trial(p[idx], jw, res, free, fixed_diag, lam[idx], start[idx], radius)
        t_res, t_jw, t_cost = evaluate(trial)
        better = t_cost < cost[idx]
        rel = (cost[idx] - t_cost) / np.maximum(cost[idx], 1e-300)
        p[idx[better]] = trial[better]
        cost[idx[better]] = t_cost[better]
        if not better.all():  # most trials improve: keep the old rows of the others in the new arrays
            worse = ~better
            t_res[worse], t_jw[worse] = res[worse], jw[worse]
        res, jw = t_res, t_jw
        lam[idx[better]] = np.maximum(lam[idx[better]] / 3.0, 1e-7)
        lam[idx[~better]] *= 4.0
        small_step = np.abs(step[:, 1:3]).max(axis=1) < 1e-3
        done = (better & (rel < 1e-6)) | small_step | (~better & (lam[idx] > 1e4))
        if done.all():
            break
        if done.any():
            keep = ~done
            idx = idx[keep]
            res, jw = res[keep], jw[keep]
            vv, yw, xw, ww = vv[keep], yw[keep], xw[keep], ww[keep]
    if weights is not None:
        final = _model_values(p, y_all, x_all)
        cost = np.einsum("nm,nm->n", (v_all - final) * mask, (v_all - final) * mask, dtype=np.float64)
    p[:, 1:3] += ref
    return p, _r_squared(values, mask, cost)


def _lm_trial(pw, jw, res, free, fixed_diag, lam, start, radius: float):
    """One damped Gauss-Newton step of the patches still fitted: ``(step, trial)`` (n, 5), the trial's sigma kept in
    [0.3, radius] px and its centre within ``radius`` px of ``start``; ``jw`` (n, 5, M) is the Jacobian of the free
    parameters (0 for the fixed ones) times the pixel weights, ``res`` (n, M) the weighted residuals and ``lam``
    (n,) each patch's damping."""
    jtj = (jw @ jw.transpose(0, 2, 1)).astype(np.float64)
    jtr = (jw @ res[..., None])[..., 0].astype(np.float64)
    diag = np.einsum("nkk->nk", jtj)
    scale = np.maximum(diag, 1e-12 * (diag.max(axis=1, keepdims=True) + 1e-300))
    lhs = jtj + (lam[:, None] * scale)[..., None] * np.eye(5) + fixed_diag
    step = np.linalg.solve(lhs, jtr[..., None])[..., 0] * free
    trial = pw + step
    trial[:, 3] = np.clip(trial[:, 3], 0.3, radius)
    shift = trial[:, 1:3] - start
    dist = np.hypot(shift[:, 0], shift[:, 1])
    far = dist > radius
    trial[far, 1:3] = start[far] + shift[far] * (radius / dist[far])[:, None]
    return step, trial


def _r_squared(values, mask, cost) -> np.ndarray:
    """(N,) coefficient of determination of each patch's fit (residual sum of squares ``cost``) on its masked
    pixels, clipped to [0, 1]."""
    w = mask.astype(np.float32)
    count = np.maximum(w.sum(axis=1), 1.0)
    mean = (values * w).sum(axis=1) / count
    total = (((values - mean[:, None]) * w) ** 2).sum(axis=1)
    r2 = np.where(total > 0, 1.0 - cost / np.maximum(total, 1e-300), 0.0)
    return np.clip(r2, 0.0, 1.0)


def _lag_matrix(yy: np.ndarray, xx: np.ndarray, reach: int) -> np.ndarray:
    """(M, M) 0/1 matrix of the pixel pairs of the patch layout one lag (|dy|, |dx| <= ``reach``, not 0) apart."""
    oy = np.rint(yy[0] - yy[0, 0]).astype(int)
    ox = np.rint(xx[0] - xx[0, 0]).astype(int)
    dy, dx = np.abs(oy[:, None] - oy[None, :]), np.abs(ox[:, None] - ox[None, :])
    return ((dy <= reach) & (dx <= reach) & ((dy > 0) | (dx > 0))).astype(np.float64)


def position_sigma(values: np.ndarray, yy: np.ndarray, xx: np.ndarray, mask: np.ndarray,
                   params: np.ndarray, *, reach: int = 2, weights: np.ndarray | None = None,
                   free=(True, True, True, True, True), axes: bool = False) -> np.ndarray:
    """1-sigma uncertainty (N,) in px of each fitted centre, per axis, from the fit covariance and residual.

    Sandwich covariance of the least-squares fit, ``(J^T J)^-1 (J^T diag(r^2) J) (J^T J)^-1`` times
    ``M / (M - 5)``, with ``J`` the model Jacobian and ``r`` the residuals on the ``M`` pixels of a patch:
    it holds for any noise level and for counting noise that grows with the signal, without knowing the
    detector gain.  Correlated pixel noise (scan noise, drift correction, interpolation in real images)
    adds the cross terms ``r_m r_m'`` of pixels up to ``reach`` px apart; their share is pooled over all
    patches (one inflation factor >= 1, stable where the cross terms of one patch are noisy).  The isotropic
    sigma is the root mean of the y and x variances.  NaN where the fit is degenerate (fewer than 6 pixels,
    singular ``J^T J``).

    Parameters
    ----------
    values, yy, xx, mask : (N, M) arrays
        As for :func:`fit_gaussians`.
    params : (N, 5) float array
        Fitted parameters in the order of :data:`PARAMS`.
    reach : int
        Largest pixel lag (px per axis) of the correlated-noise terms.
    weights : (N, M) float array, optional
        Pixel weights of a weighted fit (inverse noise variance); the sandwich then uses ``J^T W J`` and the
        weighted residuals, which makes it the weighted fit's covariance scaled by its residual chi^2 (the misfit
        to the noise model).
    free : sequence of 5 bool
        The fitted parameters (a fixed width leaves ``sigma`` out of the covariance).
    axes : bool
        Return the (N, 2) sigmas along y and x (each axis with its own correlated-noise inflation) instead of
        the isotropic (N,) root mean.
    """
    p = np.asarray(params, dtype=float)
    keep = np.flatnonzero(np.asarray(free, dtype=bool))
    lag = _lag_matrix(yy, xx, reach) if len(p) else None
    # per patch, SIGMA_BATCH at a time (cache-sized arrays); the correlated-noise share is pooled over all of them
    terms = [_influence_terms(values[sl], yy[sl], xx[sl], mask[sl], p[sl], keep, lag,
                              None if weights is None else weights[sl])
             for sl in (slice(start, start + SIGMA_BATCH) for start in range(0, len(p), SIGMA_BATCH))]
    ok = np.concatenate([t[0] for t in terms]) if terms else np.zeros(0, dtype=bool)
    sigma = np.full((len(p), 2) if axes else len(p), np.nan)
    if not ok.any():
        return sigma
    white, cross, pixels, dof = (np.concatenate([t[k] for t in terms]) for k in range(1, 5))
    if axes:
        inflation = np.maximum(1.0, 1.0 + cross.sum(axis=0) / np.maximum(white.sum(axis=0), 1e-300))
        var = white * inflation * (pixels / dof)[:, None]
    else:
        inflation = max(1.0, 1.0 + float(cross.sum() / white.sum()))
        var = white.mean(axis=1) * inflation * pixels / dof
    sigma[ok] = np.sqrt(np.where(var > 0, var, np.nan))
    return sigma


#: Patches whose position sigmas are computed at a time by :func:`position_sigma`.
SIGMA_BATCH = 128


def _influence_terms(values, yy, xx, mask, p, keep, lag, weights):
    """The per-patch terms of :func:`position_sigma` for a batch of patches: which fits are usable (n,), and for
    those the white (n_ok, 2) and correlated (n_ok, 2) residual variance of the centre along y and x, the masked
    pixel count (n_ok,) and the degrees of freedom (n_ok,) (``keep``: indices of the free parameters, ``lag``: the
    :func:`_lag_matrix`)."""
    ref = np.rint(p[:, 1:3])
    q = p.copy()
    q[:, 1:3] -= ref
    f, jac = _model(q, (yy - ref[:, :1]).astype(np.float32), (xx - ref[:, 1:]).astype(np.float32))
    w = mask.astype(np.float64)
    sw = w if weights is None else w * np.sqrt(np.maximum(weights, 0.0))
    jac = jac.astype(np.float64)
    if len(keep) < jac.shape[1]:
        jac = jac[:, keep]
    jac *= sw[:, None, :]
    res = np.subtract(values, f.astype(np.float64))
    res *= sw
    dof = w.sum(axis=1) - len(keep)
    jtj = jac @ jac.transpose(0, 2, 1)
    ok = (dof > 0) & (np.abs(np.linalg.det(jtj)) > 0) & np.all(np.isfinite(res), axis=1)
    if not ok.all():
        jtj, jac, res, w, dof = jtj[ok], jac[ok], res[ok], w[ok], dof[ok]
    # influence of each pixel's residual on the fitted centre: rows y0, x0 of (J^T J)^-1 J r, (n, 2, M)
    rows = [int(np.flatnonzero(keep == k)[0]) for k in (1, 2)]
    influence = np.linalg.inv(jtj)[:, rows, :] @ jac
    influence *= res[:, None, :]
    white = np.einsum("nkm,nkm->nk", influence, influence)
    cross = np.einsum("nkm,nkm->nk", influence @ lag, influence)
    return ok, white, cross, w.sum(axis=1), dof


def render_gaussians(shape, amp: np.ndarray, centres: np.ndarray, sigma: np.ndarray, *, reach: float,
                     chunk: int = 2048) -> np.ndarray:
    """Sum of isotropic Gaussians (no background) on an image grid.

    Each Gaussian is accumulated on the square of pixels within ``reach`` px (per axis) of its rounded
    centre as the outer product of its two 1D profiles; the columns of a chunk are summed on one band of image
    rows (in column order, as ``np.bincount`` on the flat pixel index would) and the band added to the image.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the image.
    amp : (N,) float array
        Peak amplitudes, image units.
    centres : (N, 2) float array
        Centres (y, x) in px.
    sigma : (N,) float array
        Standard deviations in px.
    reach : float
        Half-width in px of the square each Gaussian is drawn on (4 sigma leaves < 0.04 % of the peak out).
    chunk : int
        Columns summed per band (their stamps are drawn :data:`STAMP_BATCH` values at a time).

    Returns
    -------
    (H, W) float array
    """
    ny, nx = shape
    out = np.zeros(ny * nx)
    r = int(np.ceil(reach))
    steps = np.arange(-r, r + 1)
    batch = max(1, STAMP_BATCH // len(steps) ** 2)
    centres = np.asarray(centres, dtype=float).reshape(-1, 2)
    # in raster order, so each chunk touches one band of rows
    order = np.lexsort((centres[:, 1], centres[:, 0]))
    centres, amp, sigma = centres[order], np.asarray(amp)[order], np.asarray(sigma)[order]
    for start in range(0, len(centres), chunk):
        stop = min(start + chunk, len(centres))
        first, band = stamp_band(shape, np.rint(centres[start:stop, 0]).astype(np.int64), r)
        for lo in range(start, stop, batch):
            sl = slice(lo, min(lo + batch, stop))
            base = np.rint(centres[sl]).astype(np.int64)
            rows = base[:, :1] + steps[None, :]
            cols = base[:, 1:] + steps[None, :]
            scale = -0.5 / sigma[sl, None] ** 2
            gy = np.exp((rows - centres[sl, :1]) ** 2 * scale) * amp[sl, None]
            gx = np.exp((cols - centres[sl, 1:]) ** 2 * scale)
            add_stamps(band, first, shape, rows, cols, gy[:, :, None] * gx[:, None, :])
        out[first * nx : first * nx + band.size] += band
    return out.reshape(ny, nx)


#: Stamp values drawn at a time when Gaussians are summed on an image (temporaries of about 1 MB).
STAMP_BATCH = 1 << 17


def stamp_band(shape, base_rows: np.ndarray, reach: int) -> tuple[int, np.ndarray]:
    """The first image row and a zero flat band (rows x W) covering the rows of the stamps of ``reach`` px
    around the rows ``base_rows`` (n,) inside the ``(H, W)`` image ``shape``."""
    ny, nx = shape
    first = max(int(base_rows.min()) - reach, 0) if len(base_rows) else 0
    last = min(int(base_rows.max()) + reach, ny - 1) if len(base_rows) else -1
    return first, np.zeros(max(last - first + 1, 0) * nx)


def add_stamps(band: np.ndarray, first: int, shape, rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> None:
    """Add the stamp ``values`` (n, m, m) on the pixel rows (n, m) and columns (n, m) to ``band`` (the flat image
    from row ``first`` on, see :func:`stamp_band`) in their order, as ``np.bincount`` would sum them; pixels outside
    the ``(H, W)`` image ``shape`` are left out."""
    ny, nx = shape
    inside = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
    np.add.at(band, ((rows - first)[:, :, None] * nx + cols[:, None, :])[inside], values[inside])


def reference_fit_scipy(image: np.ndarray, start, radius: float) -> np.ndarray:
    """One column, one ``scipy.optimize.least_squares`` call: the slow, independent reference.

    Fits ``amp * exp(-r^2 / (2 sigma^2)) + bg`` on the disk of ``radius`` px around ``start`` (y, x) and
    returns the fitted centre (2,) in px.  Tests and benchmarks compare the batched fit against it.
    """
    from scipy.optimize import least_squares

    r = int(np.ceil(radius)) + 1
    cy, cx = np.rint(start).astype(int)
    yy, xx = np.mgrid[cy - r : cy + r + 1, cx - r : cx + r + 1]
    inside = (yy - start[0]) ** 2 + (xx - start[1]) ** 2 <= radius**2
    y, x, v = yy[inside].astype(float), xx[inside].astype(float), image[yy[inside], xx[inside]]

    def residual(p):
        amp, y0, x0, sig, bg = p
        return amp * np.exp(-((y - y0) ** 2 + (x - x0) ** 2) / (2 * sig**2)) + bg - v

    p0 = [v.max() - v.min(), start[0], start[1], radius / 3, v.min()]
    return least_squares(residual, p0, method="lm").x[1:3]
