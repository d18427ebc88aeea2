"""Build napari layers that line up with a STEM image layer.

A per-cell or per-window map indexed by ``(i, j)`` is placed with the lattice affine
(grid -> image px) composed with the image layer's own data -> world transform, so each value
sits on its B column (or window centre) even for a rotated lattice and a pm scale.
"""

from __future__ import annotations

import numpy as np
from napari.utils.transforms import Affine

#: Metadata key under which our objects (Columns, Cells, results) ride on layers.
META_KEY = "napari_causal_lattice"


def plugin_meta(viewer, name: str) -> dict:
    """Our metadata (``metadata[META_KEY]``) of the layer called ``name``; empty when absent."""
    if name in viewer.layers:
        meta = viewer.layers[name].metadata.get(META_KEY)
        if isinstance(meta, dict):
            return meta
    return {}


def is_map_layer(layer) -> bool:
    """True for the map layers this plugin adds (descriptor maps, overlays, loadings), not STEM images."""
    meta = layer.metadata.get(META_KEY)
    return isinstance(meta, dict) and bool(meta.get("map"))


def image_data_to_world(image_layer) -> np.ndarray:
    """(3, 3) matrix mapping the image layer's 2D pixel (y, x, 1) to world coordinates.

    Uses only public layer attributes (scale, translate, rotate, shear, affine) and the last two
    dimensions of the layer.
    """
    ndim = image_layer.ndim
    data2physical = Affine(
        scale=image_layer.scale,
        translate=image_layer.translate,
        rotate=image_layer.rotate,
        shear=image_layer.shear,
        ndim=ndim,
    ).affine_matrix
    physical2world = image_layer.affine.affine_matrix
    full = physical2world @ data2physical
    keep = [ndim - 2, ndim - 1, ndim]
    return full[np.ix_(keep, keep)]


def aligned_affine(grid_affine_px: np.ndarray, image_layer=None) -> np.ndarray:
    """Affine for a map layer: grid (i, j) -> world, through the image's pixel frame.

    Parameters
    ----------
    grid_affine_px : (3, 3) array
        Grid index -> image pixel (y, x) homogeneous matrix (e.g. ``Lattice.affine``).
    image_layer : napari Image layer, optional
        The STEM image; when given, its scale/translate/affine are composed in.
    """
    grid_affine_px = np.asarray(grid_affine_px, dtype=float)
    if image_layer is None:
        return grid_affine_px
    return image_data_to_world(image_layer) @ grid_affine_px


def symmetric_limits(values: np.ndarray) -> tuple[float, float]:
    """Colour limits ``(-m, m)`` around zero for a signed map (NaN ignored; (-1, 1) when empty)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    m = float(np.max(np.abs(finite))) if finite.size else 0.0
    if m == 0.0:
        m = 1.0
    return -m, m


def map_layer_tuple(
    values: np.ndarray,
    grid_affine_px: np.ndarray,
    *,
    name: str,
    image_layer=None,
    signed: bool = False,
    units: str | None = None,
    colormap: str | None = None,
    metadata: dict | None = None,
    opacity: float = 0.7,
) -> tuple:
    """LayerDataTuple of an image layer showing ``values`` (ny, nx) aligned on the STEM image.

    Signed maps get a diverging colormap with symmetric limits; NaN pixels stay transparent.  ``units`` (the
    unit of the values) goes into the layer metadata; the layer's axis units are copied from the image layer.
    """
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if signed:
        limits = symmetric_limits(values)
        cmap = colormap or "PiYG"
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        limits = (lo, hi if hi > lo else lo + 1.0)
        cmap = colormap or "viridis"
    meta = dict(metadata or {})
    meta[META_KEY] = {**meta.get(META_KEY, {}), "map": True}
    if units is not None:
        meta.setdefault("units", units)
    kwargs = {
        "name": name,
        "affine": aligned_affine(grid_affine_px, image_layer),
        "colormap": cmap,
        "contrast_limits": limits,
        "opacity": opacity,
        "blending": "translucent",
        "interpolation2d": "nearest",
        "metadata": meta,
    }
    if image_layer is not None:
        kwargs["units"] = tuple(image_layer.units)[-2:]
    return (values, kwargs, "image")
