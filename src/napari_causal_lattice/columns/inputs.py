"""Checks of the user's inputs to the column functions (image, pixel size, spacing, options), with actionable
errors."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .._warn import warn
from ..motif import Motif


def as_image(image) -> np.ndarray:
    """Check and convert an image to a 2D float64 array.

    RGB(A) images (last axis 3 or 4) are converted to grey with a warning.  NaN/inf pixels,
    constant images and images smaller than 16 x 16 px raise ``ValueError``.
    """
    try:
        arr = np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - any conversion failure means "not an image"
        raise TypeError(f"image must be a 2D array of pixel values, got {type(image).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"image must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        warn(
            f"image of shape {arr.shape} looks like RGB(A); converted to grey by averaging R, G and B. "
            "For quantitative intensities load the raw detector image instead.",
            UserWarning,
        )
        arr = arr[..., :3].astype(float).mean(axis=-1)
    if arr.ndim != 2:
        raise ValueError(
            f"image must be 2D (rows, columns), got shape {arr.shape}; pick one plane of a stack or one channel"
        )
    arr = arr.astype(np.float64, copy=False)  # read-only below: a float64 image is not copied
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"image has {int(bad.sum())} NaN or infinite pixel(s) out of {arr.size}; "
            "replace them (e.g. by the local median) or crop them away before finding columns"
        )
    if min(arr.shape) < 16:
        raise ValueError(
            f"image of shape {arr.shape} is too small; use an image (or crop) with at least 3x3 unit cells"
        )
    if np.ptp(arr) == 0:
        raise ValueError(
            "image is constant (every pixel has the same value), so there are no atom columns to find; "
            "check that you picked the STEM image (not a mask, a label layer or an empty frame)"
        )
    return arr


def _spacing_px(spacing, pixel_size):
    if spacing is None:
        return None
    value = float(spacing)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"spacing must be a positive length, got {spacing!r}")
    return value / pixel_size if pixel_size is not None else value


def _check_pixel_size(pixel_size):
    if pixel_size is None:
        return None
    value = float(pixel_size)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"pixel_size must be a positive number of pm per px, got {pixel_size!r}")
    return value


def _check_intensity(intensity):
    if intensity not in ("gaussian", "disk"):
        raise ValueError(f"intensity must be 'gaussian' (fitted volume) or 'disk' (disk sum), got {intensity!r}")


def _check_projection(projection):
    if projection != "auto" and projection not in ("[001]", "[110]") and not isinstance(projection, Motif):
        raise ValueError(f"projection must be 'auto', '[001]' or '[110]', got {projection!r}")


def _check_scan_sigma(scan_sigma):
    """``scan_sigma`` as a (2,) array of px (y, x), or None."""
    if scan_sigma is None:
        return None
    try:
        value = np.broadcast_to(np.asarray(scan_sigma, dtype=float), (2,)).copy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scan_sigma must be a number or a (y, x) pair of px, got {scan_sigma!r}") from exc
    if not np.all(np.isfinite(value)) or np.any(value < 0):
        raise ValueError(f"scan_sigma must be >= 0 px, got {scan_sigma!r}")
    return value


def _default_radius(positions: np.ndarray) -> float:
    if len(positions) < 2:
        raise ValueError("need at least 2 columns to choose a fit radius; pass radius= (px) explicitly")
    dist, _ = cKDTree(positions).query(positions, k=2)
    nn = float(np.median(dist[:, 1]))
    if nn <= 0:
        raise ValueError("columns sit on top of each other; remove duplicate points")
    return 0.5 * nn
