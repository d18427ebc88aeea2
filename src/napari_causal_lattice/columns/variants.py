""":func:`fit_variants`: the same columns re-measured with other fit models (the systematic uncertainty of a
mean polarization)."""

from __future__ import annotations

import dataclasses

from .. import _gaussfit
from ..scan import correct_scan
from .gaussians import _peel, _refine
from .inputs import _default_radius, as_image
from .result import Columns, Refined


def fit_variants(image, columns: Columns, *, radii=(0.7, 1.3)) -> dict[str, Columns]:
    """The same columns measured with other fit models, for the systematic uncertainty of a mean P.

    An absolute polarization depends on how a column's position is read off its (asymmetric, overlapping) image:
    each variant re-measures every position on ``image`` (scan-corrected as ``columns.scan`` says) from the
    current fits:

    * ``"gaussian"``: one Gaussian + constant per column on the image itself (neighbours not subtracted);
    * ``"centre_of_mass"``: background-subtracted centre of mass on a disk of 0.6 x the fit radius;
    * ``"radius x<f>"``: the Gaussian fits with neighbours subtracted (as :func:`find_columns`), at ``f`` times
      the fit radius, for each ``f`` in ``radii``.

    Parameters
    ----------
    image : (H, W) array
        The image the columns were found on.
    columns : Columns
        Columns from :func:`find_columns` (or :func:`columns_from_positions`).
    radii : sequence of float
        Fit-radius factors of the radius variants.

    Returns
    -------
    dict
        Variant name -> Columns (same columns, same order; positions re-measured).
    """
    img = as_image(image)
    if img.shape != tuple(columns.image_shape):
        raise ValueError(f"image has shape {img.shape}, but the columns were found on {tuple(columns.image_shape)}")
    if columns.scan is not None and (columns.scan.applied or columns.scan.drift_applied):
        img = correct_scan(img, columns.scan.correction)
    radius = columns.provenance.get("params", {}).get("radius") or _default_radius(columns.positions)
    is_a = columns.sublattice == "A"
    start = Refined(columns.positions, columns.width, columns.intensity, columns.quality, columns.sigma)
    out = {}
    plain = _refine(img, columns.positions, float(radius), intensity="gaussian", move=True, progress=None,
                    cancel=None, done0=0, total=1)
    out["gaussian"] = plain.positions
    out["centre_of_mass"] = _gaussfit.centre_of_mass(img, columns.positions, 0.6 * float(radius))
    for factor in radii:
        out[f"radius x{factor:g}"] = _peel(img, start, is_a, float(radius) * float(factor), None)[0].positions
    return {name: dataclasses.replace(columns, positions=pos) for name, pos in out.items()}
