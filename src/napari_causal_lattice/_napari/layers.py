"""Build napari layers that line up with a STEM image layer.

A map is placed with an affine to image px composed with the image layer's own data -> world transform, so
each value sits on its B column (or window centre) even for a rotated lattice and a pm scale.  Per-cell maps
(and per-window maps given per cell) are painted on each cell's own region of the image
(:func:`napari_causal_lattice.placement.cell_regions`, :func:`raster_affine`), so they follow curved lattices;
a map indexed by ``(i, j)`` alone is placed with the lattice affine (grid -> image px).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from napari.utils.colormaps import DirectLabelColormap
from napari.utils.transforms import Affine

from ..placement import cell_regions

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


def symmetric_limits(values: np.ndarray, *, percentile: float = 100.0) -> tuple[float, float]:
    """Colour limits ``(-m, m)`` around zero for a signed map, ``m`` the ``percentile`` of ``|values|``.

    NaN is ignored; (-1, 1) when nothing is finite or everything is 0.
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    m = float(np.percentile(np.abs(finite), percentile)) if finite.size else 0.0
    if m == 0.0:
        m = float(np.max(np.abs(finite))) if finite.size else 0.0
    if m == 0.0:
        m = 1.0
    return -m, m


#: Half-ranges (times a power of 10) of signed maps whose colour bar napari labels with at least 3 ticks
#: (measured on napari 0.6: +-0.8 and +-0.9 get a lone "0").
_SIGNED_NICE = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 10.0)


def nice_limits(low: float, high: float, *, max_ticks: int = 5) -> tuple[float, float]:
    """Colour limits widened a little so that napari's colour bar labels at least 3 ticks.

    napari's colour bar labels only multiples of a 1-2-5 step inside the limits, so limits of +-0.85 get a
    single "0".  Symmetric limits ``(-m, m)`` become the next half-range of :data:`_SIGNED_NICE` (+-0.85 ->
    +-1, +-10.8 -> +-12); others are widened to multiples of a 1-2-5 step that cuts the range into at most
    ``max_ticks`` intervals (381-399 -> 380-400).
    """
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        return low, high
    if np.isclose(low, -high):
        exponent = np.floor(np.log10(high))
        half = next(m * 10.0**exponent for m in _SIGNED_NICE if m * 10.0**exponent >= high * (1 - 1e-12))
        half = float(round(half, 12))
        return -half, half
    raw = (high - low) / max_ticks
    exponent = np.floor(np.log10(raw))
    step = next(m * 10.0**exponent for m in (1.0, 2.0, 5.0, 10.0) if m * 10.0**exponent >= raw)
    lo, hi = np.floor(low / step) * step, np.ceil(high / step) * step
    return float(round(lo, 12)), float(round(hi, 12))


def robust_limits(values: np.ndarray, *, signed: bool, percentile: float = 98.0) -> tuple[float, float]:
    """Colour limits that one outlier cannot wash out.

    Signed maps: ``(-m, m)`` with ``m`` the ``percentile`` of ``|values|``; others: the ``100 - percentile``
    and ``percentile`` percentiles.  NaN is ignored; a flat or empty map gets a unit-wide range.
    """
    if signed:
        return symmetric_limits(values, percentile=percentile)
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [100.0 - percentile, percentile]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


#: Diverging colormap of signed maps, the same in the dock's heatmaps (matplotlib) and on the canvas.
SIGNED_CMAP = "RdBu_r"
#: Share of the colour range around 0 that fades to transparent on the canvas (atoms stay visible there).
CLEAR_CENTRE = 0.3


def clear_centre_colormap(name: str = SIGNED_CMAP, *, clear: float = CLEAR_CENTRE):
    """napari Colormap of the matplotlib diverging map ``name`` whose centre is transparent.

    The opacity rises linearly from 0 at the centre to 1 at ``clear`` of the half-range, so near-zero couplings
    leave the STEM image underneath visible instead of a white fog, and strong ones are drawn in full colour.
    """
    import matplotlib
    from napari.utils.colormaps import Colormap

    t = np.linspace(0.0, 1.0, 257)
    rgba = np.asarray(matplotlib.colormaps[name](t), dtype=float)
    rgba[:, 3] = np.clip(np.abs(2.0 * t - 1.0) / clear, 0.0, 1.0)
    return Colormap(colors=rgba, controls=t, name=f"{name} (clear centre)")


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
    opacity: float = 0.85,
) -> tuple:
    """LayerDataTuple of an image layer showing ``values`` (ny, nx) aligned on the STEM image.

    Signed maps get the diverging colormap of the docks with a transparent centre (:func:`clear_centre_colormap`)
    and robust symmetric limits (:func:`robust_limits`), widened to limits napari's colour bar labels with
    ticks (:func:`nice_limits`); NaN pixels stay transparent.  ``units`` (the unit of the values) goes into the
    layer metadata; the layer's axis units are
    copied from the image layer.  Add the tuple with :func:`add_map_layer`.
    """
    values = np.asarray(values, dtype=float)
    limits = nice_limits(*robust_limits(values, signed=signed))
    cmap = colormap or (clear_centre_colormap() if signed else "viridis")
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


