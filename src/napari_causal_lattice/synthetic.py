"""Synthetic perovskite STEM images and descriptor grids with a planted, spatially varying causal truth.

The sample is an ABO3 perovskite seen along [001]: A columns on the corners of a square cell, B columns at
the cell centres, A brighter than B (HAADF, like Bi/Fe or Sr/Ti).  The cell grid has ``ni`` rows and ``nj``
columns; grid row ``i`` grows down the image (lattice vector ``v2``), column ``j`` to the right (``v1``).

Planted structure, per unit cell (descriptor units: counts, pm, deg, pm^2):

* regions: the bottom ``substrate_rows`` cell rows are a substrate (A columns dimmer by
  ``substrate_intensity``, no polarization); the ``interface_rows`` film rows right above it are the
  interface band; the rest of the film is split by a 180 deg domain wall into "domain -" and "domain +";
* ``I14`` (sum of the 4 A corners, each A amplitude uniform +-``a_amplitude_spread``) and ``I5`` (B amplitude,
  uniform +-``b_amplitude_spread``) are exogenous;
* ``a``, ``b``, ``alpha`` vary through uniform random A-column displacements (+-``a_jitter`` pm per axis),
  and ``Vol = a b sin(alpha)`` gives ``Vol <- a`` (coefficient ``b0``) and ``Vol <- b`` (coefficient ``a0``);
* interface band only: ``Py = py_i5_coupling * (I5 / I5_nominal - 1) + e_y``; elsewhere ``Py = e_y``;
* film: ``Px = Ps tanh(d / Lc) + k0 tanh(d / Lc) Py + e_x`` with ``d`` the signed distance to the wall (cells),
  so ``Px <- Py`` flips sign across the wall; substrate: ``Px = e_x``;
* ``e_x``, ``e_y`` uniform (non-Gaussian) on +-``px_noise``, +-``py_noise`` pm.

The B column is put at the centroid of its 4 (displaced) A corners plus ``(Px, Py)`` turned into the image
frame (Px along ``v1``, Py along ``v2``), so the descriptors measured from the true positions are exactly the
planted ones.

``projection="[110]"`` draws the same planted structure on a perovskite [110] projection: a rectangular
A cell ``pitch x pitch / sqrt2`` (``v1`` the long edge), the B column half-way along the top edge of its
cell (the mid-point of ``A(i, j)`` and ``A(i, j+1)`` plus ``(Px, Py)``); see
:mod:`napari_causal_lattice.motif`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .descriptors import compute_descriptors
from .lattice import DESCRIPTORS, Lattice, descriptor_units
from .motif import get_motif
from .provenance import make_provenance

__all__ = [
    "SyntheticTruth",
    "SyntheticSample",
    "SyntheticGrid",
    "synthetic_perovskite",
    "synthetic_descriptor_grid",
    "synthetic_null_grid",
    "REGION_NAMES",
    "OPTION_DOCS",
]

#: Region label -> name, for ``truth.region``.
#: Options that remove every planted polarization and coupling: a centrosymmetric control, whose measured Px,
#: Py must read zero and whose descriptors must show no causal link (combine with ``probe_tail``,
#: ``line_jitter`` and larger amplitude spreads to test what the instrument alone produces).
NON_POLAR: dict[str, float] = {"polarization": 0.0, "px_py_coupling": 0.0, "py_i5_coupling": 0.0, "px_noise": 0.0,
                               "py_noise": 0.0}

REGION_NAMES: dict[int, str] = {0: "domain -", 1: "domain +", 2: "interface", 3: "substrate"}

_IDX = {name: k for k, name in enumerate(DESCRIPTORS)}
_TRUTH_ARRAYS = ("a_positions", "a_grid", "a_intensity", "b_positions", "b_grid", "b_intensity", "adjacency", "region")


@dataclass(frozen=True)
class _Option:
    default: object
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    image_only: bool = False


_OPTIONS: dict[str, _Option] = {
    "shape_cells": _Option((48, 48), "(ni, nj) number of unit cells (rows, columns), each >= 4", 4, 5000),
    "pitch": _Option(20.0, "lattice parameter in px per unit cell", 4.0, 200.0),
    "pixel_size": _Option(19.8, "pixel size in pm per px (pitch * pixel_size = a0 in pm)", 0.0, 1e4, True),
    "rotation": _Option(3.0, "rotation of lattice vector v1 from the image x axis, degrees (counter-clockwise "
                        "on screen)", -45.0, 45.0),
    "sigma_a": _Option(2.4, "Gaussian sigma of the A columns in px (at most pitch / 3)", 0.0, None, True, True),
    "sigma_b": _Option(2.0, "Gaussian sigma of the B columns in px (at most pitch / 3)", 0.0, None, True, True),
    "dose": _Option(1000.0, "expected electron counts at the peak of a film A column (above background)",
                    0.0, 1e9, True),
    "b_intensity": _Option(0.4, "B peak amplitude relative to the film A peak (A brighter than B)", 0.0, 1.0, True),
    "substrate_intensity": _Option(0.7, "A peak amplitude in the substrate relative to the film", 0.0, 2.0, True),
    "background": _Option(10.0, "uniform background in counts per px", 0.0, 1e9, False, True),
    "read_noise": _Option(2.0, "Gaussian read-out noise, standard deviation in counts per px", 0.0, 1e9, False,
                          True),
    "probe_tail": _Option(0.0, "peak of a wide Gaussian tail added to every column (real probes have tails), "
                          "relative to the column's peak; 0 = pure Gaussian columns", 0.0, 1.0, False, True),
    "tail_width": _Option(3.0, "sigma of the probe tail relative to the column's own sigma", 1.0, 10.0, False,
                          True),
    "line_jitter": _Option(0.0, "scan-line jitter: rms shift in px along x of each fast-scan line (row), drawn "
                           "independently per line", 0.0, 5.0, False, True),
    "scan_drift": _Option(0.0, "slow-scan drift: peak x shift in px of a smooth, non-linear drift along the slow "
                          "scan, drift(t) = scan_drift * (3 t^2 - 1) / 2 with t from -1 (first row) to 1 (last)",
                          -20.0, 20.0, False, True),
    "a_amplitude_spread": _Option(0.08, "relative half-width of the uniform A amplitude scatter", 0.0, 0.5),
    "b_amplitude_spread": _Option(0.15, "relative half-width of the uniform B amplitude scatter", 0.0, 0.5),
    "a_jitter": _Option(6.0, "half-width in pm of the uniform A-column displacement per axis (at most a0 / 10)",
                        0.0, None),
    "wall_position": _Option(None, "cell column j (fractional) where the domain wall crosses the middle film "
                             "row; None = centre, (nj - 1) / 2", None, None),
    "wall_angle": _Option(4.0, "tilt of the wall from the grid's i axis (near-vertical), degrees", -60.0, 60.0),
    "wall_width": _Option(2.0, "correlation length Lc of the tanh wall profile, in unit cells", 0.0, 1000.0, True),
    "interface_rows": _Option(None, "film cell rows right above the substrate where Py <- I5 exists; None = "
                              "ni // 4", 0, 5000),
    "substrate_rows": _Option(None, "bottom cell rows that are substrate (no polarization); None = ni // 6",
                              0, 5000),
    "polarization": _Option(15.0, "spontaneous B offset Ps in pm far from the wall (Px = Ps tanh(d / Lc))",
                            0.0, 1e3),
    "px_py_coupling": _Option(0.6, "k0 of Px <- Py = k0 tanh(d / Lc), pm per pm", -10.0, 10.0),
    "py_i5_coupling": _Option(100.0, "Py change in pm per unit relative change of I5 (interface band only)",
                              -1e4, 1e4),
    "px_noise": _Option(6.0, "half-width in pm of the uniform noise e_x of Px", 0.0, 1e3),
    "py_noise": _Option(12.0, "half-width in pm of the uniform noise e_y of Py", 0.0, 1e3),
    "vol_noise": _Option(1000.0, "descriptor grid only: half-width in pm^2 of the uniform noise of Vol", 0.0, 1e9),
}

#: Option name -> documentation (with units), for GUIs and docs.
OPTION_DOCS: dict[str, str] = {name: opt.doc for name, opt in _OPTIONS.items()}


def _range_text(opt: _Option) -> str:
    low = "-inf" if opt.low is None else f"{opt.low:g}"
    high = "inf" if opt.high is None else f"{opt.high:g}"
    return f"{'(' if opt.low_open else '['}{low}, {high}]"


def _check_number(name: str, value, opt: _Option, *, integer: bool = False):
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"option {name!r} must be {kind} in {_range_text(opt)}, got {value!r}")
    if integer and not float(value).is_integer():
        raise ValueError(f"option {name!r} must be a whole number in {_range_text(opt)}, got {value!r}")
    value = int(value) if integer else float(value)
    if not math.isfinite(value):
        raise ValueError(f"option {name!r} must be finite, got {value!r}")
    too_low = opt.low is not None and (value <= opt.low if opt.low_open else value < opt.low)
    too_high = opt.high is not None and value > opt.high
    if too_low or too_high:
        raise ValueError(f"option {name!r} = {value!r} is out of range: allowed {_range_text(opt)} "
                         f"({opt.doc})")
    return value


def _resolve_options(options: dict, *, image: bool, shape=None) -> dict:
    """Fill defaults, check every option name and range; return the complete parameter dict."""
    allowed = [n for n, o in _OPTIONS.items() if image or not o.image_only]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; allowed options: {', '.join(allowed)}")
    params = {name: options.get(name, _OPTIONS[name].default) for name in allowed}
    if shape is not None:
        params["shape_cells"] = shape
    shape_opt = _OPTIONS["shape_cells"]
    try:
        ni, nj = params["shape_cells"]
    except (TypeError, ValueError):
        raise ValueError(f"shape_cells must be a pair (ni, nj) of cell counts, got {params['shape_cells']!r}") from None
    params["shape_cells"] = (_check_number("shape_cells", ni, shape_opt, integer=True),
                             _check_number("shape_cells", nj, shape_opt, integer=True))
    for name in allowed:
        opt = _OPTIONS[name]
        if name == "shape_cells" or (params[name] is None and opt.default is None):
            continue
        integer = name in ("interface_rows", "substrate_rows")
        params[name] = _check_number(name, params[name], opt, integer=integer)
    ni, nj = params["shape_cells"]
    for name, value in (("wall_position", (nj - 1) / 2.0), ("substrate_rows", ni // 6), ("interface_rows", ni // 4)):
        if params[name] is None:
            params[name] = value
    if ni - params["substrate_rows"] - params["interface_rows"] < 1:
        raise ValueError(
            f"substrate_rows ({params['substrate_rows']}) + interface_rows ({params['interface_rows']}) must "
            f"leave at least one film row of the {ni} cell rows; lower them or raise shape_cells"
        )
    a0 = params["pitch"] * params["pixel_size"]
    if params["a_jitter"] > 0.1 * a0:
        raise ValueError(f"option 'a_jitter' = {params['a_jitter']} pm is out of range: allowed [0, {0.1 * a0:g}] "
                         f"pm (a tenth of a0 = pitch * pixel_size)")
    if image:
        for name in ("sigma_a", "sigma_b"):
            if params[name] > params["pitch"] / 3:
                raise ValueError(f"option {name!r} = {params[name]} px is out of range: allowed (0, "
                                 f"{params['pitch'] / 3:g}] px (a third of the pitch, else columns merge)")
        longest = max(ni, nj) * params["pitch"]
        if longest > 20000:
            raise ValueError(f"the image would be about {longest:.0f} px wide; keep shape_cells * pitch "
                             f"below 20000 px")
    return params


def _make_rng(seed):
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (or None for a fresh one), got {seed!r}")
    return int(seed), np.random.default_rng(int(seed))


def _geometry(params: dict, margin: float, aspect: float = 1.0) -> tuple[Lattice, tuple[int, int]]:
    """A lattice (``|v2| = |v1| / aspect``) with every A column at least ``margin`` px inside the image, and the
    image shape."""
    ni, nj = params["shape_cells"]
    p = params["pitch"]
    theta = math.radians(params["rotation"])
    v1 = p * np.array([-math.sin(theta), math.cos(theta)])
    v2 = p / aspect * np.array([math.cos(theta), math.sin(theta)])
    corners = np.array([[0, 0], [0, nj], [ni, 0], [ni, nj]], float)
    yx = corners[:, :1] * v2 + corners[:, 1:] * v1
    origin = margin - yx.min(axis=0)
    extent = yx.max(axis=0) + origin + margin
    shape = (int(math.ceil(extent[0])) + 1, int(math.ceil(extent[1])) + 1)
    return Lattice(origin=origin, v1=v1, v2=v2), shape


def _wall(params: dict, cell_lattice: Lattice) -> dict:
    """Wall geometry: a point (yx px), the unit normal (yx, towards "domain +"), widths."""
    ni, _ = params["shape_cells"]
    film_rows = ni - params["substrate_rows"]
    phi = math.radians(params["wall_angle"])
    point_ij = np.array([(film_rows - 1) / 2.0, params["wall_position"]])
    normal_ij = np.array([-math.sin(phi), math.cos(phi)])
    normal = normal_ij[0] * cell_lattice.v2 + normal_ij[1] * cell_lattice.v1
    pitch = float(np.hypot(*cell_lattice.v1))
    return {
        "point": cell_lattice.to_image(point_ij),
        "normal": normal / np.hypot(*normal),
        "width_cells": float(params["wall_width"]),
        "width_px": float(params["wall_width"] * pitch),
        "angle_deg": float(params["wall_angle"]),
        "pitch_px": pitch,
    }


def _signed_distance(wall: dict, yx, unit: str) -> np.ndarray:
    if unit not in ("px", "cells"):
        raise ValueError(f"unit must be 'px' or 'cells', got {unit!r}")
    yx = np.asarray(yx, dtype=float)
    if yx.shape[-1:] != (2,):
        raise ValueError(f"positions must have shape (..., 2) as (y, x) in px, got {yx.shape}")
    d = (yx - wall["point"]) @ wall["normal"]
    return d / wall["pitch_px"] if unit == "cells" else d


def _regions(params: dict, d_cells: np.ndarray) -> np.ndarray:
    ni, nj = params["shape_cells"]
    i = np.arange(ni)[:, None] * np.ones((1, nj), int)
    region = np.where(d_cells >= 0, 1, 0)
    substrate_start = ni - params["substrate_rows"]
    interface_start = substrate_start - params["interface_rows"]
    region = np.where((i >= interface_start) & (i < substrate_start), 2, region)
    return np.where(i >= substrate_start, 3, region)


def _plant(params: dict, region: np.ndarray, d_cells: np.ndarray, i5_rel: np.ndarray, rng):
    """Polarization (Px, Py) in pm and the Px/Py part of the adjacency, per cell (ni, nj)."""
    ni, nj = region.shape
    film = region != 3
    interface = region == 2
    profile = np.tanh(d_cells / params["wall_width"])
    e_x = rng.uniform(-1.0, 1.0, (ni, nj)) * params["px_noise"]
    e_y = rng.uniform(-1.0, 1.0, (ni, nj)) * params["py_noise"]
    c_i5 = np.where(interface, params["py_i5_coupling"], 0.0)
    k = np.where(film, params["px_py_coupling"] * profile, 0.0)
    py = c_i5 * i5_rel + e_y
    px = np.where(film, params["polarization"] * profile, 0.0) + k * py + e_x
    return px, py, k, c_i5


def _adjacency(params: dict, k: np.ndarray, c_i5: np.ndarray, i5_nominal: float, aspect: float = 1.0) -> np.ndarray:
    ni, nj = k.shape
    a0 = params["pitch"] * params["pixel_size"]
    b0 = a0 / aspect
    adj = np.zeros((ni, nj, len(DESCRIPTORS), len(DESCRIPTORS)))
    adj[..., _IDX["Vol"], _IDX["a"]] = b0
    adj[..., _IDX["Vol"], _IDX["b"]] = a0
    adj[..., _IDX["Px"], _IDX["Py"]] = k
    adj[..., _IDX["Py"], _IDX["I5"]] = c_i5 / i5_nominal
    return adj


def _render(shape, positions, amplitudes, sigma, row_shift=None, *, max_values: int = 2**24) -> np.ndarray:
    """Sum of isotropic Gaussians (peak ``amplitudes``) at ``positions`` (N, 2) yx px on an image of ``shape``.

    ``row_shift`` (H,) px moves the content of each image row along x (scan-line jitter).  Columns are drawn in
    chunks of at most ``max_values`` patch pixels, so wide probe tails stay within memory.
    """
    h, w = shape
    r = int(math.ceil(4.0 * sigma))
    steps = np.arange(-r, r + 1)
    chunk = max(1, max_values // len(steps) ** 2)
    out = np.zeros(h * w)
    for start in range(0, len(positions), chunk):
        pos = positions[start:start + chunk]
        centre = np.rint(pos).astype(int)
        rows = centre[:, :1] + steps  # (N, P)
        cols = centre[:, 1:] + steps
        gy = np.exp(-0.5 * ((rows - pos[:, :1]) / sigma) ** 2) * amplitudes[start:start + chunk, None]
        if row_shift is None:
            values = gy[:, :, None] * np.exp(-0.5 * ((cols - pos[:, 1:]) / sigma) ** 2)[:, None, :]
        else:
            shift = row_shift[np.clip(rows, 0, h - 1)][:, :, None]
            values = gy[:, :, None] * np.exp(-0.5 * ((cols[:, None, :] - pos[:, 1:, None] - shift) / sigma) ** 2)
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        flat = rows[:, :, None] * w + cols[:, None, :]
        out += np.bincount(flat[inside], weights=values[inside], minlength=h * w)
    return out.reshape(h, w)


def _render_columns(shape, positions, amplitudes, sigma, params: dict, row_shift) -> np.ndarray:
    """The columns of one sublattice: a Gaussian core plus, with ``probe_tail``, a wider Gaussian tail."""
    image = _render(shape, positions, amplitudes, sigma, row_shift)
    if params["probe_tail"] > 0:
        image += _render(shape, positions, amplitudes * params["probe_tail"], sigma * params["tail_width"], row_shift)
    return image


def _frame_state(frame: pd.DataFrame) -> dict:
    return {"columns": [str(c) for c in frame.columns], "data": {c: frame[c].to_numpy().copy() for c in frame.columns}}


def _frame_from_state(state: dict) -> pd.DataFrame:
    return pd.DataFrame({c: np.asarray(state["data"][c]) for c in state["columns"]})


def _params_state(params: dict) -> dict:
    return {k: np.asarray(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _params_from_state(state: dict) -> dict:
    params = dict(state)
    params["shape_cells"] = tuple(int(n) for n in np.asarray(params["shape_cells"]))
    return params


def _wall_state(wall: dict) -> dict:
    return {k: np.asarray(v).copy() if isinstance(v, np.ndarray) else v for k, v in wall.items()}


def _wall_from_state(state: dict) -> dict:
    return {k: np.asarray(v, dtype=float) if k in ("point", "normal") else float(v) for k, v in state.items()}


def _names_state(names: dict) -> list[str]:
    return [names[k] for k in sorted(names)]


class _PlantedStructure:
    """Queries shared by :class:`SyntheticTruth` and :class:`SyntheticGrid` (fields ``region``, ``wall``,
    ``adjacency``)."""

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(ni, nj) number of cells."""
        return tuple(self.region.shape)

    def signed_distance_to_wall(self, yx, *, unit: str = "px") -> np.ndarray:
        """Signed distance of positions ``yx`` (..., 2) in px to the domain wall (> 0 in "domain +").

        ``unit="px"`` returns px, ``unit="cells"`` unit cells (divide by ``wall["width_cells"]`` for d / Lc).
        """
        return _signed_distance(self.wall, yx, unit)

    def coefficient(self, effect: str, cause: str) -> np.ndarray:
        """(ni, nj) map of the planted ``effect <- cause`` coefficient."""
        return self.adjacency[..., _descriptor_index(effect), _descriptor_index(cause)]

    def wall_line(self) -> np.ndarray:
        """(2, 2) end points (y, x) in px of the planted wall across the cell grid, as a user would draw it."""
        half = 0.75 * max(self.grid_shape) * self.wall["pitch_px"]
        along = np.array([-self.wall["normal"][1], self.wall["normal"][0]])
        point = np.asarray(self.wall["point"], dtype=float)
        return np.stack([point - half * along, point + half * along])


