"""npe2 reader: open STEM images (.tif/.tiff, .npy, .hspy/.hdf5, .dm3/.dm4/.emd) with their pixel size.

The image layer's ``scale`` is the pixel size in pm/px and its ``units`` are ``("pm", "pm")``, so every
length measured on it is in pm.  A file without a pixel size opens in px (scale 1, units "pixel") and a
napari notification says so; so does a warning when the file's axis scale had no unit and nm was assumed (the unit
used is in ``metadata[META_KEY]["image_info"]["scale_unit"]``, shown again by the Atom columns dock).
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_info, show_warning

from ..readers import IMAGE_EXTENSIONS, LoadedImage, load_image
from .layers import META_KEY


def get_reader(path):
    """Return :func:`read_images` when every path is an image file we read, else None (napari tries others)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or any(Path(p).suffix.lower() not in IMAGE_EXTENSIONS for p in paths):
        return None
    return read_images


def image_layer_tuple(loaded: LoadedImage, name: str | None = None) -> tuple:
    """LayerDataTuple of a loaded image: scale = pixel size (pm/px), units pm (or px without a pixel size).

    A (N, H, W) stack gets a leading frame axis (scale 1), shown with a slider; the widgets analyse the
    displayed plane.

    ``metadata[META_KEY]`` holds ``{"pixel_size": pm/px or None, "image_info": loaded.info, "notes": [...]}``.
    """
    ps = loaded.pixel_size
    scale = (1.0, 1.0) if ps is None else (ps, ps)
    units = ("pixel", "pixel") if ps is None else ("pm", "pm")
    if loaded.data.ndim == 3:  # a stack: one slider axis in frames
        scale, units = (1.0, *scale), ("pixel", *units)
    meta = {META_KEY: {"pixel_size": ps, "image_info": loaded.info, "notes": list(loaded.notes),
                       "source": loaded.source}}
    kwargs = {"name": name or Path(loaded.source).stem, "scale": scale, "units": units, "colormap": "gray",
              "metadata": meta}
    return (loaded.data, kwargs, "image")


def read_images(path) -> list[tuple]:
    """Read one image file (or several) into image LayerDataTuples; notes become napari notifications.

    Raises ValueError / ImportError with the reader's message for unreadable files.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for p in paths:
        loaded = load_image(p, plane="all")
        assumed = (loaded.metadata.get("scale_unit") or {}).get("source") == "assumed"
        for note in loaded.notes:
            if (loaded.pixel_size is None and "no pixel size" in note) or (assumed and "has no units" in note):
                show_warning(note)
            else:
                show_info(note)
        layers.append(image_layer_tuple(loaded))
    return layers
