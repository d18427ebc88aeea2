"""Files in and results out: STEM image readers and the results store.

Reading
    :func:`load_image` opens .tif/.tiff (tifffile), .npy, HyperSpy .hspy/.hdf5 (h5py) and, through RosettaSciIO,
    Digital Micrograph .dm3/.dm4, Velox/NCEM .emd and FEI TIA .ser files.  It returns a
    :class:`LoadedImage`: a 2D float64 array plus the pixel size in pm/px (or ``None`` when the file has none,
    in which case the image stays in px and a note says so).

Writing
    :func:`save_results` stores result objects (columns, cells, global and sliding LiNGAM, PCA) in one folder:
    ``manifest.json`` (format version, package versions, every object's provenance, the input image) and
    ``arrays.npz`` (every array, under flattened keys such as ``cells/table/data/Px``), plus ``columns.csv`` /
    ``cells.csv`` in physical units.  The save is atomic: everything is written into a hidden temporary folder
    beside the target and renamed into place at the end, so an interrupted save never leaves a half-written
    result.  The manifest also records the run (input hash, every parameter that changes a number, package
    version: :func:`resume_status` compares it with a new run; the figure options, which only re-draw the figures),
    each step's outcome (``steps``), a SHA-256 checksum of every file and every stored array, and a checksum of
    the manifest's own content (names, labels, parameters), all of which :func:`load_results` verifies: it reads
    the folder back exactly or raises :class:`ResultsError` naming the damaged file.  :class:`ResultsLock` keeps
    two runs from writing into one results folder at the same time.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import os
import shutil
import socket
import time
import uuid
import zipfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .provenance import jsonable, package_versions

#: Version of the results folder layout; bump when the layout or a state key changes incompatibly.
FORMAT_VERSION = 1
FORMAT_NAME = "napari-causal-lattice results"
MANIFEST_NAME = "manifest.json"
ARRAYS_NAME = "arrays.npz"

#: File extensions :func:`load_image` understands.
IMAGE_EXTENSIONS = (".tif", ".tiff", ".npy", ".hspy", ".hdf5", ".dm3", ".dm4", ".emd", ".ser")

#: Result fields of a results folder, in pipeline order, and the class each one holds.
RESULT_CLASSES = {
    "columns": "napari_causal_lattice.columns:Columns",
    "cells": "napari_causal_lattice.cells:Cells",
    "lingam": "napari_causal_lattice.causal.result:LingamResult",
    "sliding": "napari_causal_lattice.sliding:SlidingResult",
    "pca": "napari_causal_lattice.pca:AdjacencyPCA",
    "null": "napari_causal_lattice.null:InstrumentNull",
}

# length unit -> pm
_LENGTH_TO_PM = {
    "pm": 1.0,
    "a": 100.0,
    "å": 100.0,
    "\u212b": 100.0,
    "angstrom": 100.0,
    "nm": 1e3,
    "um": 1e6,
    "µm": 1e6,
    "\u03bcm": 1e6,
    "micron": 1e6,
    "microns": 1e6,
    "micrometer": 1e6,
    "mm": 1e9,
    "cm": 1e10,
    "m": 1e12,
}
#: Files and folders a results folder of ours may hold besides those its manifest lists (a damaged manifest
#: leaves only these names to recognise it by).
_OUR_NAMES = (MANIFEST_NAME, ARRAYS_NAME, "columns.csv", "cells.csv", "figures", "report.html")
#: Hidden siblings of a results folder made by an atomic save: ``.<name>.tmp-<host>-<pid>-<hex>`` while it is
#: written, ``.<name>.old-<host>-<pid>-<hex>`` while it replaces earlier results.
_TEMP_KINDS = ("tmp", "old")
#: A temporary folder of another machine (or of a format without a process id) counts as abandoned after this.
STALE_SECONDS = 24 * 3600.0


class ResultsError(ValueError):
    """A results folder cannot be used: not ours, incomplete, damaged or of another format.

    The message names the folder and the file at fault.  It is the only error :func:`load_results` raises for
    anything found on disk (a subclass of ValueError).
    """


# plausible pixel sizes (pm/px) of a STEM image; outside this range a calibration is treated as a placeholder
_PLAUSIBLE_PM = (1e-2, 1e5)


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class LoadedImage:
    """A 2D STEM image read from a file.

    Attributes
    ----------
    data : (H, W) float64 array
        Image intensities (detector counts or whatever the file holds), rows = y; (N, H, W) for a stack
        read with ``plane="all"``.
    pixel_size : float or None
        Pixel size in pm/px; ``None`` when the file does not record one (the image is then in px).
    units : str
        ``"pm"`` when ``pixel_size`` is known, else ``"px"``.
    metadata : dict
        What the reader found (format, original shape and dtype, calibration source, offsets, ...).
    source : str
        Absolute path of the file.
    sha256 : str
        SHA-256 of the file's bytes (hex), recorded in the results manifest.
    notes : tuple of str
        Things the user should know (no pixel size, RGB converted to gray, plane chosen from a stack...).
    """

    data: np.ndarray
    pixel_size: float | None
    units: str
    metadata: dict
    source: str
    sha256: str
    notes: tuple[str, ...] = ()

    @property
    def info(self) -> dict:
        """JSON-able description of the input for a results manifest (``image_info``)."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "shape": [int(n) for n in self.data.shape],
            "pixel_size": self.pixel_size,
            "units": self.units,
            "scale_unit": self.metadata.get("scale_unit"),
            "notes": list(self.notes),
        }


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def array_sha256(array) -> str:
    """SHA-256 (hex) of an in-memory image (shape, dtype and bytes), for images that come from no file."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.shape}{array.dtype.str}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def length_to_pm(value: float, unit) -> float | None:
    """Convert a length to pm; ``None`` when the unit is missing or not a length unit we know."""
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    if not isinstance(unit, str):
        return None
    factor = _LENGTH_TO_PM.get(unit.strip().lower().replace("\\u00b5", "µ"))
    if factor is None:
        return None
    return float(value) * factor


def _plausible(pixel_size_pm) -> bool:
    return pixel_size_pm is not None and np.isfinite(pixel_size_pm) and _PLAUSIBLE_PM[0] <= pixel_size_pm <= _PLAUSIBLE_PM[1]


def load_image(path, *, plane: int | str | None = None, signal: str | None = None,
               scale_unit: str | None = None) -> LoadedImage:
    """Read a 2D STEM image and its pixel size.

    Parameters
    ----------
    path : str or Path
        A .tif/.tiff, .npy, HyperSpy .hspy/.hdf5, Digital Micrograph .dm3/.dm4, Velox .emd or TIA .ser file.
    plane : int or "all", optional
        For a stack of images (3D data), the index of the image to use, or ``"all"`` to keep the whole
        (N, H, W) stack (the napari reader does, and shows a slider).  A stack without ``plane`` is refused
        with a message giving its size.  An RGB(A) image is converted to gray instead (with a note).
    signal : str, optional
        For files holding several signals (Velox .emd: HAADF, BF, ...), the title of the one to use;
        by default the first 2D image, preferring one titled HAADF.
    scale_unit : str, optional
        Length unit of an axis scale the file stores without a unit (HyperSpy/RosettaSciIO files), e.g.
        ``"nm"``, ``"A"`` or ``"pm"``.  By default such a scale in 1e-4 ... 1 is assumed to be in nm (HyperSpy's
        usual unit), with a note; the unit used is recorded in ``metadata["scale_unit"]`` and ``info``.

    Returns
    -------
    LoadedImage
        ``data`` (H, W) float64, ``pixel_size`` in pm/px or None, ``notes`` for the user.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unsupported extension, unreadable or corrupt file, non-finite pixels, or a stack without ``plane``.
    ImportError
        A .dm3/.dm4/.emd/.ser file and RosettaSciIO (a dependency) is missing from a broken install (the message
        says how to install it).
    """
    if not (plane is None or plane == "all" or (isinstance(plane, (int, np.integer)) and not isinstance(plane, bool))):
        raise TypeError(f"plane must be an image index (int), 'all' or None, got {plane!r}")
    check_scale_unit(scale_unit)
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such image file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the path of one image file ({', '.join(IMAGE_EXTENSIONS)})")
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(
            f"cannot read {path.name}: unsupported file type {ext or '(none)'}; "
            f"supported: {', '.join(IMAGE_EXTENSIONS)}. Export the image as 32-bit TIFF or .npy."
        )
    notes: list[str] = []
    if ext in (".tif", ".tiff"):
        raw, pixel_size, meta = _read_tiff(path, notes)
    elif ext == ".npy":
        raw, pixel_size, meta = _read_npy(path)
    elif ext in (".hspy", ".hdf5"):
        raw, pixel_size, meta = _read_hspy(path, notes, scale_unit)
    else:
        raw, pixel_size, meta = _read_rsciio(path, signal, notes, scale_unit)
    data = _to_2d(raw, plane=plane, notes=notes, name=path.name)
    if pixel_size is None:
        notes.append(
            f"{path.name} records no pixel size: the image opens in px and lengths (a, b, Px, Py) stay in px. "
            "Give the pixel size (pm/px) to convert them to pm."
        )
    meta.update(original_shape=[int(n) for n in np.shape(raw)], original_dtype=str(np.asarray(raw).dtype))
    return LoadedImage(
        data=data,
        pixel_size=pixel_size,
        units="px" if pixel_size is None else "pm",
        metadata=jsonable(meta),
        source=str(path.resolve()),
        sha256=file_sha256(path),
        notes=tuple(notes),
    )


def _to_2d(raw, *, plane, notes, name) -> np.ndarray:
    arr = np.asarray(raw)
    picked = False
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} holds {arr.dtype} data, not image intensities; export it as a numeric 2D image")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and min(arr.shape[:2]) > 4:
        rgb = arr[..., :3].astype(np.float64)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            arr = rgb[..., 0]
            notes.append(f"{name} is an RGB image with equal channels; using one channel as the gray image.")
        else:
            arr = rgb @ np.array([0.2125, 0.7154, 0.0721])
            notes.append(
                f"{name} is a colour (RGB) image; converted to gray (luminance). Rendered colour images are not "
                "detector intensities: use the raw data file for quantitative work."
            )
    elif arr.ndim > 2:
        squeezed = arr.reshape([n for n in arr.shape if n != 1] or [1])
        if squeezed.ndim == 2:
            arr = squeezed
        elif squeezed.ndim > 3:
            raise ValueError(
                f"{name} has {squeezed.ndim} dimensions {arr.shape} (e.g. a 4D-STEM or spectrum-image dataset), not "
                "a single image or a stack of images; only 2D images and 3D stacks are supported: export the "
                "image (e.g. the HAADF frame or a virtual detector image) as a 2D file"
            )
        elif plane == "all":
            arr = squeezed
            notes.append(f"{name} is a stack of {arr.shape[0]} images; all are kept (pick one with the slider).")
        elif plane is None:
            raise ValueError(
                f"{name} holds a stack of shape {arr.shape}, not a single image; choose one image with "
                f"plane=k (0 <= k < {squeezed.shape[0]}), e.g. load_image(path, plane=0) (CLI: --plane 0), or export one "
                "frame."
            )
        else:
            arr = squeezed
            if not -arr.shape[0] <= plane < arr.shape[0]:
                raise ValueError(f"plane={plane} is outside the stack of {arr.shape[0]} images in {name}")
            notes.append(f"{name} is a stack of {arr.shape[0]} images; using plane {plane}.")
            arr = arr[plane]
            picked = True
    if plane not in (None, "all") and not picked:
        raise ValueError(f"plane={plane} was given but {name} holds a single 2D image; leave plane unset")
    if arr.ndim != 2 and not (plane == "all" and arr.ndim == 3):
        raise ValueError(f"{name} has shape {np.shape(raw)}; expected a 2D image (rows, columns)")
    if min(arr.shape[-2:]) < 8:
        raise ValueError(
            f"{name} has shape {arr.shape}: too small for an atomic-resolution image (it looks like a table, "
            "e.g. of positions); give the image file instead"
        )
    data = np.array(arr, dtype=np.float64)
    bad = ~np.isfinite(data)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN or infinite pixels; fill or crop them before analysis"
        )
    return data


def _read_npy(path: Path):
    truncated = _npy_truncated(path)
    if truncated:
        raise ValueError(f"{path.name} is truncated ({truncated}); copy the file again or re-save it with numpy.save")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path.name} is not a plain numeric .npy array ({exc}); save it with numpy.save") from exc
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path.name} as a .npy file ({exc}); is the file complete?") from exc
    return arr, None, {"format": "npy"}


def _npy_truncated(path: Path) -> str:
    """How a .npy file is shorter than its header says (empty when it is complete or not a .npy at all)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
        except ValueError:
            return "" if size >= 8 else f"{size} bytes, shorter than a .npy header"
        try:
            shape, _, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(fh))
        except ValueError as exc:
            return f"its header ends early: {exc}" if "EOF" in str(exc) else ""
        if dtype.hasobject:
            return ""
        expected = fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return f"{size} of the {expected} bytes its header announces" if size < expected else ""