@dataclass(frozen=True, eq=False)
class SyntheticTruth(_PlantedStructure):
    """Ground truth of a synthetic perovskite image.

    Attributes
    ----------
    a_positions : (Na, 2) float array
        True A-column positions (y, x) in px, row-major over the (ni + 1, nj + 1) A grid.
    a_grid : (Na, 2) int array
        A indices (i, j): ideal position ``lattice.origin + i v2 + j v1``.
    a_intensity : (Na,) float array
        A peak amplitudes in expected counts (above background).
    b_positions : (Nb, 2) float array
        True B-column positions (y, x) in px, row-major over the (ni, nj) cell grid.
    b_grid : (Nb, 2) int array
        Cell indices (i, j) of the B columns.
    b_intensity : (Nb,) float array
        B peak amplitudes in expected counts.
    lattice : Lattice
        Ideal A lattice (origin = A(0, 0)), px.
    cell_lattice : Lattice
        Cell grid (i, j) -> nominal B position, px (``lattice.subgrid((0.5, 0.5))``).
    descriptors : DataFrame
        One row per cell (row-major): ``i, j, y, x`` (true B position, px) and the 8 descriptors computed
        from the true positions (pm, deg, pm^2, counts; frame "lattice").
    adjacency : (ni, nj, 8, 8) float array
        Planted adjacency per cell, ``B[..., e, c]`` = effect of descriptor c on descriptor e (lingam
        convention), order :data:`DESCRIPTORS`, in descriptor units (e.g. pm per count for Py <- I5).
    region : (ni, nj) int array
        Region labels, see ``region_names``.
    region_names : dict
        Label -> name: 0 "domain -", 1 "domain +", 2 "interface" (band above the substrate, both sides of the
        wall), 3 "substrate".
    wall : dict
        ``point`` (2,) yx px on the wall, ``normal`` (2,) unit yx pointing into "domain +", ``width_cells``
        (Lc in cells), ``width_px``, ``angle_deg``, ``pitch_px``.
    units : dict
        Descriptor name -> unit, plus ``"positions": "px"``.
    pixel_size : float
        pm per px.
    line_shifts : (H,) float array or None
        Scan-line jitter of the image: the content of image row ``r`` appears shifted by ``line_shifts[r]`` px
        along x (None when ``line_jitter`` is 0).  The positions above are the true (unshifted) ones.
    """

    a_positions: np.ndarray
    a_grid: np.ndarray
    a_intensity: np.ndarray
    b_positions: np.ndarray
    b_grid: np.ndarray
    b_intensity: np.ndarray
    lattice: Lattice
    cell_lattice: Lattice
    descriptors: pd.DataFrame
    adjacency: np.ndarray
    region: np.ndarray
    region_names: dict
    wall: dict
    units: dict
    pixel_size: float
    line_shifts: np.ndarray | None = None

    def to_state(self) -> dict:
        """Nested dict of arrays / str / float for saving; :meth:`from_state` rebuilds it exactly."""
        state = {name: getattr(self, name).copy() for name in _TRUTH_ARRAYS}
        state.update(lattice=self.lattice.to_state(), cell_lattice=self.cell_lattice.to_state(),
                     descriptors=_frame_state(self.descriptors), region_names=_names_state(self.region_names),
                     wall=_wall_state(self.wall), units=dict(self.units), pixel_size=float(self.pixel_size))
        if self.line_shifts is not None:
            state["line_shifts"] = self.line_shifts.copy()
        return state

    @classmethod
    def from_state(cls, state: dict) -> "SyntheticTruth":
        return cls(**{name: np.asarray(state[name]) for name in _TRUTH_ARRAYS},
                   lattice=Lattice.from_state(state["lattice"]), cell_lattice=Lattice.from_state(state["cell_lattice"]),
                   descriptors=_frame_from_state(state["descriptors"]),
                   region_names=dict(enumerate(state["region_names"])), wall=_wall_from_state(state["wall"]),
                   units=dict(state["units"]), pixel_size=float(state["pixel_size"]),
                   line_shifts=None if state.get("line_shifts") is None else np.asarray(state["line_shifts"]))

    def __repr__(self) -> str:
        ni, nj = self.grid_shape
        return f"SyntheticTruth({ni} x {nj} cells, {len(self.a_positions)} A, {len(self.b_positions)} B columns)"