def link_layer_tuple(
    codes: np.ndarray,
    grid_affine_px: np.ndarray,
    *,
    name: str,
    names,
    colors,
    image_layer=None,
    metadata: dict | None = None,
    opacity: float = 0.7,
) -> tuple:
    """LayerDataTuple of a categorical map (a labels layer) of link-type codes, aligned on the STEM image.

    Parameters
    ----------
    codes : (ny, nx) int array
        Category per window (0 = none, drawn transparent).
    grid_affine_px : (3, 3) array
        Window index -> image pixel (y, x) homogeneous matrix.
    names, colors : sequences of str
        Name and colour of each code; the names show in the status bar under the cursor (layer features).
    """
    color_dict = {None: "transparent", **{k: color for k, color in enumerate(colors)}}
    meta = dict(metadata or {})
    meta[META_KEY] = {**meta.get(META_KEY, {}), "map": True}
    kwargs = {
        "name": name,
        "affine": aligned_affine(grid_affine_px, image_layer),
        "colormap": DirectLabelColormap(color_dict=color_dict),
        "features": pd.DataFrame({"index": np.arange(len(names)), "link": list(names)}),
        "opacity": opacity,
        "metadata": meta,
    }
    if image_layer is not None:
        kwargs["units"] = tuple(image_layer.units)[-2:]
    return (np.asarray(codes, dtype=np.int32), kwargs, "labels")


def _lowest_points_index(viewer) -> int | None:
    """Index (in the layer list, 0 = bottom) of the lowest Points or Vectors layer, None when there is none."""
    from napari.layers import Points, Vectors

    found = [k for k, layer in enumerate(viewer.layers) if isinstance(layer, (Points, Vectors))]
    return found[0] if found else None


def show_scale_bar(viewer, image_layer=None) -> None:
    """Turn napari's scale bar on, in the image's length unit (pm for calibrated images)."""
    viewer.scale_bar.visible = True
    units = getattr(image_layer, "units", None)
    if units is not None and str(units[-1].dimensionality) == "[length]":
        viewer.scale_bar.unit = f"{units[-1]:~}"


def update_layer(layer, layer_tuple: tuple):
    """Give ``layer`` the data and every property of ``layer_tuple`` (a LayerDataTuple of the layer's own kind:
    the callers refresh a layer from the function that made it) in place; returns the layer.

    A re-run refreshes its own layers this way: on the software-OpenGL test display setting a layer's data takes
    0.04-0.14 s, where removing a layer takes 0.8-1.1 s in the GUI thread (napari 0.6 rebuilds the scene graph
    and collects garbage) and adding one 1-1.5 s.  The name changes only when it differs.
    """
    data, kwargs, _kind = layer_tuple
    layer.data = data
    for key, value in kwargs.items():
        if key != "name" or value != layer.name:
            setattr(layer, key, value)
    return layer


def add_map_layer(viewer, layer_tuple: tuple, *, image_layer=None):
    """Add a map (LayerDataTuple from :func:`map_layer_tuple`) so the canvas stays readable.

    The new layer goes below the column Points/Vectors layers (the atoms stay visible on top), the plugin's
    older map layers are hidden (only the newest result shows), its colour bar is on and napari's scale bar is
    shown.  Returns the layer.
    """
    from napari.layers import Layer

    data, kwargs, kind = layer_tuple
    for layer in viewer.layers:
        if is_map_layer(layer) and layer.visible:
            layer.visible = False
    layer = Layer.create(data, kwargs, kind)
    if hasattr(layer, "colorbar"):  # image maps; a categorical (labels) map has a text legend instead
        layer.colorbar.visible = True
    below = _lowest_points_index(viewer)
    # inserted in place: moving a layer afterwards makes napari rebuild every layer's canvas overlays (~3 s)
    viewer.layers.insert(len(viewer.layers) if below is None else below, layer)
    show_scale_bar(viewer, image_layer)
    show_caption(viewer, layer)
    return layer