def _read_tiff(path: Path, notes: list):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            pixel_size, how = _tiff_pixel_size(tif, notes)
            axes = series.axes
            meta = {"format": "tiff", "calibration": how, "axes": axes}
    except (tifffile.TiffFileError, ValueError, OSError, EOFError, IndexError, KeyError) as exc:
        raise ValueError(f"cannot read {path.name} as a TIFF image ({exc}); is the file complete and a TIFF?") from exc
    if "S" in axes and data.ndim == len(axes):  # colour samples (planar RGB) go last
        data = np.moveaxis(data, axes.index("S"), -1)
    return data, pixel_size, meta


def _tiff_pixel_size(tif, notes: list):
    """Pixel size (pm) from FEI, OME, ImageJ or resolution tags, with the source used."""
    fei = tif.fei_metadata
    if fei:
        for section in ("Scan", "EScan", "Image"):
            width = (fei.get(section) or {}).get("PixelWidth")
            if width:
                ps = length_to_pm(width, "m")
                if _plausible(ps):
                    return ps, f"FEI {section}/PixelWidth"
    ome = tif.ome_metadata
    if ome:
        ps = _ome_pixel_size(ome)
        if _plausible(ps):
            return ps, "OME PhysicalSizeX"
    page = tif.pages[0]
    xres = page.tags.get("XResolution")
    ij = tif.imagej_metadata
    if ij and ij.get("unit") and xres is not None:
        num, den = xres.value
        if num:
            ps = length_to_pm(den / num, ij["unit"])
            if _plausible(ps):
                return ps, "ImageJ resolution + unit"
    unit_tag = page.tags.get("ResolutionUnit")
    if xres is not None and unit_tag is not None:
        num, den = xres.value
        unit = {2: "inch", 3: "cm"}.get(int(unit_tag.value))
        if unit and num:
            ps = (den / num) * (2.54e10 if unit == "inch" else 1e10)
            if _plausible(ps):
                return ps, f"TIFF resolution tag (px per {unit})"
            notes.append(
                f"the TIFF resolution tag ({num / den:g} px per {unit}) is a display setting, not a STEM "
                "calibration; ignored."
            )
    return None, "none"