@dataclass(frozen=True, eq=False)
class SyntheticSample:
    """A synthetic HAADF-STEM image with its planted truth.

    Attributes
    ----------
    image : (H, W) float64 array
        Counts per px (Poisson + Gaussian read noise; may dip slightly below 0 through read noise).
    pixel_size : float
        pm per px.
    truth : SyntheticTruth
    params : dict
        Every option used, defaults filled in.
    provenance : dict
    """

    image: np.ndarray
    pixel_size: float
    truth: SyntheticTruth
    params: dict
    provenance: dict = field(repr=False)

    def to_state(self) -> dict:
        """Nested dict for saving; :meth:`from_state` rebuilds it exactly."""
        return {"image": self.image.copy(), "pixel_size": float(self.pixel_size), "truth": self.truth.to_state(),
                "params": _params_state(self.params), "provenance": self.provenance}

    @classmethod
    def from_state(cls, state: dict) -> "SyntheticSample":
        return cls(image=np.asarray(state["image"]), pixel_size=float(state["pixel_size"]),
                   truth=SyntheticTruth.from_state(state["truth"]), params=_params_from_state(state["params"]),
                   provenance=state["provenance"])

    def __repr__(self) -> str:
        return f"SyntheticSample(image {self.image.shape}, pixel_size={self.pixel_size} pm/px, {self.truth!r})"


