"""Stage 6 of :func:`~napari_causal_lattice.columns.find_columns`: the scan line jitter and slow drift, estimated
from the fitted columns and, when significant, corrected by resampling the rows (:mod:`napari_causal_lattice.scan`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..scan import correct_scan, estimate_scan_distortion
from .gaussians import _peel
from .geometry import _dual, _fit_lattice, _Grid
from .result import Refined


#: Estimated line jitter (px rms) below which the image is not resampled: it would move positions by far less
#: than their uncertainty (about 0.01-0.05 px on good scans).
_MIN_JITTER_PX = 0.005
#: The image is resampled only when the estimated jitter (rms) exceeds this many times its per-line uncertainty:
#: an undetected jitter is reported, not "corrected" with noise.
_JITTER_SIGNIFICANCE = 2.0
#: Line shifts with more than this share of their variance at the lattice's row frequencies are model misfit, not
#: scan jitter, and are not corrected (see _lattice_row_share).
_MAX_LATTICE_SHARE = 0.5


def _scan_stage(img, refined: Refined, is_a, grid: _Grid, pixel_size, correct: bool, cancel):
    """Stage 6: estimate the line jitter and the slow drift; with ``correct`` resample the rows to undo what is
    significant (the jitter unless it follows the lattice rows, the drift above 3 sigma) and refit the columns.

    Returns the (corrected) image, the columns and the :class:`~napari_causal_lattice.scan.ScanDistortion`.
    """
    lattice = _fit_lattice(refined.positions[is_a], grid.v1, grid.v2, img.shape)
    scan = estimate_scan_distortion(img, refined.positions, refined.width, refined.intensity,
                                    pixel_size=pixel_size, is_a=is_a, lattice=lattice)
    if not correct:
        return img, refined, scan
    jitter = scan.rms_px >= max(_MIN_JITTER_PX, _JITTER_SIGNIFICANCE * scan.residual_px)
    periodic = _lattice_row_share(scan.shifts, grid.v1, grid.v2, img.shape[1]) if jitter else 0.0
    if periodic > _MAX_LATTICE_SHARE:
        jitter = False
        note = (f"the line shifts repeat with the lattice rows ({100 * periodic:.0f} % of their variance at the "
                "lattice's row frequencies): that is the column model's misfit, not scan jitter, so the image was "
                "not resampled for them")
        scan = dataclasses.replace(scan, provenance={**scan.provenance, "note": note})
    drift = scan.drift_significant()
    if not (jitter or drift):
        return img, refined, scan
    scan = dataclasses.replace(scan, applied=jitter, drift_applied=drift)
    img = correct_scan(img, scan.correction)
    refined = _peel(img, refined, is_a, grid.radius, cancel)[0]
    return img, refined, scan


def _lattice_row_share(shifts, v1, v2, width: int, *, order: int = 3) -> float:
    """Share of the variance of the per-line shifts at the frequencies with which the lattice repeats down the
    image rows (the reciprocal vectors up to ``order`` that are nearly constant along a row of ``width`` px).

    Scan jitter has no reason to follow the lattice; the misfit of the column model does (rows through columns
    differ from rows between them), so a shift pattern concentrated there is not jitter.
    """
    s = np.asarray(shifts, dtype=float) - np.mean(shifts)
    power = np.abs(np.fft.rfft(s)) ** 2
    total = power[1:].sum()
    if total <= 0:
        return 0.0
    dual = _dual(np.asarray(v1, float), np.asarray(v2, float))  # rows: reciprocal vectors (y, x), cycles per px
    freqs = np.fft.rfftfreq(len(s))
    near = np.zeros(len(freqs), dtype=bool)
    for h in range(-order, order + 1):
        for k in range(-order, order + 1):
            g = h * dual[0] + k * dual[1]
            if (h or k) and abs(g[1]) * width < 0.5 and abs(g[0]) > 0:
                near |= np.abs(freqs - abs(g[0])) <= 1.5 / len(s)
    near[0] = False
    return float(power[near].sum() / total)