def _ome_pixel_size(xml: str):
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.endswith("Pixels") and "PhysicalSizeX" in el.attrib:
            return length_to_pm(float(el.attrib["PhysicalSizeX"]), el.attrib.get("PhysicalSizeXUnit", "µm"))
    return None


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_hspy(path: Path, notes: list, scale_unit):
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"cannot open {path.name} as an HDF5 file ({exc}); is the file complete?") from exc
    with fh:
        experiments = fh.get("Experiments")
        if not isinstance(experiments, h5py.Group) or not len(experiments):
            raise ValueError(
                f"{path.name} is HDF5 but not a HyperSpy signal file (no 'Experiments' group); "
                "save the image with HyperSpy (s.save('x.hspy')) or export it as TIFF/.npy"
            )
        names = [n for n in experiments if isinstance(experiments[n], h5py.Group) and "data" in experiments[n]]
        if not names:
            raise ValueError(f"{path.name} holds no HyperSpy signal with data")
        name = names[0]
        if len(names) > 1:
            notes.append(f"{path.name} holds {len(names)} signals ({', '.join(names)}); using '{name}'.")
        group = experiments[name]
        try:
            data = group["data"][()]
        except (OSError, KeyError) as exc:
            raise ValueError(f"cannot read the data of {path.name} ({exc}); the file may be corrupt") from exc
        axes = []
        for k in range(data.ndim):
            attrs = group[f"axis-{k}"].attrs if f"axis-{k}" in group else {}
            axes.append({key: _decode(attrs[key]) for key in ("name", "scale", "offset", "units", "size") if key in attrs})
        meta = {"format": "hyperspy", "signal": name, "axes": axes,
                "file_format_version": _decode(fh.attrs.get("file_format_version", ""))}
        title = group.get("metadata/General")
        if title is not None and "title" in title.attrs:
            meta["title"] = _decode(title.attrs["title"])
    pixel_size = _axes_pixel_size(axes[-2:], path.name, notes, scale_unit, meta)
    return data, pixel_size, meta


