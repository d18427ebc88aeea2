"""Reading STEM images: the file formats, their pixel-size calibration and the units of length.

:func:`load_image` opens .tif/.tiff (tifffile), .npy, HyperSpy .hspy/.hdf5 (h5py) and, through RosettaSciIO,
Digital Micrograph .dm3/.dm4, Velox/NCEM .emd and FEI TIA .ser files.  It returns a :class:`LoadedImage`: a 2D
float64 array plus the pixel size in pm/px (or ``None`` when the file has none, in which case the image stays
in px and a note says so).  :func:`length_to_pm` converts a calibrated length to pm; :func:`file_sha256` and
:func:`array_sha256` identify an input by its content (the results store records and checks them).
"""

from __future__ import annotations

import hashlib
import importlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .provenance import jsonable

#: File extensions :func:`load_image` understands.
IMAGE_EXTENSIONS = (".tif", ".tiff", ".npy", ".hspy", ".hdf5", ".dm3", ".dm4", ".emd", ".ser")

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


# plausible pixel sizes (pm/px) of a STEM image; outside this range a calibration is treated as a placeholder
_PLAUSIBLE_PM = (1e-2, 1e5)


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
