"""Minimal vendor image files written byte by byte, for reader tests (RosettaSciIO reads but cannot write them).

``write_dm4`` writes a Digital Micrograph 4 file (one float32 image, a length calibration on both axes);
``write_ser`` writes an FEI TIA .ser series holding one 2D image, calibrated in metres as TIA does.  Layouts
follow the public format descriptions that RosettaSciIO's readers implement.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

# DM simple data types
_DM_LONG, _DM_USHORT, _DM_ULONG, _DM_FLOAT = 3, 4, 5, 6
_DM_ARRAY = 20


def _dm_name(name: str) -> bytes:
    raw = name.encode("latin-1")
    return struct.pack(">H", len(raw)) + raw


def _dm_data(name: str, info: list[int], payload: bytes) -> bytes:
    body = b"%%%%" + struct.pack(">Q", len(info)) + b"".join(struct.pack(">Q", v) for v in info) + payload
    return b"\x15" + _dm_name(name) + struct.pack(">Q", len(body)) + body


def _dm_group(name: str, tags: list[bytes]) -> bytes:
    body = b"\x00\x00" + struct.pack(">Q", len(tags)) + b"".join(tags)
    return b"\x14" + _dm_name(name) + struct.pack(">Q", len(body)) + body


def _dm_float(name, value):
    return _dm_data(name, [_DM_FLOAT], struct.pack("<f", value))


def _dm_string(name, text):
    codes = np.array([ord(c) for c in text], dtype="<u2")
    return _dm_data(name, [_DM_ARRAY, _DM_USHORT, codes.size], codes.tobytes())


def write_dm4(path, image: np.ndarray, *, scale: float, units: str = "nm") -> Path:
    """A .dm4 file holding ``image`` (rows, columns) as float32 with pixel size ``scale`` ``units``."""
    image = np.ascontiguousarray(image, dtype="<f4")
    rows, cols = image.shape

    def calibration(value, unit, name=""):
        return _dm_group(name, [_dm_float("Origin", 0.0), _dm_float("Scale", value), _dm_string("Units", unit)])

    image_data = _dm_group("ImageData", [
        _dm_group("Calibrations", [
            calibration(1.0, "counts", "Brightness"),
            _dm_group("Dimension", [calibration(scale, units), calibration(scale, units)]),
        ]),
        _dm_data("Data", [_DM_ARRAY, _DM_FLOAT, image.size], image.tobytes()),
        _dm_data("DataType", [_DM_LONG], struct.pack("<i", 2)),
        _dm_group("Dimensions", [_dm_data("", [_DM_ULONG], struct.pack("<I", cols)),
                                 _dm_data("", [_DM_ULONG], struct.pack("<I", rows))]),
    ])
    root = b"\x00\x00" + struct.pack(">Q", 1) + _dm_group("ImageList", [
        _dm_group("", [image_data, _dm_group("ImageTags", []), _dm_string("Name", "HAADF")])])
    header = struct.pack(">I", 4) + struct.pack(">Q", len(root)) + struct.pack(">I", 1)
    path = Path(path)
    path.write_bytes(header + root + b"\x00" * 8)
    return path


def write_ser(path, image: np.ndarray, *, pixel_size_m: float) -> Path:
    """An FEI TIA .ser file (series version 0x210) holding one float32 image with pixel size ``pixel_size_m``."""
    image = np.ascontiguousarray(image, dtype="<f4")
    rows, cols = image.shape
    description, unit = b"Number", b""
    dimension = (struct.pack("<IddI", 1, 0.0, 1.0, 0) + struct.pack("<I", len(description)) + description
                 + struct.pack("<I", len(unit)) + unit)
    header_size = 30 + len(dimension)
    offsets_at = header_size
    data_at = offsets_at + 8  # one data offset, one tag offset (4 bytes each)
    element = (struct.pack("<ddI", 0.0, pixel_size_m, 0) + struct.pack("<ddI", 0.0, pixel_size_m, 0)
               + struct.pack("<HII", 7, cols, rows) + image[::-1].tobytes())  # rows stored bottom first
    tag_at = data_at + len(element)
    header = struct.pack("<HHHIIIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, 1, 1, offsets_at, 1)
    tag = struct.pack("<HHI", 0x4152, 0, 0)
    path = Path(path)
    path.write_bytes(header + dimension + struct.pack("<II", data_at, tag_at) + element + tag)
    return path