def check_scale_unit(scale_unit) -> None:
    """Refuse a ``scale_unit`` that is not a length unit :func:`length_to_pm` knows."""
    if scale_unit is not None and length_to_pm(1.0, scale_unit) is None:
        raise ValueError(
            f"scale_unit must be a length unit ({', '.join(sorted(set(_LENGTH_TO_PM) - {'å', 'µm'}))}), "
            f"got {scale_unit!r}"
        )


def _axes_pixel_size(axes: list[dict], name: str, notes: list, scale_unit=None, meta=None):
    """Pixel size (pm) from the two signal axes (y, x) of a HyperSpy/RosettaSciIO axes list.

    An axis scale without a unit is read in ``scale_unit``; without it, a scale in 1e-4 ... 1 is assumed to be
    in nm.  The unit used for unit-less scales goes to ``meta["scale_unit"]`` (``{"unit", "source"}``).
    """
    if len(axes) < 2:
        return None
    sizes, assumed, foreign = [], [], []
    for ax in axes:
        scale = ax.get("scale", 1.0)
        units = ax.get("units")
        if isinstance(units, str) and units.strip() in ("", "<undefined>", "_None_"):
            units = None
        ps = length_to_pm(scale, units) if units else None
        if units is None and scale_unit is not None and scale is not None:
            ps = length_to_pm(scale, scale_unit)
        elif units is None and scale not in (None, 1.0) and 1e-4 <= float(scale) <= 1.0:
            ps = float(scale) * 1e3
            assumed.append(ps)
        if ps is None and units and scale not in (None, 1.0):
            foreign.append(units)
        sizes.append(ps)
    unitless = any(ax.get("units") in (None, "", "<undefined>", "_None_") for ax in axes)
    if meta is not None and unitless and (assumed or scale_unit is not None):
        meta["scale_unit"] = {"unit": scale_unit or "nm", "source": "given" if scale_unit else "assumed"}
    if assumed:
        notes.append(
            f"{name}: the axis scale has no units; assuming nm (HyperSpy's usual unit), i.e. {assumed[-1]:.4g} "
            "pm/px. If that is wrong, give the unit (scale_unit=, CLI --scale-unit) or the pixel size."
        )
    if foreign:
        notes.append(f"{name}: axis unit {foreign[0]!r} is not a length; pixel size ignored.")
    if any(s is None for s in sizes) or not all(_plausible(s) for s in sizes):
        return None
    if not np.isclose(sizes[0], sizes[1], rtol=1e-3):
        notes.append(
            f"{name}: pixels are not square ({sizes[0]:.4g} x {sizes[1]:.4g} pm); using the x size. "
            "Resample the image to square pixels for quantitative work."
        )
    return float(sizes[1])


_RSCIIO_MODULES = {".dm3": "rsciio.digitalmicrograph", ".dm4": "rsciio.digitalmicrograph", ".emd": "rsciio.emd",
                   ".ser": "rsciio.tia"}


def _read_rsciio(path: Path, signal: str | None, notes: list, scale_unit):
    module_name = _RSCIIO_MODULES[path.suffix.lower()]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"reading {path.suffix} files needs RosettaSciIO, a dependency of napari-causal-lattice that is missing "
            "from this environment. Install it with\n    pip install rosettasciio\n"
            "(or reinstall napari-causal-lattice), or export the image from Digital Micrograph / Velox / TIA as TIFF."
        ) from exc
    try:
        signals = module.file_reader(str(path))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise ValueError(f"RosettaSciIO could not read {path.name} ({type(exc).__name__}: {exc}); is the file complete?") from exc

    def title(sig):
        return str(((sig.get("metadata") or {}).get("General") or {}).get("title", ""))

    images = [s for s in signals if np.ndim(s.get("data")) >= 2]
    if not images:
        raise ValueError(f"{path.name} holds no image (only spectra or metadata)")
    if signal is not None:
        chosen = [s for s in images if title(s) == signal]
        if not chosen:
            raise ValueError(f"{path.name} has no signal titled {signal!r}; it holds: {[title(s) for s in images]}")
        sig = chosen[0]
    else:
        two_d = [s for s in images if np.ndim(s["data"]) == 2] or images
        haadf = [s for s in two_d if "haadf" in title(s).lower()]
        sig = (haadf or two_d)[0]
        if len(images) > 1:
            notes.append(f"{path.name} holds {len(images)} images {[title(s) for s in images]}; using '{title(sig)}'.")
    axes = [{k: _decode(ax.get(k)) for k in ("name", "scale", "offset", "units", "size") if k in ax}
            for ax in sig.get("axes", [])]
    meta = {"format": module_name, "title": title(sig), "axes": axes}
    return np.asarray(sig["data"]), _axes_pixel_size(axes[-2:], path.name, notes, scale_unit, meta), meta


# ----------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Results:
    """The result objects of one analysis, as saved by :func:`save_results` (absent ones are None).

    Attributes
    ----------
    columns, cells, lingam, sliding, pca
        ``Columns``, ``Cells``, ``LingamResult``, ``SlidingResult``, ``AdjacencyPCA`` or None.
    null : InstrumentNull or None
        The instrument null the causal results were tested against (:func:`~napari_causal_lattice.null.
        instrument_null`), when one was run.
    image_info : dict or None
        The input image: source path, sha256, shape, pixel size (pm/px), units, notes.
    steps : dict
        Each pipeline step's outcome, step -> ``{"status": "done" | "skipped" | "failed", "reason": str}``
        (empty for results that were not made by the pipeline).
    manifest : dict
        The folder's manifest (format version, package versions, provenance of every object); empty for
        results that were not loaded from disk.
    """

    columns: object = None
    cells: object = None
    lingam: object = None
    sliding: object = None
    pca: object = None
    null: object = None
    image_info: dict | None = None
    steps: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    @property
    def failed_steps(self) -> dict[str, str]:
        """Steps that failed, step -> reason (empty when every step ran or was deliberately skipped)."""
        return {name: str(outcome.get("reason", "")) for name, outcome in self.steps.items()
                if isinstance(outcome, dict) and outcome.get("status") == "failed"}