@dataclass(frozen=True, eq=False)
class SyntheticGrid(_PlantedStructure):
    """Descriptor 8-vectors drawn directly on a cell grid from the planted structural equations.

    Attributes
    ----------
    table : DataFrame
        One row per cell (row-major): ``i, j, y, x`` (nominal B position in px of ``lattice``) and the 8
        descriptors.
    adjacency : (ni, nj, 8, 8) float array
        Planted adjacency per cell (lingam convention, descriptor units).
    region, region_names, wall, units, pixel_size
        As in :class:`SyntheticTruth`.
    lattice : Lattice
        Nominal cell lattice: grid (i, j) -> image px, so maps line up with a matching synthetic image.
    params : dict
    provenance : dict
    """

    table: pd.DataFrame
    adjacency: np.ndarray
    region: np.ndarray
    region_names: dict
    wall: dict
    lattice: Lattice
    units: dict
    pixel_size: float
    params: dict
    provenance: dict = field(repr=False)

    def to_state(self) -> dict:
        """Nested dict for saving; :meth:`from_state` rebuilds it exactly."""
        return {"table": _frame_state(self.table), "adjacency": self.adjacency.copy(), "region": self.region.copy(),
                "region_names": _names_state(self.region_names), "wall": _wall_state(self.wall),
                "lattice": self.lattice.to_state(), "units": dict(self.units), "pixel_size": float(self.pixel_size),
                "params": _params_state(self.params), "provenance": self.provenance}

    @classmethod
    def from_state(cls, state: dict) -> "SyntheticGrid":
        return cls(table=_frame_from_state(state["table"]), adjacency=np.asarray(state["adjacency"]),
                   region=np.asarray(state["region"]), region_names=dict(enumerate(state["region_names"])),
                   wall=_wall_from_state(state["wall"]), lattice=Lattice.from_state(state["lattice"]),
                   units=dict(state["units"]), pixel_size=float(state["pixel_size"]),
                   params=_params_from_state(state["params"]), provenance=state["provenance"])

    def __repr__(self) -> str:
        ni, nj = self.grid_shape
        return f"SyntheticGrid({ni} x {nj} cells)"


