"""Column contrast: bright columns (HAADF, ADF) or dark ones (ABF, BF), and the image the analysis uses."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._warn import warn
from .inputs import as_image


#: Contrast statistic (skewness of the high-passed image) below which columns are dark (see detect_contrast).
_DARK_SKEW = -0.1


class ContrastWarning(UserWarning):
    """The image's column contrast was inverted for the analysis."""


def detect_contrast(image, *, cell_px: float | None = None) -> tuple[str, float]:
    """Whether the atom columns are bright (HAADF, ADF) or dark (ABF, BF) spots.

    Bright columns are narrow peaks on a broad, low background; dark columns are narrow dips on a bright
    one.  The image, high-passed at about one cell (``cell_px``, default 1/8 of the shorter side) and lightly
    smoothed, is skewed positive in the first case and negative in the second.

    Parameters
    ----------
    image : (H, W) array
    cell_px : float, optional
        Lattice spacing in px (sets the high-pass scale).

    Returns
    -------
    contrast : {"bright", "dark"}
    skewness : float
        The statistic (dimensionless); ``"dark"`` below -0.1.
    """
    img = as_image(image)
    scale = float(cell_px) if cell_px else min(img.shape) / 8.0
    step = max(1, int(scale // 10))  # a cell keeps >= 10 samples: columns stay resolved
    img, scale = img[::step, ::step], scale / step
    smooth = ndimage.gaussian_filter(img, max(0.5, 0.05 * scale))
    high = smooth - ndimage.uniform_filter(smooth, 2 * int(scale) + 1, mode="nearest")
    high = high - high.mean()
    sd = high.std()
    skew = float(np.mean(high**3) / sd**3) if sd > 0 else 0.0
    return ("dark" if skew < _DARK_SKEW else "bright"), skew


def _apply_contrast(img, contrast, v1, v2):
    """The image to analyse (inverted for dark columns) and a note for the provenance ("" when unchanged)."""
    if contrast not in ("auto", "bright", "dark"):
        raise ValueError(f"contrast must be 'auto', 'bright' (HAADF/ADF) or 'dark' (ABF/BF), got {contrast!r}")
    if contrast == "bright":
        return img, ""
    if contrast == "auto":
        found, skew = detect_contrast(img, cell_px=min(np.hypot(*v1), np.hypot(*v2)))
        if found == "bright":
            return img, ""
        raise ValueError(
            f"the atom columns of this image are dark spots on a bright background (skewness {skew:.2f} of the "
            "high-passed image), as in annular bright-field (ABF) or bright-field (BF) images; the analysis "
            "expects bright columns (HAADF/ADF). Analyse an ADF/HAADF image of the same area if there is one, or "
            "pass contrast='dark' to analyse the inverted image (dark-field positions are more robust: ABF "
            "column positions shift with defocus and tilt, and light columns such as oxygen show up too)."
        )
    note = ("columns are dark (ABF/BF contrast): the inverted image (max - image) was analysed; intensities are "
            "dips below the background, not HAADF Z-contrast")
    warn(note, ContrastWarning)
    return img.max() - img, note