class _Flattener:
    """Turns a state tree into a JSON tree plus a flat dict of arrays keyed by path."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value, key: str):
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise TypeError(f"state keys must be str; {key} has key {bad[0]!r}")
            return {"__dict__": {k: self.encode(v, f"{key}/{k}") for k, v in value.items()}}
        if isinstance(value, np.ndarray):
            return self._array(value, key)
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if np.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{key}/{n}") for n, v in enumerate(value)]
            return {"__tuple__": items} if isinstance(value, tuple) else items
        raise TypeError(
            f"cannot store {type(value).__name__} at {key!r}: state leaves must be numpy arrays, str, int, float, "
            "bool, None or lists (to_state() of the result class must convert it)"
        )

    def _array(self, value: np.ndarray, key: str):
        if key in self.arrays:
            raise ValueError(f"two state entries flatten to the same key {key!r}")
        if value.dtype.kind == "O":
            flat = value.reshape(-1)
            if not all(isinstance(v, str) for v in flat):
                raise TypeError(f"array {key!r} has object dtype with non-str items; store it as a numeric or str array")
            self.arrays[key] = value.astype(str) if flat.size else np.zeros(value.shape, dtype="<U1")
            return {"__array__": key, "object": True}
        if value.dtype.kind not in "biufcUSMm":
            raise TypeError(f"array {key!r} has unsupported dtype {value.dtype}")
        self.arrays[key] = value
        return {"__array__": key}


def _decode_tree(node, arrays):
    if isinstance(node, list):
        return [_decode_tree(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__dict__" in node:
        return {k: _decode_tree(v, arrays) for k, v in node["__dict__"].items()}
    if "__array__" in node:
        arr = arrays[node["__array__"]]
        return arr.astype(object) if node.get("object") else arr
    if "__float__" in node:
        return float(node["__float__"])
    if "__tuple__" in node:
        return tuple(_decode_tree(v, arrays) for v in node["__tuple__"])
    raise ValueError(f"unknown entry in the results manifest: {sorted(node)}")


def _class_path(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def columns_frame(columns):
    """Atom columns as a DataFrame with positions in px and, when the pixel size is known, in pm.

    Parameters
    ----------
    columns : Columns
        Result of ``find_columns``.

    Returns
    -------
    pandas.DataFrame
        One row per column: ``y [px]``, ``x [px]``, (``y [pm]``, ``x [pm]``), ``sublattice``, ``intensity``,
        ``width [px]`` (``width [pm]``), ``quality``.
    """
    import pandas as pd

    pos = np.asarray(columns.positions, dtype=float)
    ps = columns.pixel_size
    frame = {"y [px]": pos[:, 0], "x [px]": pos[:, 1]}
    if ps is not None:
        frame.update({"y [pm]": pos[:, 0] * ps, "x [pm]": pos[:, 1] * ps})
    frame["sublattice"] = np.asarray(columns.sublattice)
    frame["intensity"] = np.asarray(columns.intensity)
    frame["width [px]"] = np.asarray(columns.width, dtype=float)
    if ps is not None:
        frame["width [pm]"] = np.asarray(columns.width, dtype=float) * ps
    frame["quality"] = np.asarray(columns.quality)
    return pd.DataFrame(frame)


def _is_ours(folder: Path, manifest) -> tuple[bool, list[str]]:
    """Whether ``folder`` (non-empty) holds only files of ours; also the names of foreign files.

    With a readable ``manifest`` the files it lists are ours; without one (damaged or missing), only the names a
    results folder of this package holds (:data:`_OUR_NAMES`) are.
    """
    entries = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    if manifest is not None:
        listed = set(_listed_files(manifest)) | {MANIFEST_NAME}
        listed |= {parent.as_posix() for name in listed for parent in Path(name).parents if parent != Path(".")}
        foreign = [e for e in entries if e not in listed]
    else:
        foreign = [e for e in entries if e.split("/")[0] not in _OUR_NAMES or
                   ("/" in e and e.split("/")[0] != "figures")]
    return not foreign, foreign


def _listed_files(manifest: dict) -> list[str]:
    files = manifest.get("files")
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, str) and f and not Path(f).is_absolute() and ".." not in Path(f).parts]


def _read_manifest(folder: Path) -> dict:
    """The manifest of ``folder``; :class:`ResultsError` when it is missing, damaged or not ours."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ResultsError(f"{folder} is not a napari-causal-lattice results folder (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{path} is damaged (not readable JSON: {exc}); the results are damaged") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ResultsError(f"{folder} is not a napari-causal-lattice results folder ({MANIFEST_NAME} is not ours)")
    return manifest


def _read_manifest_quiet(folder: Path):
    try:
        return _read_manifest(folder)
    except ResultsError:
        return None


def manifest_checksum(manifest: Mapping) -> str:
    """SHA-256 (hex) of a manifest's content: every entry but the checksum itself, as canonical JSON.

    It covers what the numbers mean (result names, variable and sublattice labels, units, parameters, run,
    steps, provenance) and the checksums of the files and arrays, so an edit anywhere in ``manifest.json`` is
    found by :func:`load_results`.
    """
    content = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, allow_nan=False).encode("utf-8")).hexdigest()


def _damage(folder: Path, manifest: dict, *, skip=()) -> str | None:
    """What is wrong with the files of a results folder (missing, changed), or None when all are intact.

    Files named in ``skip`` are not checked here (``load_results`` checks ``arrays.npz`` array by array).
    """
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"it is in results format {manifest.get('format_version')!r}, not {FORMAT_VERSION}"
    recorded = manifest.get("manifest_sha256")
    if recorded is not None:
        try:
            edited = recorded != manifest_checksum(manifest)
        except (TypeError, ValueError):
            edited = True
        if edited:
            return (f"{MANIFEST_NAME} was edited after it was saved (its content checksum differs): names, labels "
                    "or parameters may no longer match the numbers")
    checksums = manifest.get("checksums")
    checksums = checksums if isinstance(checksums, dict) else {}
    for name in _listed_files(manifest):
        if name in skip:
            continue
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        expected = checksums.get(name)
        if isinstance(expected, str) and file_sha256(path) != expected:
            return f"{name} is damaged (its checksum differs from the one recorded when it was saved)"
    return None