def _descriptor_index(name: str) -> int:
    if name not in _IDX:
        raise ValueError(f"unknown descriptor {name!r}; expected one of {', '.join(DESCRIPTORS)}")
    return _IDX[name]


def _cell_index_grid(ni: int, nj: int) -> np.ndarray:
    """(ni * nj, 2) int (i, j), row-major."""
    return np.stack(np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij"), axis=-1).reshape(-1, 2)


def _drawn_columns(params: dict, lattice, a_grid, rng):
    """``(a_pos, a_amp, i5_rel, b_amp)``: A positions (px) with their jitter and amplitudes (counts), and the B
    amplitudes' relative spread (ni, nj) and amplitudes (counts), drawn from ``rng`` in this order."""
    ni, nj = params["shape_cells"]
    a_ideal = lattice.to_image(a_grid)
    a_pos = a_ideal + rng.uniform(-1.0, 1.0, a_ideal.shape) * (params["a_jitter"] / params["pixel_size"])
    a_nominal = np.where(a_grid[:, 0] >= ni - params["substrate_rows"], params["substrate_intensity"], 1.0)
    a_amp = params["dose"] * a_nominal * (1.0 + params["a_amplitude_spread"] * rng.uniform(-1.0, 1.0, len(a_grid)))
    i5_nominal = params["dose"] * params["b_intensity"]
    i5_rel = params["b_amplitude_spread"] * rng.uniform(-1.0, 1.0, (ni, nj))
    return a_pos, a_amp, i5_rel, (i5_nominal * (1.0 + i5_rel)).reshape(-1)


def _planted_cells(params: dict, lattice, motif, a_pos, a_amp, b_grid, b_amp, px, py):
    """``(b_pos, table)``: the B positions (px), offset by the planted P (pm) from the motif's nominal site, and
    the cells' descriptors with their grid index and position."""
    nj = params["shape_cells"][1]
    ps = params["pixel_size"]
    flat = b_grid[:, 0] * (nj + 1) + b_grid[:, 1]
    corner_idx = np.stack([flat, flat + 1, flat + nj + 1, flat + nj + 2], axis=1)
    corners = a_pos[corner_idx]
    x_hat = lattice.v1 / np.hypot(*lattice.v1)
    y_hat = np.array([x_hat[1], -x_hat[0]])
    b_pos = motif.nominal_b(corners) + (px.reshape(-1, 1) * x_hat + py.reshape(-1, 1) * y_hat) / ps
    table = compute_descriptors(corners, b_pos, a_amp[corner_idx], b_amp, pixel_size=ps, frame="lattice",
                                v1=lattice.v1, motif=motif)
    table.insert(0, "x", b_pos[:, 1])
    table.insert(0, "y", b_pos[:, 0])
    table.insert(0, "j", b_grid[:, 1])
    table.insert(0, "i", b_grid[:, 0])
    return b_pos, table


def _rendered_image(params: dict, shape, a_pos, a_amp, b_pos, b_amp, rng):
    """``(image, row_shift)``: the columns rendered on ``shape`` with the scan's row shifts (px; None without
    line jitter or drift), Poisson counting noise and read noise."""
    row_shift = rng.normal(0.0, params["line_jitter"], shape[0]) if params["line_jitter"] > 0 else None
    if params["scan_drift"] != 0:
        t = np.linspace(-1.0, 1.0, shape[0])
        drift = params["scan_drift"] * (3.0 * t**2 - 1.0) / 2.0
        row_shift = drift if row_shift is None else row_shift + drift
    clean = params["background"] + _render_columns(shape, a_pos, a_amp, params["sigma_a"], params, row_shift) + \
        _render_columns(shape, b_pos, b_amp, params["sigma_b"], params, row_shift)
    image = rng.poisson(clean).astype(np.float64)
    if params["read_noise"] > 0:
        image += rng.normal(0.0, params["read_noise"], shape)
    return image, row_shift


def synthetic_perovskite(seed: int | None = 0, *, projection: str = "[001]", **options) -> SyntheticSample:
    """Make a synthetic HAADF-STEM image of a perovskite film with a planted causal structure.

    Parameters
    ----------
    seed : int or None
        Seed of the single random generator (None draws a fresh seed, recorded in the provenance).
    projection : {"[001]", "[110]"}
        Crystal projection.  "[110]": rectangular A cell ``pitch x pitch / sqrt2`` (``b0 = a0 / sqrt2``),
        B half-way along the top edge (long edge, ``v1``) of its cell; recorded as ``params["projection"]``.
    **options
        Keyword options, all optional (defaults in brackets):

        shape_cells : (int, int)
            (ni, nj) unit cells (rows, columns), each >= 4 [(48, 48)].
        pitch : float
            Lattice parameter in px per cell, >= 4 [20.0].
        pixel_size : float
            pm per px [19.8, so a0 = 396 pm, BiFeO3-like].
        rotation : float
            Rotation of the lattice from the image x axis, degrees in [-45, 45] [3.0].
        sigma_a, sigma_b : float
            Gaussian widths (sigma) of the A and B columns in px, at most pitch / 3 [2.4, 2.0].
        dose : float
            Expected counts at the peak of a film A column, > 0 [1000.0]; with the defaults a 2D Gaussian fit
            locates a column to about 0.03 px (0.6 pm) and the B intensity to a few per cent.
        b_intensity : float
            B peak relative to the film A peak, in (0, 1] [0.4].
        substrate_intensity : float
            Substrate A peak relative to the film A peak [0.7].
        background : float
            Uniform background, counts per px [10.0].
        read_noise : float
            Gaussian read-noise standard deviation, counts per px [2.0].
        probe_tail : float
            Peak of a wide Gaussian tail on every column relative to the column's peak, in [0, 1] [0.0]; real
            probes have tails (e.g. 0.2), which overlap the neighbouring columns.
        tail_width : float
            Sigma of that tail relative to the column's sigma [3.0].
        line_jitter : float
            Scan-line jitter: rms shift in px along x of each image row, independent per row [0.0]; the shifts
            are ``truth.line_shifts``.
        scan_drift : float
            Slow-scan drift: peak x shift in px of the smooth drift ``scan_drift * (3 t^2 - 1) / 2`` over the
            rows (``t`` from -1 to 1) [0.0]; added to ``truth.line_shifts``.
        a_amplitude_spread, b_amplitude_spread : float
            Relative half-widths of the uniform scatter of A and B peak amplitudes [0.08, 0.15].
        a_jitter : float
            Half-width in pm of the uniform A-column displacement per axis, <= a0 / 10 [6.0].
        wall_position : float or None
            Cell column (fractional) where the wall crosses the middle film row [None = (nj - 1) / 2].
        wall_angle : float
            Tilt of the wall from the grid's i axis, degrees in [-60, 60] [4.0].
        wall_width : float
            Correlation length Lc of the tanh profile, in cells, > 0 [2.0].
        interface_rows : int or None
            Film cell rows right above the substrate where ``Py <- I5`` exists [None = ni // 4, 12 for 48].
        substrate_rows : int or None
            Bottom cell rows of substrate (dimmer A, no polarization) [None = ni // 6, 8 for 48].
        polarization : float
            Ps in pm: mean ``Px = Ps tanh(d / Lc)`` [15.0].
        px_py_coupling : float
            k0 in ``Px <- Py = k0 tanh(d / Lc)``, pm per pm [0.6].
        py_i5_coupling : float
            Py change in pm per unit relative change of I5 in the interface band [100.0]; the planted
            coefficient ``Py <- I5`` is this divided by the nominal B peak (pm per count).
        px_noise, py_noise : float
            Half-widths in pm of the uniform noises of Px and Py [6.0, 12.0].

    Returns
    -------
    SyntheticSample
        ``image`` (H, W) float64 in counts, ``pixel_size`` (pm/px), ``truth`` (:class:`SyntheticTruth`),
        ``params`` and ``provenance``.

    Raises
    ------
    ValueError
        Unknown option, value out of its range (the message names the option and the allowed range), or
        a bad seed.

    Examples
    --------
    >>> s = synthetic_perovskite(seed=1, shape_cells=(8, 8))
    >>> s.image.shape, s.truth.adjacency.shape
    ((230, 230), (8, 8, 8, 8))
    >>> sorted(s.truth.region_names.items())
    [(0, 'domain -'), (1, 'domain +'), (2, 'interface'), (3, 'substrate')]
    """
    params = _resolve_options(options, image=True)
    if projection not in ("[001]", "[110]"):
        raise ValueError(f"projection must be '[001]' or '[110]', got {projection!r}")
    params["projection"] = projection
    aspect = math.sqrt(2.0) if projection == "[110]" else 1.0
    seed, rng = _make_rng(seed)
    ni, nj = params["shape_cells"]
    ps = params["pixel_size"]
    lattice, shape = _geometry(params, margin=1.5 * params["pitch"], aspect=aspect)
    motif = get_motif(projection, lattice)
    cell_lattice = lattice.subgrid(motif.b_site)

    a_grid = _cell_index_grid(ni + 1, nj + 1)
    b_grid = _cell_index_grid(ni, nj)
    a_pos, a_amp, i5_rel, b_amp = _drawn_columns(params, lattice, a_grid, rng)
    wall = _wall(params, cell_lattice)
    d_cells = _signed_distance(wall, cell_lattice.to_image(b_grid), "cells").reshape(ni, nj)
    region = _regions(params, d_cells)
    px, py, k, c_i5 = _plant(params, region, d_cells, i5_rel, rng)
    b_pos, table = _planted_cells(params, lattice, motif, a_pos, a_amp, b_grid, b_amp, px, py)
    image, row_shift = _rendered_image(params, shape, a_pos, a_amp, b_pos, b_amp, rng)
    i5_nominal = params["dose"] * params["b_intensity"]
    units = dict(descriptor_units(ps, "counts"), positions="px")
    truth = SyntheticTruth(
        a_positions=a_pos, a_grid=a_grid, a_intensity=a_amp, b_positions=b_pos, b_grid=b_grid,
        b_intensity=b_amp, lattice=lattice, cell_lattice=cell_lattice, descriptors=table,
        adjacency=_adjacency(params, k, c_i5, i5_nominal, aspect), region=region, region_names=dict(REGION_NAMES),
        wall=wall, units=units, pixel_size=ps, line_shifts=row_shift,
    )
    provenance = make_provenance("synthetic_perovskite", params, seed=seed)
    return SyntheticSample(image=image, pixel_size=ps, truth=truth, params=params, provenance=provenance)


def synthetic_descriptor_grid(shape=(48, 48), seed: int | None = 0, **options) -> SyntheticGrid:
    """Draw per-cell descriptor 8-vectors on a grid from the same region-wise planted structural equations.

    No image: fast input for testing the causal layers.  Regions, wall, ``Py <- I5`` and ``Px <- Py`` are as in
    :func:`synthetic_perovskite`; ``I14``, ``I5``, ``a``, ``b``, ``alpha`` are exogenous and uniform (``I14`` on
    ``4 * dose * (1 +- a_amplitude_spread)``, ``a`` and ``b`` on ``a0 +- a_jitter``, ``alpha`` on
    ``90 +- deg(2 a_jitter / a0)``); ``Vol = a0 b0 + b0 (a - a0) + a0 (b - b0) + e_vol`` (linear, ``e_vol``
    uniform on +-``vol_noise`` pm^2), so ``Vol <- a = b0`` and ``Vol <- b = a0`` hold exactly.

    Parameters
    ----------
    shape : (int, int)
        (ni, nj) number of cells, each >= 4.
    seed : int or None
        Seed of the single random generator.
    **options
        The options of :func:`synthetic_perovskite` that make sense without an image (not ``sigma_a``,
        ``sigma_b``, ``background``, ``read_noise``; ``shape_cells`` is ``shape``), plus ``vol_noise``
        (pm^2, default 1000).

    Returns
    -------
    SyntheticGrid
        ``table`` (ni * nj rows: i, j, y, x + 8 descriptors), ``adjacency`` (ni, nj, 8, 8), region labels,
        wall, nominal ``lattice``, units, params, provenance.

    Examples
    --------
    >>> g = synthetic_descriptor_grid((10, 12), seed=0)
    >>> g.table.shape, g.adjacency.shape
    ((120, 12), (10, 12, 8, 8))
    """
    if "shape_cells" in options:
        raise ValueError("give the grid size as shape=(ni, nj), not shape_cells")
    params = _resolve_options(options, image=False, shape=shape)
    seed, rng = _make_rng(seed)
    ni, nj = params["shape_cells"]
    ps = params["pixel_size"]
    a0 = b0 = params["pitch"] * ps
    lattice, _ = _geometry(params, margin=1.5 * params["pitch"])
    cell_lattice = lattice.subgrid((0.5, 0.5))
    b_grid = _cell_index_grid(ni, nj)
    centres = cell_lattice.to_image(b_grid)

    wall = _wall(params, cell_lattice)
    d_cells = _signed_distance(wall, centres, "cells").reshape(ni, nj)
    region = _regions(params, d_cells)

    def uniform(half_width):
        return rng.uniform(-1.0, 1.0, (ni, nj)) * half_width

    a_level = np.where(region == 3, params["substrate_intensity"], 1.0)
    i14 = 4.0 * params["dose"] * a_level * (1.0 + uniform(params["a_amplitude_spread"]))
    i5_nominal = params["dose"] * params["b_intensity"]
    i5_rel = uniform(params["b_amplitude_spread"])
    i5 = i5_nominal * (1.0 + i5_rel)
    a = a0 + uniform(params["a_jitter"])
    b = b0 + uniform(params["a_jitter"])
    alpha = 90.0 + uniform(math.degrees(2.0 * params["a_jitter"] / a0))
    vol = a0 * b0 + b0 * (a - a0) + a0 * (b - b0) + uniform(params["vol_noise"])
    px, py, k, c_i5 = _plant(params, region, d_cells, i5_rel, rng)

    columns = {"i": b_grid[:, 0], "j": b_grid[:, 1], "y": centres[:, 0], "x": centres[:, 1]}
    for name, values in zip(DESCRIPTORS, (i14, i5, a, b, alpha, vol, px, py)):
        columns[name] = values.reshape(-1)
    units = dict(descriptor_units(ps, "counts"), positions="px")
    return SyntheticGrid(
        table=pd.DataFrame(columns), adjacency=_adjacency(params, k, c_i5, i5_nominal), region=region,
        region_names=dict(REGION_NAMES), wall=wall, lattice=cell_lattice, units=units, pixel_size=ps,
        params=params, provenance=make_provenance("synthetic_descriptor_grid", params, seed=seed),
    )


def _smooth_field(shape, correlation_length: float, rng) -> np.ndarray:
    """Unit-variance Gaussian random field on a grid, correlation ``exp(-d^2 / (2 xi^2))`` at ``d`` cells.

    White noise smoothed by a Gaussian of sigma ``xi / sqrt(2)`` (a padded grid, so edges are not damped),
    rescaled to unit standard deviation; ``xi = 0`` gives white noise.
    """
    from scipy.ndimage import gaussian_filter

    if correlation_length == 0:
        return rng.standard_normal(shape)
    sigma = correlation_length / math.sqrt(2.0)
    pad = int(math.ceil(4 * sigma))
    white = rng.standard_normal((shape[0] + 2 * pad, shape[1] + 2 * pad))
    field = gaussian_filter(white, sigma, mode="wrap")[pad:pad + shape[0], pad:pad + shape[1]]
    return field / field.std()


def _checked_null_grid(shape, **values) -> tuple[int, int]:
    """``(ni, nj)`` of a :func:`synthetic_null_grid` after checking the grid and every number's range."""
    ni, nj = (int(n) for n in shape)
    if min(ni, nj) < 4:
        raise ValueError(f"shape must be at least (4, 4) cells, got {tuple(shape)}")
    pitch = values["pitch"]
    checks = {"correlation_length": (0.0, 20.0), "position_noise": (0.0, pitch / 4), "intensity_noise": (0.0, 0.5),
              "pitch": (4.0, 200.0), "pixel_size": (1e-6, 1e4), "dose": (1e-6, 1e9), "b_intensity": (1e-6, 1.0)}
    for name, (low, high) in checks.items():
        value = values[name]
        if not (isinstance(value, (int, float, np.integer, np.floating)) and low <= float(value) <= high):
            raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return ni, nj


def _null_grid_descriptors(ni: int, nj: int, origin, v1, v2, b_grid, b_nominal, xi: float, rng, *, position_noise,
                           intensity_noise, dose, b_intensity, pixel_size):
    """The descriptors of the null grid's cells: A corners and B columns at their nominal places (px) plus
    smooth correlated displacements and relative intensity noise, drawn from ``rng`` in this order."""
    ai, aj = np.meshgrid(np.arange(ni + 1), np.arange(nj + 1), indexing="ij")
    a_yx = origin + ai[..., None] * v2 + aj[..., None] * v1
    a_yx = a_yx + position_noise * np.stack([_smooth_field(ai.shape, xi, rng) for _ in range(2)], axis=-1)
    a_int = dose * (1.0 + intensity_noise * _smooth_field(ai.shape, xi, rng))
    b_yx = b_nominal + position_noise * np.stack([_smooth_field((ni, nj), xi, rng).ravel() for _ in range(2)],
                                                 axis=-1)
    b_int = dose * b_intensity * (1.0 + intensity_noise * _smooth_field((ni, nj), xi, rng).ravel())
    i, j = b_grid[:, 0], b_grid[:, 1]
    corner_index = [(i, j), (i, j + 1), (i + 1, j), (i + 1, j + 1)]
    corners = np.stack([a_yx[r, c] for r, c in corner_index], axis=1)
    corner_int = np.stack([a_int[r, c] for r, c in corner_index], axis=1)
    return compute_descriptors(corners, b_yx, corner_int, b_int, pixel_size=pixel_size, frame="lattice", v1=v1)


def synthetic_null_grid(shape=(48, 48), seed: int | None = 0, *, correlation_length: float = 2.0,
                        position_noise: float = 0.3, intensity_noise: float = 0.05, pitch: float = 20.0,
                        pixel_size: float = 19.8, dose: float = 1000.0, b_intensity: float = 0.4) -> SyntheticGrid:
    """A non-polar control: descriptors with NO causal link, but spatially correlated, corner-sharing errors.

    A perovskite [001] cell grid whose A-corner positions ((ni + 1) x (nj + 1) columns) and B positions
    (ni x nj) are the nominal ones plus independent, spatially correlated Gaussian displacements (per axis,
    ``position_noise`` px, correlation ``exp(-d^2 / (2 correlation_length^2))`` at ``d`` columns), and whose
    A and B intensities carry correlated relative noise (``intensity_noise``).  The descriptors are computed
    from these columns with :func:`~napari_causal_lattice.descriptors.compute_descriptors`, so neighbouring
    cells share A corners like measured cells do (``a``, ``b``, ``alpha``, ``Px``, ``Py`` of adjacent cells
    are correlated through their common corners).  No descriptor causes another: the only dependences are the
    exact identity ``Vol = a b sin(alpha)`` and the corner sharing (``Px`` and ``a`` of one cell both read
    the corner displacements, but are linearly uncorrelated).  Any other edge a test reports is false.

    Parameters
    ----------
    shape : (int, int)
        (ni, nj) number of cells, each >= 4.
    seed : int or None
        Seed of the single random generator (None draws a fresh one, recorded in the provenance).
    correlation_length : float
        Correlation length of every noise field, in unit cells (0: white noise; 1-3 as in real scans).
    position_noise : float
        Standard deviation of each column displacement per axis, px.
    intensity_noise : float
        Relative standard deviation of the column intensities.
    pitch, pixel_size, dose, b_intensity
        Lattice parameter (px), pixel size (pm/px), A peak counts and B/A intensity ratio.

    Returns
    -------
    SyntheticGrid
        ``table`` (i, j, y, x + 8 descriptors), ``adjacency`` all zero, ``region`` all 0 (``"null"``), a
        nominal vertical ``wall`` (unused), ``lattice``, ``units``, ``params``, ``provenance``.

    Examples
    --------
    >>> g = synthetic_null_grid((10, 12), seed=0, correlation_length=2)
    >>> g.table.shape, float(np.abs(g.adjacency).max())
    ((120, 12), 0.0)
    """
    ni, nj = _checked_null_grid(shape, correlation_length=correlation_length, position_noise=position_noise,
                                intensity_noise=intensity_noise, pitch=pitch, pixel_size=pixel_size, dose=dose,
                                b_intensity=b_intensity)
    seed, rng = _make_rng(seed)
    xi = float(correlation_length)
    v1, v2 = np.array([0.0, pitch]), np.array([pitch, 0.0])
    origin = np.array([2.0 * pitch, 2.0 * pitch])
    b_grid = _cell_index_grid(ni, nj)
    b_nominal = origin + (b_grid[:, :1] + 0.5) * v2 + (b_grid[:, 1:] + 0.5) * v1
    desc = _null_grid_descriptors(ni, nj, origin, v1, v2, b_grid, b_nominal, xi, rng, position_noise=position_noise,
                                  intensity_noise=intensity_noise, dose=dose, b_intensity=b_intensity,
                                  pixel_size=pixel_size)
    i, j = b_grid[:, 0], b_grid[:, 1]
    cell_lattice = Lattice(origin=origin + 0.5 * (v1 + v2), v1=v1, v2=v2)
    table = pd.DataFrame({"i": i, "j": j, "y": b_nominal[:, 0], "x": b_nominal[:, 1]})
    for name in DESCRIPTORS:
        table[name] = desc[name].to_numpy()
    params = {"shape_cells": (ni, nj), "correlation_length": xi, "position_noise": float(position_noise),
              "intensity_noise": float(intensity_noise), "pitch": float(pitch), "pixel_size": float(pixel_size),
              "dose": float(dose), "b_intensity": float(b_intensity)}
    wall = {"point": cell_lattice.to_image(np.array([(ni - 1) / 2.0, (nj - 1) / 2.0])), "normal": np.array([0.0, 1.0]),
            "width_cells": 1.0, "width_px": float(pitch), "angle_deg": 90.0, "pitch_px": float(pitch)}
    return SyntheticGrid(
        table=table, adjacency=np.zeros((ni, nj, len(DESCRIPTORS), len(DESCRIPTORS))),
        region=np.zeros((ni, nj), dtype=np.int64), region_names={0: "null"}, wall=wall, lattice=cell_lattice,
        units=dict(descriptor_units(pixel_size, "counts"), positions="px"), pixel_size=float(pixel_size),
        params=params, provenance=make_provenance("synthetic_null_grid", params, seed=seed),
    )