def map_caption(layer) -> str:
    """What the colour bar of a map shows and in which unit, on two short lines (the canvas beside the docks
    is narrow), e.g. ``"Px <- Py (window 20)\n[pm/pm]"``."""
    unit = layer.metadata.get("units")
    if not unit or f"[{unit}]" in layer.name:
        return layer.name
    return f"{layer.name}\n[{unit}]"


def show_caption(viewer, layer) -> None:
    """Write the map's caption (:func:`map_caption`) in the canvas corner (napari's text overlay, bottom left),
    since napari's colour bar has ticks but no title."""
    viewer.text_overlay.text = map_caption(layer)
    viewer.text_overlay.position = "bottom_left"
    viewer.text_overlay.font_size = 10
    viewer.text_overlay.visible = True


def marker_layers(viewer) -> list:
    """The plugin's column Points layers and arrow Vectors layers (what the "show columns and arrows" switch
    hides), truth layers of the synthetic sample excluded."""
    from napari.layers import Points, Vectors

    return [layer for layer in viewer.layers
            if isinstance(layer, (Points, Vectors)) and META_KEY in layer.metadata and not is_truth_layer(layer)]


def set_markers_visible(viewer, visible: bool) -> None:
    """Show or hide every column and arrow layer of the plugin at once (maps stay as they are)."""
    for layer in marker_layers(viewer):
        layer.visible = bool(visible)


def markers_check(viewer):
    """A check box "show columns and arrows" that shows or hides all of them (:func:`set_markers_visible`)."""
    from qtpy.QtWidgets import QCheckBox

    check = QCheckBox("show columns and arrows")
    check.setChecked(True)
    check.setToolTip("Hide the atom columns and polarization arrows to look at the map and the image underneath")
    check.toggled.connect(lambda on: set_markers_visible(viewer, on))
    return check


def show_only(viewer, layer) -> None:
    """Make ``layer`` the one visible plugin map (with its colour bar); the other map layers are hidden."""
    for other in viewer.layers:
        if is_map_layer(other) and other is not layer:
            other.visible = False
    layer.visible = True
    show_caption(viewer, layer)


def is_truth_layer(layer) -> bool:
    """True for the hidden planted-truth layers of the synthetic sample (never picked automatically)."""
    meta = layer.metadata.get(META_KEY)
    return isinstance(meta, dict) and meta.get("truth") is not None


def newest_matching(layers, base: str) -> str | None:
    """Name of the newest layer called ``base`` or ``base [k]`` (the suffix Find adds), None when none is."""
    names = [layer.name for layer in layers if layer.name == base or layer.name.startswith(f"{base} [")]
    return names[-1] if names else None


def raster_affine(raster) -> np.ndarray:
    """(3, 3) matrix: raster pixel ``(r, c, 1)`` of a :class:`~napari_causal_lattice.placement.CellRaster` ->
    image pixel ``(y, x, 1)`` (its ``step`` and ``translate``)."""
    (sy, sx), (ty, tx) = raster.scale, raster.translate
    return np.array([[sy, 0.0, ty], [0.0, sx, tx], [0.0, 0.0, 1.0]])


def image_shape(image_layer) -> tuple[int, int]:
    """``(H, W)`` of the displayed 2D plane of an image layer (the largest level of a multiscale image)."""
    data = image_layer.data[0] if image_layer.multiscale else image_layer.data
    return tuple(int(n) for n in data.shape[-2:])


def cell_map_tuple(cells, descriptor: str, *, image_layer=None, signed: bool = False, raster=None) -> tuple:
    """LayerDataTuple of one descriptor's per-cell map, each value on its cell, aligned on the image.

    With a ``raster`` (:func:`napari_causal_lattice.placement.cell_regions` of the cells on the image; computed
    here when only ``image_layer`` is given, so pass it from a worker for large images) every cell's value
    fills its own region around its B column, so the map follows curved and distorted lattices; without an
    image the map is the cell grid ``(i, j)`` placed with the lattice affine.
    """
    unit = cells.units[descriptor]
    meta = {META_KEY: {"cells": cells, "descriptor": descriptor}}
    if raster is None and image_layer is not None:
        raster = cell_regions(cells, image_shape(image_layer))
    if raster is None:
        values, affine = cells.maps()[descriptor], cells.lattice.affine
    else:
        values, affine = raster.paint(cells.table[descriptor].to_numpy(dtype=float)), raster_affine(raster)
    return map_layer_tuple(
        values, affine, name=f"{descriptor} [{unit}]", image_layer=image_layer, signed=signed, units=unit,
        metadata=meta,
    )