def results_complete(path) -> bool:
    """True when ``path`` holds a complete, intact results folder of the current format.

    Every file the manifest lists must be present with the checksum recorded at save time.
    """
    folder = Path(path)
    manifest = _read_manifest_quiet(folder) if folder.is_dir() else None
    return manifest is not None and _damage(folder, manifest) is None


def run_record(*, input_sha256: str, params: Mapping) -> dict:
    """What identifies a run for resuming: the input's hash, the parameters that change a number, the version.

    Parameters
    ----------
    input_sha256 : str
        SHA-256 of the input image file (or of the array).
    params : mapping
        Every parameter that changes a result (JSON-able values).

    Returns
    -------
    dict
        ``{"input_sha256", "params", "version"}``, stored as ``manifest["run"]``.
    """
    return {"input_sha256": input_sha256, "params": jsonable(dict(params)),
            "version": package_versions()["napari-causal-lattice"]}


def _leaves(params: dict) -> dict:
    """{option: value} of run parameters that may be grouped by step ({step: {option: value}}); an option shared
    by several steps (e.g. ``seed``) appears once."""
    out = {}
    for key, value in params.items():
        out.update(value if isinstance(value, dict) else {key: value})
    return out


def run_changes(old, new: dict) -> list[str]:
    """How run record ``new`` differs from ``old`` (one phrase per difference; empty when they match)."""
    if not isinstance(old, dict):
        return ["the earlier results record no run (an older version wrote them)"]
    changes = []
    if old.get("input_sha256") != new["input_sha256"]:
        changes.append("the image differs (another file content under the same name)")
    old_params = _leaves(old.get("params") if isinstance(old.get("params"), dict) else {})
    new_params = _leaves(new["params"])
    for key in sorted(set(old_params) | set(new_params)):
        before, after = old_params.get(key, "unset"), new_params.get(key, "unset")
        if before != after:
            changes.append(f"{key} {before!r} -> {after!r}")
    if old.get("version") != new["version"]:
        changes.append(f"napari-causal-lattice {old.get('version')} -> {new['version']}")
    return changes


def resume_status(path, run: dict) -> tuple[str, str]:
    """Whether a run can reuse, must recompute, or must not touch the results folder ``path``.

    Parameters
    ----------
    path : str or Path
        Results folder of one image.
    run : dict
        :func:`run_record` of the new run.

    Returns
    -------
    (status, detail)
        ``"absent"`` (no folder or an empty one), ``"complete"`` (intact results of the same run: reuse),
        ``"incomplete"`` (ours, a file missing or damaged: recompute), ``"changed"`` (intact results of another
        run: ``detail`` names what changed; recompute only with overwrite), ``"damaged"`` (our files with an
        unreadable manifest: overwrite only with overwrite), ``"foreign"`` (files that are not ours: never
        touch) or ``"file"`` (a file, not a folder).
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        return "absent", ""
    if not folder.is_dir():
        return "file", f"{folder} is a file, not a folder"
    if not any(folder.iterdir()):
        return "absent", ""
    manifest = _read_manifest_quiet(folder)
    ours, foreign = _is_ours(folder, manifest)
    if not ours:
        return "foreign", ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
    if manifest is None:
        try:
            _read_manifest(folder)
        except ResultsError as exc:
            return "damaged", str(exc)
    damage = _damage(folder, manifest)
    if damage is not None:
        return "incomplete", damage
    changes = run_changes(manifest.get("run"), run)
    if changes:
        return "changed", "; ".join(changes)
    return "complete", ""


def _temp_name(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _abandoned(path: Path, prefix: str) -> bool:
    """Whether a temporary sibling (``prefix`` + ``<host>-<pid>-<hex>``) was left by a run that no longer exists."""
    host, _, pid = path.name[len(prefix):].rpartition("-")[0].rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:  # the process exists but belongs to someone else
            return False
        return False
    try:
        return time.time() - path.stat().st_mtime > STALE_SECONDS
    except OSError:
        return False


def clean_stale_temp(path) -> list[Path]:
    """Remove the temporary folders that killed saves left beside results folder ``path``.

    A save that was killed while replacing earlier results (after moving them aside, before moving the new ones
    in) left the earlier results in a ``.old-`` folder; they are moved back when ``path`` is missing.

    Returns
    -------
    list of Path
        The folders removed (or restored).
    """
    target = Path(path).expanduser().absolute()
    if not target.parent.is_dir():
        return []
    cleaned = []
    for kind in _TEMP_KINDS:
        prefix = f".{target.name}.{kind}-"
        for temp in sorted(target.parent.glob(f"{_glob_escape(prefix)}*")):
            if not temp.is_dir() or not _abandoned(temp, prefix):
                continue
            if kind == "old" and not target.exists() and _read_manifest_quiet(temp) is not None:
                os.replace(temp, target)
            else:
                shutil.rmtree(temp, ignore_errors=True)
            cleaned.append(temp)
    return cleaned


def _glob_escape(name: str) -> str:
    """``name`` with glob wildcards escaped (results folders may have brackets in their names)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def check_results_target(path, *, overwrite: bool = False) -> Path:
    """Check that results may be written to ``path`` (call it before a long computation).

    Temporary folders left by killed saves of ``path`` are removed first (:func:`clean_stale_temp`).

    Returns the absolute folder path.  Raises ValueError when ``path`` is a file, holds files that are not
    results of this package, or holds results (or our files with a damaged manifest) and ``overwrite`` is False.
    """
    target = Path(path).expanduser().absolute()
    clean_stale_temp(target)
    if target.exists():
        if not target.is_dir():
            raise ValueError(f"{target} is a file, not a folder; choose a folder name for the results")
        if not any(target.iterdir()):
            return target
        manifest = _read_manifest_quiet(target)
        ours, foreign = _is_ours(target, manifest)
        if not ours:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise ValueError(
                f"{target} already holds files that are not napari-causal-lattice results ({shown}); "
                "choose a new or empty folder. Nothing was written."
            )
        if not overwrite:
            if manifest is None:
                raise ValueError(
                    f"{target / MANIFEST_NAME} is damaged or missing, but the folder holds only "
                    "napari-causal-lattice result files; pass overwrite=True (CLI: --overwrite) to replace them"
                )
            raise ValueError(f"{target} already holds results; pass overwrite=True (CLI: --overwrite) to replace them")
    return target


