"""Detectability of each column (peak over the local pixel noise) and the warning when most B columns are
faint."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._warn import warn
from .gaussians import _gaussian_model
from .result import Refined


class FaintColumnsWarning(UserWarning):
    """Most columns of a sublattice are barely above the noise: their positions are not measurable."""


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
