"""npe2 writer: save a Points layer (atom columns) as CSV with positions in px and physical units."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

_SHORT = {"picometer": "pm", "nanometer": "nm", "angstrom": "Å", "micrometer": "µm"}


def points_frame(data, attributes: dict) -> pd.DataFrame:
    """Table of a Points layer: ``y [px]``, ``x [px]``, physical ``y [<unit>]``, ``x [<unit>]``, then features.

    Parameters
    ----------
    data : (N, D) array
        Point positions in the layer's data coordinates (px of the image for our column layers).
    attributes : dict
        The layer's attributes as napari hands them to writers (``scale``, ``translate``, ``units``,
        ``features`` or ``properties``, ``name``).

    Returns
    -------
    pandas.DataFrame
        One row per point; leading dimensions beyond (y, x) are written as ``axis 0`` ... columns.
    """
    data = np.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(f"points data must be (N, 2) or (N, D) positions; got shape {data.shape}")
    ndim = data.shape[1]
    frame = {f"axis {k}": data[:, k] for k in range(ndim - 2)}
    frame.update({"y [px]": data[:, -2], "x [px]": data[:, -1]})
    scale = np.asarray(attributes.get("scale", np.ones(ndim)), dtype=float)[-2:]
    translate = np.asarray(attributes.get("translate", np.zeros(ndim)), dtype=float)[-2:]
    units = [str(u) for u in (attributes.get("units") or ())][-2:]
    unit = _SHORT.get(units[-1], units[-1]) if units and units[0] == units[-1] else None
    if unit and unit not in ("pixel", "px"):
        frame[f"y [{unit}]"] = data[:, -2] * scale[0] + translate[0]
        frame[f"x [{unit}]"] = data[:, -1] * scale[1] + translate[1]
    features = attributes.get("features")
    if features is None or len(features) == 0:
        features = pd.DataFrame(attributes.get("properties") or {})
    table = pd.DataFrame(frame)
    if len(features) == len(table):
        features = pd.DataFrame(features).reset_index(drop=True)
        table = pd.concat([table, features.rename(columns=lambda c: f"{c} (feature)" if c in table else c)], axis=1)
    return table


def write_points(path: str, data, attributes: dict) -> list[str]:
    """napari writer for Points layers: write ``path`` (.csv) atomically and return ``[path]``.

    The file is written beside the target under a temporary name and renamed at the end, so a failed
    write never leaves a truncated CSV (nor destroys an earlier file of that name).
    """
    target = Path(path)
    if target.suffix.lower() != ".csv":
        target = target.with_suffix(".csv")
    table = points_frame(data, attributes)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        table.to_csv(tmp, index=False)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, f"could not write {target}: {exc.strerror or exc}. Nothing was written.") from exc
    return [str(target)]