class ResultsBusy(ValueError):
    """A results folder is in use by another run (its lock is held); the message names the holder."""


class ResultsLock:
    """The lock of one results folder: at most one run computes into a folder at a time.

    The lock is a hidden file ``.<name>.lock`` beside the folder, locked with the operating system's advisory
    file lock (released by the system when the holding process ends, even when it is killed) and removed on
    release.  It holds who has it (host, process id, start time), for the message a second run gets.

    Parameters
    ----------
    path : str or Path
        The results folder (it need not exist; its parent must).
    """

    def __init__(self, path):
        self.target = Path(path).expanduser().absolute()
        self.path = self.target.parent / f".{self.target.name}.lock"
        self._fh = None

    def acquire(self) -> "ResultsLock":
        """Take the lock, or raise :class:`ResultsBusy` at once when another run holds it."""
        while self._fh is None:
            fh = open(self.path, "a+", encoding="utf-8")
            if not _try_lock(fh):
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise ResultsBusy(
                    f"{self.target} is in use by another run ({holder}); wait until it has finished, or choose "
                    "another --out. Nothing was written."
                )
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:  # the holder released (and removed) it between our open and lock
                same = False
            if not same:
                fh.close()
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"process {os.getpid()} on {socket.gethostname()}, started "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
            fh.flush()
            self._fh = fh
        return self

    def release(self) -> None:
        """Give the lock up (and remove its file); does nothing when it is not held."""
        if self._fh is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        self._fh.close()
        self._fh = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _try_lock(fh) -> bool:
    """Lock an open file exclusively without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _write_error(target: Path, exc: OSError) -> OSError:
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EROFS: "the file system is read-only",
    }.get(exc.errno, exc.strerror or str(exc))
    advice = "free some space or choose" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "choose"
    return OSError(
        exc.errno,
        f"could not save results to {target}: {reason}. Nothing was written and existing results are "
        f"unchanged; {advice} another folder (--out).",
    )


def save_results(
    path,
    *,
    columns=None,
    cells=None,
    lingam=None,
    sliding=None,
    pca=None,
    null=None,
    image_info: dict | None = None,
    run: dict | None = None,
    steps: Mapping[str, Mapping] | None = None,
    overwrite: bool = False,
    extra: Mapping[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Save result objects to one folder, atomically.

    Parameters
    ----------
    path : str or Path
        Target folder.  It must not exist, be empty, or (with ``overwrite=True``) hold an earlier results
        folder of this package.  A folder holding any other file is refused: nothing of yours is overwritten.
    columns, cells, lingam, sliding, pca, null : result objects, optional
        ``Columns``, ``Cells``, ``LingamResult``, ``SlidingResult``, ``AdjacencyPCA``, ``InstrumentNull``; each
        must provide ``to_state()`` and a ``provenance`` dict.
    image_info : dict, optional
        The input image (e.g. ``LoadedImage.info``: source, sha256, shape, pixel size).
    run : dict, optional
        :func:`run_record` of the run (input hash, parameters, version), compared by :func:`resume_status`.
    steps : mapping, optional
        Each step's outcome, step -> ``{"status": "done" | "skipped" | "failed", "reason": str}``.
    overwrite : bool
        Replace an existing results folder of this package.
    extra : mapping, optional
        More files written inside the same atomic save: relative name (e.g. ``"figures/pca.png"``) -> function
        ``write(path)`` that writes that file.

    Returns
    -------
    Path
        The results folder.

    Raises
    ------
    ValueError
        Nothing to save, or the target holds files that are not ours, or results exist and ``overwrite`` is False.
    OSError
        Disk full, permission denied...: the message says what happened; nothing was written.
    """
    objects = {"columns": columns, "cells": cells, "lingam": lingam, "sliding": sliding, "pca": pca, "null": null}
    if all(v is None for v in objects.values()) and image_info is None:
        raise ValueError("nothing to save: pass at least one result (columns=, cells=, lingam=, sliding=, pca=)")
    target = check_results_target(path, overwrite=overwrite)

    flat = _Flattener()
    contents = {}
    for name, obj in objects.items():
        if obj is None:
            continue
        if not hasattr(obj, "to_state"):
            raise TypeError(f"{name}={type(obj).__name__} cannot be saved: it has no to_state() method")
        contents[name] = {
            "class": _class_path(obj),
            "state": flat.encode(obj.to_state(), name),
            "provenance": jsonable(getattr(obj, "provenance", None)),
        }
    csv_writers = {}
    if columns is not None:
        csv_writers["columns.csv"] = lambda p: columns_frame(columns).to_csv(p, index=False)
    if cells is not None:
        csv_writers["cells.csv"] = cells.to_csv  # i, j, y/x in px and pm, "Px [pm]", ...
    writers = {**csv_writers, **dict(extra or {})}
    for rel in writers:
        if Path(rel).is_absolute() or ".." in Path(rel).parts or rel in (MANIFEST_NAME, ARRAYS_NAME):
            raise ValueError(f"extra file name {rel!r} must be a relative path inside the results folder")
    files = [ARRAYS_NAME, *writers]
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "versions": package_versions(),
        "image": jsonable(image_info),
        "run": jsonable(run),
        "steps": jsonable(dict(steps or {})),
        "files": files,
        "contents": contents,
        "array_checksums": {key: array_sha256(value) for key, value in flat.arrays.items()},
    }
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    tmp = _temp_name(target, "tmp")
    try:
        tmp.mkdir()
        with open(tmp / ARRAYS_NAME, "wb") as fh:
            np.savez(fh, **flat.arrays)
            fh.flush()
            os.fsync(fh.fileno())
        for rel, write in writers.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            write(tmp / rel)
        missing = [rel for rel in writers if not (tmp / rel).is_file()]
        if missing:
            raise ValueError(f"extra writers did not create {missing}")
        manifest["checksums"] = {rel: file_sha256(tmp / rel) for rel in files}
        manifest = json.loads(json.dumps(manifest, allow_nan=False))
        manifest["manifest_sha256"] = manifest_checksum(manifest)
        text = json.dumps(manifest, indent=1, allow_nan=False)
        with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        _swap_into_place(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(target, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    old = _temp_name(target, "old")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_results(path, *, classes: Mapping[str, type] | None = None) -> Results:
    """Load a results folder written by :func:`save_results`, verifying everything it recorded.

    Checked before anything is rebuilt: the manifest's own content checksum (names, labels, parameters, run,
    steps; manifests written before it existed have none), the SHA-256 of every file the manifest lists
    (``arrays.npz``, the CSV tables, the figures) and of every stored array.

    Parameters
    ----------
    path : str or Path
        The results folder.
    classes : mapping, optional
        Field name -> class whose ``from_state`` rebuilds it, to override the classes recorded in the manifest
        (only classes of this package are imported from a manifest).

    Returns
    -------
    Results

    Raises
    ------
    ResultsError
        (a ValueError) Not a results folder, incomplete (a listed file missing), damaged (the manifest edited, a
        file or an array whose checksum differs from the recorded one, a manifest entry that does not fit) or
        written in another format version; the message names the file at fault.
    """
    folder = Path(path).expanduser()
    manifest = _read_manifest(folder)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
        written_by = versions.get("napari-causal-lattice", "an unknown version")
        raise ResultsError(
            f"{folder} was written in results format {version} (napari-causal-lattice {written_by}); this version "
            f"reads format {FORMAT_VERSION}. Re-run the analysis, or load it with napari-causal-lattice {written_by}."
        )
    damage = _damage(folder, manifest, skip=(ARRAYS_NAME,))
    if damage is not None:
        raise ResultsError(f"{folder}: {damage}; the results are damaged: re-run the analysis")
    arrays = _read_arrays(folder, manifest)
    contents = manifest.get("contents", {})
    if not isinstance(contents, dict):
        raise ResultsError(f"{folder / MANIFEST_NAME} is damaged: 'contents' is not a table of results")
    classes = dict(classes or {})
    loaded = {}
    for name, entry in contents.items():
        if name not in RESULT_CLASSES:
            raise ResultsError(f"{folder / MANIFEST_NAME} lists an unknown result {name!r}")
        if not isinstance(entry, dict) or "state" not in entry:
            raise ResultsError(f"{folder / MANIFEST_NAME} is damaged: the entry of {name!r} has no state")
        loaded[name] = _rebuild(folder, name, entry, classes.get(name), arrays)
    image, steps = manifest.get("image"), manifest.get("steps")
    return Results(**loaded, image_info=image if isinstance(image, dict) else None,
                   steps=steps if isinstance(steps, dict) else {}, manifest=manifest)


def _read_arrays(folder: Path, manifest: dict) -> dict:
    """Every array of ``arrays.npz``, each checked against its recorded checksum."""
    path = folder / ARRAYS_NAME
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise ResultsError(f"{path} is missing; the results are incomplete: re-run the analysis") from exc
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
            NotImplementedError, RuntimeError) as exc:
        raise ResultsError(f"cannot read {path} ({type(exc).__name__}: {exc}); the results are damaged") from exc
    except (AttributeError, TypeError) as exc:  # np.load read a plain .npy array, not an .npz archive
        raise ResultsError(f"{path} is not an .npz archive; the results are damaged") from exc
    checksums = manifest.get("array_checksums")
    if isinstance(checksums, dict):
        for key, expected in checksums.items():
            if key not in arrays:
                raise ResultsError(f"{path} lacks the array {key!r}; the results are damaged")
            if array_sha256(arrays[key]) != expected:
                raise ResultsError(f"array {key!r} in {path} differs from the one saved (checksum); the results "
                                   "are damaged")
    return arrays


def _rebuild(folder: Path, name: str, entry: dict, cls, arrays: dict):
    """One result object from its manifest entry; any failure is damage in our words."""
    if cls is None:
        recorded = entry.get("class") or RESULT_CLASSES[name]
        if not isinstance(recorded, str) or not recorded.startswith("napari_causal_lattice."):
            raise ResultsError(
                f"{name} in {folder} was saved from class {recorded}, outside this package; pass "
                f"classes={{'{name}': {str(recorded).rpartition(':')[2]}}} to load it"
            )
        if recorded not in RESULT_CLASSES.values():
            raise ResultsError(f"{folder / MANIFEST_NAME} names {recorded} for {name}, which is not a result class "
                               f"of this package; the results are damaged")
        cls = _import_class(recorded)
    try:
        return cls.from_state(_decode_tree(entry["state"], arrays))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged state makes from_state raise, the file is at fault
        raise ResultsError(
            f"cannot rebuild {name} from {folder} ({type(exc).__name__}: {exc}); the results are damaged"
        ) from exc
