"""Sliding-window LiNGAM: the causal adjacency of the unit-cell descriptors, window by window.

The cell grid (lattice indices ``i``, ``j``) is tiled with square windows of ``window x window``
cells moved by ``stride`` cells (the paper uses ``stride = window // 2``, i.e. 50 % overlap).
Every window, and every bootstrap resample of it, is fitted with DirectLiNGAM; all fits of all
windows go through the batched engine :func:`napari_causal_lattice.causal.engine.direct_lingam_batch`
in fixed-size chunks (:func:`fit_chunk`) spread over a local thread pool or any
``concurrent.futures.Executor`` (a process pool, a dask.distributed cluster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .causal.confidence import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_DIRECTION,
    DEFAULT_SPATIAL_MAX_LAG,
    LINK_TYPES,
    edge_decision,
    fdr_adjust,
    link_type,
    order_pvalues,
)
from .causal.fit import near_deterministic, warn_deterministic
from .causal.methods import resolve_method
from .causal.prior import resolve_prior
from .executors import as_executor, run_units
from .lattice import DESCRIPTORS, Lattice
from .options import SlidingOptions, check_seed, takes_options
from .provenance import make_provenance

__all__ = ["LINK_TYPES", "SlidingResult", "fit_chunk", "sliding_lingam", "suggest_window"]

#: Soft cap on the number of float64 values of one chunk's design array (m x n x p), ~16 MB.
_CHUNK_VALUES = 2**21
#: Most fits in one chunk (the engine is batched over fits).
_CHUNK_FITS = 1024
#: Small jobs are still cut into this many chunks, so both cores work and progress moves.
_MIN_CHUNKS = 8


@dataclass(frozen=True)
class SlidingResult:
    """Causal adjacency of every window of a sliding LiNGAM transform.

    Window ``(ky, kx)`` covers the grid rows ``i0 + ky * stride ... + window - 1`` and columns
    ``j0 + kx * stride ... + window - 1`` (``i0, j0``: the smallest grid indices of the cells).

    Attributes
    ----------
    names : tuple of str
        The ``p`` variables, in the order of the matrix axes.
    window, stride : int
        Window side and step, in cells.
    adjacency : (ny, nx, p, p) float array
        Per-window adjacency of the full-window fit; ``adjacency[ky, kx, e, c]`` is the effect of
        variable ``c`` on variable ``e`` (lingam convention ``e <- c``).  NaN for skipped windows.
        In standard deviations of the window (dimensionless) when ``standardized``, otherwise in
        ``units[e] / units[c]``.
    probabilities : (ny, nx, p, p) float array or None
        Fraction of bootstrap resamples in which the edge ``e <- c`` is non-zero (lingam's
        ``get_probabilities`` with ``min_causal_effect=0``; degenerate resamples, if any, are left out);
        None without bootstrap.  NaN for skipped windows.
    n_cells : (ny, nx) int array
        Complete cells (all variables finite) inside each window.
    orders : (ny, nx, p) int array
        Causal order (variable indices, causes first) of the full-window fit; -1 when skipped.
    reasons : (ny, nx) str array
        Why a window was skipped; ``""`` when it was fitted.
    centers_grid : (ny, nx, 2) float array
        Window centres as fractional grid indices ``(i, j)``.
    lattice : Lattice or None
        Window index ``(ky, kx)`` -> window centre ``(y, x)`` in image px (a sub-grid of the cell
        lattice), so per-window maps line up with the image; None when the cells had no lattice.
    n_bootstrap : int
        Bootstrap resamples per window.
    standardized : bool
        Whether each window was standardized (zero mean, unit variance per variable) before fitting.
    units : dict
        Variable name -> unit of the input descriptors.
    prior_knowledge : (p, p) int array or None
        Prior-knowledge matrix used (lingam convention), None when unconstrained.
    scales : (ny, nx, p) float array
        Standard deviation of each variable over each window's cells, in descriptor units (NaN where
        skipped): ``adjacency[..., e, c] * scales[..., e] / scales[..., c]`` is the coupling in units.
    provenance : dict
        Parameters, seed and versions.
    bootstrap_adjacency : (ny, nx, n_bootstrap, p, p) float array or None
        Adjacency of every bootstrap fit (only with ``keep_bootstrap=True``); NaN for skipped windows.
    bootstrap_orders : (ny, nx, n_bootstrap, p) int array or None
        Causal order of every bootstrap fit (only with ``keep_bootstrap=True``); -1 for skipped windows.
    p_values : (ny, nx, p, p) float array or None
        p-value of ``e <- c`` from the order t-test of each window (see
        :mod:`napari_causal_lattice.causal.confidence`); 1 against the causal order; NaN where skipped.
        None for results saved before it existed.
    significant : (ny, nx, p, p) bool array or None
        The calibrated edge decision per window (level ``provenance["params"]["alpha"]``, FDR-controlled when
        ``fdr`` was given, direction from the bootstrap); False where skipped.  None for old results.  With an
        instrument null, only the elements that beat both the calibrated test and the null.
    null_p_values : (ny, nx, p, p) float array or None
        FDR-adjusted (over windows x pairs) p-value of each element against the instrument null
        (:mod:`napari_causal_lattice.null`); None without a null.
    instrument : (ny, nx, p, p) bool array or None
        Elements that pass the calibrated test but that the instrument null reproduces; None without a null.
    """

    names: tuple
    window: int
    stride: int
    adjacency: np.ndarray
    probabilities: np.ndarray | None
    n_cells: np.ndarray
    orders: np.ndarray
    reasons: np.ndarray
    centers_grid: np.ndarray
    lattice: Lattice | None
    n_bootstrap: int
    standardized: bool
    units: dict
    prior_knowledge: np.ndarray | None
    scales: np.ndarray
    provenance: dict
    bootstrap_adjacency: np.ndarray | None = None
    bootstrap_orders: np.ndarray | None = None
    p_values: np.ndarray | None = None
    significant: np.ndarray | None = None
    null_p_values: np.ndarray | None = None
    instrument: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Number of windows ``(ny, nx)``."""
        return tuple(self.n_cells.shape)

    @property
    def fitted(self) -> np.ndarray:
        """(ny, nx) bool: windows that were fitted."""
        return self.reasons == ""

    @property
    def centers_image(self) -> np.ndarray | None:
        """(ny, nx, 2) window centres ``(y, x)`` in image px, or None without a lattice."""
        if self.lattice is None:
            return None
        return self.lattice.to_image(np.indices(self.shape, dtype=float).transpose(1, 2, 0))

    def _index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown variable {name!r}; this result has {', '.join(self.names)}") from None

    def element(self, effect: str, cause: str, *, in_units: bool = False) -> np.ndarray:
        """(ny, nx) map of the coefficient ``effect <- cause`` (NaN where skipped).

        ``in_units=True`` converts standardized coefficients to descriptor units (unit of ``effect`` per
        unit of ``cause``) with each window's standard deviations.
        """
        e, c = self._index(effect), self._index(cause)
        values = self.adjacency[:, :, e, c].copy()
        if in_units and self.standardized:
            values *= self.scales[:, :, e] / self.scales[:, :, c]
        return values

    def probability(self, effect: str, cause: str) -> np.ndarray:
        """(ny, nx) map of the bootstrap probability of ``effect <- cause`` (NaN where skipped)."""
        if self.probabilities is None:
            raise ValueError("this sliding result has no bootstrap probabilities; rerun with n_bootstrap > 0")
        return self.probabilities[:, :, self._index(effect), self._index(cause)].copy()

    def _significant(self) -> np.ndarray:
        if self.significant is None:
            raise ValueError("this sliding result has no significance mask (saved by an older version); rerun "
                             "sliding_lingam")
        return self.significant

    def significance(self, effect: str, cause: str) -> np.ndarray:
        """(ny, nx) bool map: the edge ``effect <- cause`` passes the calibrated test (False where skipped)."""
        return self._significant()[:, :, self._index(effect), self._index(cause)].copy()

    def link_type(self, a: str, b: str) -> np.ndarray:
        """(ny, nx) int8 map of the link between ``a`` and ``b``: codes of :data:`LINK_TYPES`.

        0 none, 1 ``a <- b``, 2 ``b <- a``, 3 both (linked, direction not resolved by the bootstrap, or
        cyclic); skipped windows are 0 (check :attr:`fitted`).
        """
        return link_type(self._significant(), self._index(a), self._index(b))

    def element_units(self, effect: str, cause: str, *, in_units: bool = False) -> str:
        """Unit of :meth:`element` ``(effect, cause, in_units=in_units)``."""
        if self.standardized and not in_units:
            return "std/std"
        ue, uc = self.units.get(effect, ""), self.units.get(cause, "")
        if not ue or not uc:
            return ""
        return f"{ue}/{uc}" if ue != uc else "1"

    def window_adjacency(self, ky: int, kx: int) -> pd.DataFrame:
        """(p, p) adjacency of one window as a labelled table (rows: effects, columns: causes)."""
        return pd.DataFrame(self.adjacency[ky, kx], index=list(self.names), columns=list(self.names))

    def window_result(self, ky: int, kx: int):
        """The fit of window ``(ky, kx)`` as a :class:`~napari_causal_lattice.causal.result.LingamResult`.

        Gives the window the global fit's queries and drawings (``edges()``, ``coefficient()``,
        :func:`~napari_causal_lattice.figures.plot_causal_graph`).  Raises ValueError for a skipped window.
        """
        from .causal.result import LingamResult

        ny, nx = self.shape
        if not (0 <= ky < ny and 0 <= kx < nx):
            raise ValueError(f"window ({ky}, {kx}) is outside the {ny} x {nx} windows")
        if not self.fitted[ky, kx]:
            raise ValueError(f"window ({ky}, {kx}) was skipped: {self.reasons[ky, kx]}")
        keep = self.bootstrap_adjacency is not None
        return LingamResult(
            names=self.names,
            causal_order=self.orders[ky, kx],
            adjacency=self.adjacency[ky, kx],
            probabilities=None if self.probabilities is None else self.probabilities[ky, kx],
            bootstrap_adjacency=self.bootstrap_adjacency[ky, kx] if keep else None,
            bootstrap_orders=self.bootstrap_orders[ky, kx] if keep else None,
            p_values=None if self.p_values is None else self.p_values[ky, kx],
            significant=None if self.significant is None else self.significant[ky, kx],
            n_samples=int(self.n_cells[ky, kx]),
            units=self.units,
            scale=self.scales[ky, kx],
            standardized=self.standardized,
            prior_knowledge=self.prior_knowledge,
            params={"window_index": [int(ky), int(kx)], "centre_ij": self.centers_grid[ky, kx].tolist()},
            provenance=self.provenance,
        )

    def to_state(self) -> dict:
        return {
            "names": list(self.names),
            "window": int(self.window),
            "stride": int(self.stride),
            "adjacency": self.adjacency.copy(),
            "probabilities": None if self.probabilities is None else self.probabilities.copy(),
            "n_cells": self.n_cells.copy(),
            "orders": self.orders.copy(),
            "reasons": [str(r) for r in self.reasons.ravel()],
            "centers_grid": self.centers_grid.copy(),
            "lattice": None if self.lattice is None else self.lattice.to_state(),
            "n_bootstrap": int(self.n_bootstrap),
            "standardized": bool(self.standardized),
            "units": {"names": list(self.units), "values": [str(v) for v in self.units.values()]},
            "prior_knowledge": None if self.prior_knowledge is None else self.prior_knowledge.copy(),
            "scales": self.scales.copy(),
            "provenance": self.provenance,
            "bootstrap_adjacency": None if self.bootstrap_adjacency is None else self.bootstrap_adjacency.copy(),
            "bootstrap_orders": None if self.bootstrap_orders is None else self.bootstrap_orders.copy(),
            "p_values": None if self.p_values is None else self.p_values.copy(),
            "significant": None if self.significant is None else self.significant.copy(),
            "null_p_values": None if self.null_p_values is None else self.null_p_values.copy(),
            "instrument": None if self.instrument is None else self.instrument.copy(),
        }

    @classmethod
    def from_state(cls, state: dict) -> "SlidingResult":
        n_cells = np.asarray(state["n_cells"])
        probabilities = state["probabilities"]
        prior = state["prior_knowledge"]
        return cls(
            names=tuple(str(n) for n in state["names"]),
            window=int(state["window"]),
            stride=int(state["stride"]),
            adjacency=np.asarray(state["adjacency"], dtype=float),
            probabilities=None if probabilities is None else np.asarray(probabilities, dtype=float),
            n_cells=n_cells,
            orders=np.asarray(state["orders"]),
            reasons=np.asarray(list(state["reasons"]), dtype=object).reshape(n_cells.shape).astype(str),
            centers_grid=np.asarray(state["centers_grid"], dtype=float),
            lattice=None if state["lattice"] is None else Lattice.from_state(state["lattice"]),
            n_bootstrap=int(state["n_bootstrap"]),
            standardized=bool(state["standardized"]),
            units=dict(zip(state["units"]["names"], state["units"]["values"])),
            prior_knowledge=None if prior is None else np.asarray(prior),
            scales=np.asarray(state["scales"], dtype=float),
            provenance=state["provenance"],
            bootstrap_adjacency=_optional_array(state.get("bootstrap_adjacency"), float),
            bootstrap_orders=_optional_array(state.get("bootstrap_orders"), np.int64),
            p_values=_optional_array(state.get("p_values"), float),
            significant=_optional_array(state.get("significant"), bool),
            null_p_values=_optional_array(state.get("null_p_values"), float),
            instrument=_optional_array(state.get("instrument"), bool),
        )


def _optional_array(value, dtype) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=dtype)


def _table_and_lattice(cells, lattice, units):
    if isinstance(cells, pd.DataFrame):
        return cells, lattice, dict(units or {})
    table = getattr(cells, "table", None)
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"cells must be a Cells object (from build_cells) or a pandas DataFrame with columns i, j and the "
            f"descriptors, got {type(cells).__name__}"
        )
    if lattice is None:
        lattice = getattr(cells, "lattice", None)
    return table, lattice, dict(units or getattr(cells, "units", None) or {})


def suggest_window(grid_shape, *, n_variables: int = len(DESCRIPTORS), largest: int = 20, per_side: int = 4,
                   smallest: int = 8) -> int:
    """Window side (cells) that fits a cell grid: about ``per_side`` windows along its shorter side.

    Parameters
    ----------
    grid_shape : (int, int)
        ``(ni, nj)`` cells of the grid.
    n_variables : int
        Variables per fit; a window must hold at least ``3 * n_variables`` cells.
    largest, per_side, smallest : int
        The window is ``min(largest, max(smallest, short_side // per_side))``, capped at the short side.

    Returns
    -------
    int
        The window side in cells.

    Raises
    ------
    ValueError
        If even a window as large as the shorter side holds fewer than ``3 * n_variables`` cells.

    Examples
    --------
    >>> suggest_window((48, 48)), suggest_window((9, 53)), suggest_window((120, 200))
    (12, 8, 20)
    """
    short = int(min(grid_shape))
    need = int(np.ceil(np.sqrt(3 * n_variables)))
    if short < need:
        raise ValueError(
            f"the cell grid ({grid_shape[0]} x {grid_shape[1]} cells) is too small for sliding windows: a window "
            f"needs at least {need} x {need} cells for {n_variables} variables; use the global LiNGAM result "
            "(fit_lingam) for this image, or fewer variables"
        )
    return int(min(short, max(smallest, min(largest, short // per_side))))


def _check_int(value, name: str, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a whole number of cells, got {value!r}")
    if value < lowest:
        raise ValueError(f"{name} must be at least {lowest}, got {value}")
    return int(value)


def _grid_indices(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in ("i", "j") if c not in table.columns]
    if missing:
        raise ValueError(
            f"the cell table has no lattice-grid column(s) {missing}; it needs integer columns i (row) and j "
            "(column) of the cell grid, as produced by build_cells"
        )
    out = []
    for name in ("i", "j"):
        values = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(f"grid column {name!r} must hold whole numbers (no NaN); check the cell indexing")
        out.append(values.astype(np.int64))
    return out[0], out[1]


def _window_rng(entropy: int, flat_index: int) -> np.random.Generator:
    """Generator of one window, fixed by the root seed and the window's position only."""
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(int(flat_index),)))


@dataclass(frozen=True)
class _WindowPlan:
    """Windows of one grid: the standardized cells of every fitted window, ready for the engine."""

    data: np.ndarray  # (w, n_max, p) rows of each fitted window (valid rows first, zero padding)
    counts: np.ndarray  # (w,) valid rows
    scales: np.ndarray  # (w, p) standard deviation of each variable in each fitted window
    fitted_index: list  # [(ky, kx)] of the fitted windows, row-major
    positions: np.ndarray  # (w, n_max, 2) grid (i, j) inside the window of each row (0 padding)
    n_cells: np.ndarray  # (ny, nx)
    reasons: np.ndarray  # (ny, nx) str
    origin: tuple  # (i0, j0) smallest grid indices
    grid_shape: tuple  # (ni, nj)


def _plan_windows(table: pd.DataFrame, names: tuple, *, window: int, stride: int, min_cells: int,
                  standardize: bool) -> _WindowPlan:
    """Cut the cell table into windows; skip (with a reason) those with too few cells or a constant variable."""
    p = len(names)
    gi, gj = _grid_indices(table)
    if gi.size == 0:
        raise ValueError("the cell table is empty; find columns and build cells first")
    values = table.loc[:, list(names)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    i0, j0 = int(gi.min()), int(gj.min())
    ni, nj = int(gi.max()) - i0 + 1, int(gj.max()) - j0 + 1
    if window > min(ni, nj):
        raise ValueError(
            f"window of {window} cells is larger than the cell grid ({ni} x {nj} cells); choose window <= {min(ni, nj)}"
        )
    li, lj = gi - i0, gj - j0
    if np.unique(li * nj + lj).size != li.size:
        raise ValueError("several cells share the same grid index (i, j); each cell must appear once")
    grid = np.full((ni, nj, p), np.nan)
    grid[li, lj] = values
    complete = np.all(np.isfinite(grid), axis=-1)

    ny, nx = (ni - window) // stride + 1, (nj - window) // stride + 1
    n_cells = np.zeros((ny, nx), dtype=np.int64)
    reasons = np.full((ny, nx), "", dtype=object)
    n_max = window * window
    fitted_data, fitted_index, fitted_scales, fitted_positions = [], [], [], []
    for ky in range(ny):
        for kx in range(nx):
            rows_slice = slice(ky * stride, ky * stride + window)
            cols_slice = slice(kx * stride, kx * stride + window)
            rows = grid[rows_slice, cols_slice].reshape(-1, p)[complete[rows_slice, cols_slice].ravel()]
            n_cells[ky, kx] = len(rows)
            if len(rows) < min_cells:
                reasons[ky, kx] = f"{len(rows)} complete cells < min_cells = {min_cells}"
                continue
            spread = rows.std(axis=0)
            flat = np.abs(rows).max(axis=0)
            constant = [names[c] for c in range(p) if spread[c] <= 1e-12 * max(flat[c], 1e-300)]
            if constant:
                reasons[ky, kx] = f"{', '.join(constant)} constant in this window"
                continue
            if standardize:
                rows = (rows - rows.mean(axis=0)) / spread
            padded = np.zeros((n_max, p))
            padded[: len(rows)] = rows
            fitted_data.append(padded)
            fitted_index.append((ky, kx))
            at = np.zeros((n_max, 2), dtype=np.int64)
            at[: len(rows)] = np.argwhere(complete[rows_slice, cols_slice])
            fitted_positions.append(at)
            fitted_scales.append(spread)
    if not fitted_index:
        raise ValueError(
            f"no window has enough usable cells (most complete cells in a window: {int(n_cells.max())}, "
            f"min_cells = {min_cells}); use a larger window or a smaller min_cells"
        )
    return _WindowPlan(
        data=np.stack(fitted_data),
        counts=n_cells[tuple(np.array(fitted_index).T)],
        scales=np.stack(fitted_scales),
        fitted_index=fitted_index,
        positions=np.stack(fitted_positions),
        n_cells=n_cells,
        reasons=reasons.astype(str),
        origin=(i0, j0),
        grid_shape=(ni, nj),
    )


def _window_resamples(count: int, n_max: int, n_bootstrap: int, entropy: int, flat_index: int) -> np.ndarray:
    """(1 + n_bootstrap, n_max) int32 row indices of one window's fits; fit 0 is the window itself.

    The resamples come from the window's own generator (see :func:`_window_rng`), so they do not depend on
    which other windows exist, how the fits are chunked or where a chunk runs.  Padding rows point at row 0.
    """
    rows = np.zeros((1 + n_bootstrap, n_max), dtype=np.int32)
    rows[0, :count] = np.arange(count)
    if n_bootstrap:
        from .causal.engine import bootstrap_indices

        rows[1:, :count] = bootstrap_indices(count, n_bootstrap, _window_rng(entropy, flat_index))
    return rows


def _flat_indices(plan: _WindowPlan) -> np.ndarray:
    """(w,) row-major window index ``ky * nx + kx`` of every fitted window (the key of its generator)."""
    nx = plan.n_cells.shape[1]
    return np.array([ky * nx + kx for ky, kx in plan.fitted_index], dtype=np.int64)


def _draw_resamples(plan: _WindowPlan, n_bootstrap: int, entropy: int) -> np.ndarray:
    """(w, 1 + n_bootstrap, n_max) row indices of all fits of all fitted windows, as :func:`fit_chunk` draws them.

    The fits themselves never hold this array (each chunk draws its own); ``benchmarks/bench_sliding.py`` uses
    it to refit exactly the same resamples with lingam.
    """
    n_max = plan.data.shape[1]
    return np.stack([
        _window_resamples(int(n), n_max, n_bootstrap, entropy, int(flat))
        for n, flat in zip(plan.counts, _flat_indices(plan))
    ])


@takes_options(SlidingOptions, aliases={"method": "backend"})
def sliding_lingam(
    cells,
    *,
    window: int | str = "auto",
    stride: int | None = None,
    n_bootstrap: int = 0,
    seed=None,
    min_cells: int | None = None,
    variables=None,
    prior_knowledge="default",
    standardize: bool = True,
    lattice: Lattice | None = None,
    units: dict | None = None,
    keep_bootstrap: bool = False,
    backend=None,
    alpha: float = DEFAULT_ALPHA,
    fdr: str | None = None,
    min_direction: float = DEFAULT_MIN_DIRECTION,
    spatial: bool = True,
    spatial_max_lag: int = DEFAULT_SPATIAL_MAX_LAG,
    drop_deterministic: bool = False,
    workers: int | None = None,
    executor=None,
    progress=None,
    cancel=None,
    null=None,
) -> SlidingResult:
    """Fit DirectLiNGAM in every square window of the cell grid (the paper's sliding LiNGAM transform).

    Parameters
    ----------
    cells : Cells or pandas.DataFrame
        The unit cells: a :class:`~napari_causal_lattice.cells.Cells` (its ``table`` and ``lattice`` are
        used) or a DataFrame with integer lattice-grid columns ``i`` (row), ``j`` (column) and the
        variables, one row per cell.  Rows with a NaN variable are left out.
    window : int or "auto"
        Window side in cells (>= 3, at most the grid size); ``"auto"`` (default) picks it from the grid with
        :func:`suggest_window` and records the choice in the provenance.
    stride : int, optional
        Step between windows in cells, 1 ... ``window``; default ``window // 2`` (50 % overlap, as in
        the paper).
    n_bootstrap : int
        Bootstrap resamples per window (0: no probabilities).
    seed : int or None
        Seed (>= 0) of the bootstrap resampling.  Window ``k`` draws its resamples from its own generator
        ``SeedSequence(seed, spawn_key=(k,))``, so results do not depend on ``workers`` or chunking.
        None draws a fresh seed, recorded in the provenance.
    min_cells : int, optional
        Windows with fewer complete cells are skipped (NaN, with a reason).  Default
        ``max(3 p, ceil(window**2 / 2))``; at least ``p + 2``.
    variables : sequence of str, optional
        Variables to use; default the 8 descriptors ``I14, I5, a, b, alpha, Vol, Px, Py``.
    prior_knowledge : "default", None, (p, p) array, list or dict
        Any form of :func:`~napari_causal_lattice.causal.prior.resolve_prior` (the same as ``fit_lingam``):
        ``"default"`` (I14 and I5 exogenous, the paper's assumption), None, a lingam matrix, a list such as
        ``["I14", "Px <- I5"]`` or a dict of :func:`~napari_causal_lattice.causal.prior.make_prior_knowledge`
        arguments.
    standardize : bool
        Standardize each variable within each window (zero mean, unit variance over the window's
        cells) before fitting, so coefficients are in window standard deviations and comparable
        between windows.  Bootstrap resamples are drawn from the standardized window.
    lattice : Lattice, optional
        Grid -> image lattice, for a DataFrame input (a Cells object brings its own).
    units : dict, optional
        Variable name -> unit, for a DataFrame input (a Cells object brings its own).
    keep_bootstrap : bool
        Also return every bootstrap fit (``bootstrap_adjacency``, ``bootstrap_orders``); memory
        ``ny * nx * n_bootstrap * p * (p + 1) * 8`` bytes.
    backend : "engine", "lingam" or CausalMethod, optional
        Causal-discovery backend (:mod:`napari_causal_lattice.causal.methods`); default the fast engine
        (formerly ``method``).
    spatial, spatial_max_lag : bool, int
        Spatially honest p-values (default): the t-test of each window counts its cells' spatial
        autocorrelation up to ``spatial_max_lag`` cells (an effective sample size, see ``docs/confidence.md``);
        ``spatial=False`` treats cells as independent (the 0.2 test).
    alpha : float
        Level of the calibrated edge test (``significant``): per edge and window with ``fdr=None`` (the
        false-edge rate on null windows), else the false discovery rate.  See ``docs/confidence.md``.
    fdr : {None, "bh", "by"}
        Control the false discovery rate over all windows and edges of the run (Benjamini-Hochberg or
        Benjamini-Yekutieli) instead of the per-edge rate.
    min_direction : float
        Share of the linked bootstrap resamples that must agree to state a direction; otherwise the pair is
        marked "both" (see :func:`~napari_causal_lattice.causal.confidence.edge_decision`).
    drop_deterministic : bool
        Leave out variables that are near-exact linear functions of the others (R^2 above 0.999 over all
        complete cells, e.g. Vol = a b sin(alpha)); they are always reported with a
        :class:`~napari_causal_lattice.causal.fit.DeterministicDescriptorWarning`.
    workers : int, optional
        Threads running chunks of fits in parallel; default the number of CPUs.  With ``executor``: the
        most chunks submitted to it and not yet finished (default: all chunks at once; the executor queues
        them).  Results are identical for any value.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Run the chunks of fits there instead of on local threads, e.g. ``ProcessPoolExecutor()`` or a dask
        cluster (``distributed.Client(address)`` or its ``get_executor()``), so the windows of one huge
        image spread over many machines.  Each chunk is a call of the module-level :func:`fit_chunk` on
        plain arrays (the windows' cells, a few MB at most) and draws its resamples itself from the seed
        and the window index: results are bit-identical to the local run.  The executor is not shut down.
    progress : callable(done, total), optional
        Called with the number of fits done.
    cancel : object with ``is_set()``, optional
        Checked between chunks of fits; raises :class:`~napari_causal_lattice.progress.Cancelled` (no more
        chunks are submitted and pending ones are cancelled).
    null : InstrumentNull, optional
        Test every window element against this instrument null too (made with ``sliding=`` a result of the
        same windows, :func:`napari_causal_lattice.null.instrument_null`): ``significant`` keeps only elements
        that beat both, ``null_p_values`` and ``instrument`` are filled in.

    Returns
    -------
    SlidingResult
        Per-window adjacency (ny, nx, p, p), probabilities, p-values and the significance mask of the
        calibrated edge test, cell counts, causal orders, skip reasons, window centres and the window ->
        image lattice.

    Raises
    ------
    ValueError
        Window < 3 or larger than the grid, stride outside 1 ... window, unknown variable, or no window
        with enough cells.
    TypeError
        A non-integer window, stride, seed or workers, or an ``executor`` that is not an Executor or Client.
    Cancelled
        ``cancel`` was set; nothing is returned.

    All options but the data, ``lattice``, ``units``, ``keep_bootstrap``, ``workers``, ``executor``,
    ``progress`` and ``cancel`` can also come as one :class:`~napari_causal_lattice.options.SlidingOptions`
    (``options=``); keywords given as well replace its fields.

    Examples
    --------
    >>> from napari_causal_lattice.synthetic import synthetic_descriptor_grid
    >>> grid = synthetic_descriptor_grid((24, 24), seed=0)
    >>> res = sliding_lingam(grid, window=12, n_bootstrap=5, seed=0)
    >>> res.shape, res.stride
    ((3, 3), 6)
    >>> res.element("Px", "Py").shape, res.probability("Px", "Py").shape
    ((3, 3), (3, 3))
    """
    table, lattice, units = _table_and_lattice(cells, lattice, units)
    setup = _setup(table, window=window, stride=stride, n_bootstrap=n_bootstrap, min_cells=min_cells,
                   variables=variables, workers=workers, lattice=lattice, drop_deterministic=drop_deterministic)
    names, window, stride, n_bootstrap, min_cells = (setup[k] for k in
                                                     ("names", "window", "stride", "n_bootstrap", "min_cells"))
    executor = as_executor(executor)
    method = resolve_method(backend)
    prior, prior_label = resolve_prior(prior_knowledge, names)
    plan = _plan_windows(table, names, window=window, stride=stride, min_cells=min_cells, standardize=standardize)
    entropy = check_seed(seed)
    fit_orders, fit_adjacency = _run_fits(
        plan, n_bootstrap, entropy, prior, method=method, workers=setup["workers"], executor=executor,
        in_flight=setup["in_flight"], progress=progress, cancel=cancel,
    )
    maps = _assemble(plan, fit_orders, fit_adjacency, n_bootstrap, keep=keep_bootstrap and n_bootstrap > 0)
    p_values, significant = _significance(plan, maps, prior, alpha=alpha, fdr=fdr, min_direction=min_direction,
                                          spatial=spatial, max_lag=spatial_max_lag)
    params = {
        "window": window, "stride": stride, "n_bootstrap": n_bootstrap, "min_cells": min_cells,
        "variables": list(names), "prior_knowledge": prior_label, "standardize": bool(standardize),
        "method": method.name, "alpha": float(alpha), "fdr": fdr, "min_direction": float(min_direction),
        "spatial": bool(spatial), "spatial_max_lag": int(spatial_max_lag),
        "dropped_deterministic": setup["dropped"], **_grid_params(plan, maps),
    }
    result = _sliding_result(
        plan, maps, names=names, window=window, stride=stride, n_bootstrap=n_bootstrap, lattice=lattice, units=units,
        standardize=standardize, prior=prior, p_values=p_values, significant=significant,
        provenance=make_provenance("sliding_lingam", params, seed=entropy,
                                   inputs={"cells": getattr(cells, "provenance", {}) or {}}),
    )
    return result if null is None else null.apply_sliding(result)


def _grid_params(plan: _WindowPlan, maps: dict) -> dict:
    """The window grid's part of the provenance: origin, grid shape, windows and windows fitted."""
    ny, nx = plan.n_cells.shape
    i0, j0 = plan.origin
    return {"grid_origin_ij": [i0, j0], "grid_shape": list(plan.grid_shape), "n_windows": int(ny * nx),
            "n_fitted": int(np.sum(maps["reasons"] == ""))}


def _sliding_result(plan: _WindowPlan, maps: dict, *, names, window: int, stride: int, n_bootstrap: int, lattice,
                    units: dict, standardize: bool, prior, p_values, significant, provenance) -> SlidingResult:
    """The :class:`SlidingResult` of the assembled window maps, placed on the image through ``lattice``."""
    first_centre, centers = _window_centres(plan, window, stride)
    return SlidingResult(
        names=names, window=window, stride=stride, adjacency=maps["adjacency"], probabilities=maps["probabilities"],
        n_cells=plan.n_cells, orders=maps["orders"], reasons=maps["reasons"], centers_grid=centers,
        lattice=None if lattice is None else lattice.subgrid(first_centre, stride), n_bootstrap=n_bootstrap,
        standardized=bool(standardize), units={n: str(units.get(n, "")) for n in names}, prior_knowledge=prior,
        scales=maps["scales"], provenance=provenance,
        bootstrap_adjacency=maps["boot_adjacency"], bootstrap_orders=maps["boot_orders"],
        p_values=p_values, significant=significant,
    )


def _window_centres(plan, window: int, stride: int):
    """``(first_centre, centres (ny, nx, 2))``: the windows' centres in grid (i, j) cells."""
    ny, nx = plan.n_cells.shape
    i0, j0 = plan.origin
    first_centre = (i0 + (window - 1) / 2.0, j0 + (window - 1) / 2.0)
    centers = np.stack(
        np.meshgrid(first_centre[0] + stride * np.arange(ny), first_centre[1] + stride * np.arange(nx), indexing="ij"),
        axis=-1,
    )
    return first_centre, centers


def _setup(table, *, window, stride, n_bootstrap, min_cells, variables, workers, lattice, drop_deterministic) -> dict:
    """Check and complete the scalar options of :func:`sliding_lingam` (window, stride, variables, workers)."""
    names = tuple(DESCRIPTORS if variables is None else (variables,) if isinstance(variables, str) else variables)
    if len(names) < 2:
        raise ValueError("choose at least 2 variables for a causal analysis")
    if len(set(names)) != len(names):
        raise ValueError(f"variables are repeated: {list(names)}")
    unknown = [n for n in names if n not in table.columns]
    if unknown:
        have = [c for c in table.columns if c not in ("i", "j", "y", "x")]
        raise ValueError(f"unknown variable(s) {unknown}; the cell table has {have}")
    names, dropped = _check_deterministic(table, names, drop=drop_deterministic)
    if isinstance(window, str):
        if window != "auto":
            raise ValueError(f"window must be a whole number of cells or 'auto', got {window!r}")
        window = suggest_window(tuple(int(table[k].max()) + 1 for k in ("i", "j")), n_variables=len(names))
    window = _check_int(window, "window", 3)
    stride = window // 2 if stride is None else stride
    stride = _check_int(stride, "stride", 1)
    if stride > window:
        raise ValueError(f"stride ({stride}) must not exceed the window ({window}); windows would leave gaps")
    p = len(names)
    default_min = max(3 * p, -(-window * window // 2))
    in_flight = None if workers is None else _check_int(workers, "workers", 1)
    if lattice is not None and not isinstance(lattice, Lattice):
        raise TypeError(f"lattice must be a Lattice or None, got {type(lattice).__name__}")
    return {
        "names": names, "dropped": dropped, "window": window, "stride": stride,
        "n_bootstrap": _check_int(n_bootstrap, "n_bootstrap", 0),
        "min_cells": default_min if min_cells is None else _check_int(min_cells, "min_cells", p + 2),
        "in_flight": in_flight, "workers": (os.cpu_count() or 1) if in_flight is None else in_flight,
    }


def _check_deterministic(table: pd.DataFrame, names: tuple, *, drop: bool) -> tuple[tuple, list]:
    """Warn about (and with ``drop`` leave out) variables that are near-exact functions of the others."""
    values = table.loc[:, list(names)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    values = values[np.all(np.isfinite(values), axis=1)]
    found = near_deterministic(values, names) if len(values) > len(names) + 1 else {}
    if not found:
        return names, []
    dropped = list(found) if drop else []
    warn_deterministic(found, dropped)
    return tuple(n for n in names if n not in dropped), dropped


def _assemble(plan: _WindowPlan, fit_orders, fit_adjacency, n_bootstrap: int, *, keep: bool) -> dict:
    """Per-window maps (adjacency, orders, scales, probabilities, kept resamples, reasons) from the flat fits."""
    ny, nx = plan.n_cells.shape
    p = plan.data.shape[2]
    per_window = 1 + n_bootstrap
    adjacency = np.full((ny, nx, p, p), np.nan)
    orders = np.full((ny, nx, p), -1, dtype=np.int64)
    scales = np.full((ny, nx, p), np.nan)
    probabilities = np.full((ny, nx, p, p), np.nan) if n_bootstrap else None
    fit_orders = fit_orders.reshape(len(plan.fitted_index), per_window, p)
    fit_adjacency = fit_adjacency.reshape(len(plan.fitted_index), per_window, p, p)
    boot_adjacency = np.full((ny, nx, n_bootstrap, p, p), np.nan) if keep else None
    boot_orders = np.full((ny, nx, n_bootstrap, p), -1, dtype=np.int64) if keep else None
    reasons = plan.reasons.copy()
    for w, (ky, kx) in enumerate(plan.fitted_index):
        if fit_orders[w, 0, 0] < 0:
            reasons[ky, kx] = "degenerate: a variable is (nearly) a linear combination of the others in this window"
            continue
        adjacency[ky, kx] = fit_adjacency[w, 0]
        orders[ky, kx] = fit_orders[w, 0]
        scales[ky, kx] = plan.scales[w]
        if n_bootstrap:
            usable = fit_orders[w, 1:, 0] >= 0
            probabilities[ky, kx] = np.count_nonzero(fit_adjacency[w, 1:][usable], axis=0) / max(usable.sum(), 1)
        if keep:
            boot_adjacency[ky, kx] = fit_adjacency[w, 1:]
            boot_orders[ky, kx] = fit_orders[w, 1:]
    if not np.any(reasons == ""):
        raise ValueError(
            "every window is degenerate (a variable is a linear combination of the others, e.g. Vol = a * b); "
            "leave one of the dependent variables out (leave out deterministic descriptors: drop_deterministic=True)"
        )
    return {"adjacency": adjacency, "orders": orders, "scales": scales, "probabilities": probabilities,
            "boot_adjacency": boot_adjacency, "boot_orders": boot_orders, "reasons": reasons}


def _significance(plan: _WindowPlan, maps: dict, prior, *, alpha: float, fdr, min_direction: float,
                  spatial: bool = True, max_lag: int = DEFAULT_SPATIAL_MAX_LAG):
    """p-values (ny, nx, p, p) of the order t-test per window (spatially honest with ``spatial``, see
    :func:`~napari_causal_lattice.causal.confidence.spatial_inflation`) and the significance mask."""
    ny, nx, p = maps["orders"].shape
    index = tuple(np.array(plan.fitted_index).T)
    mask = np.arange(plan.data.shape[1])[None, :] < plan.counts[:, None]
    p_values = np.full((ny, nx, p, p), np.nan)
    p_values[index] = order_pvalues(plan.data, maps["orders"][index], mask=mask, prior=prior,
                                    positions=plan.positions if spatial else None, max_lag=max_lag, pool=True)
    tested = fdr_adjust(p_values, fdr) if fdr else p_values
    significant = edge_decision(tested, maps["probabilities"], alpha=alpha, min_direction=min_direction)
    return p_values, significant & np.isfinite(p_values)


def fit_chunk(data, counts, flat_index, first: int, stop: int, *, n_bootstrap: int, entropy: int, prior,
              method=None):
    """Fit one chunk of (window, resample) pairs; the unit of work sent to a thread, process or dask worker.

    Takes and returns plain arrays only (picklable), and draws each window's resamples from the seed and the
    window's index, so a chunk gives bit-identical numbers wherever it runs.

    Parameters
    ----------
    data : (u, n_max, p) float array
        The (standardized) cells of the ``u`` consecutive fitted windows the chunk touches, valid rows first,
        zero padding after.
    counts : (u,) int array
        Valid rows of each window.
    flat_index : (u,) int array
        Row-major index ``ky * nx + kx`` of each window (keys its resampling generator).
    first, stop : int
        The chunk's fits, numbered over these windows: fit ``f`` is resample ``f % (1 + n_bootstrap)`` of
        window ``f // (1 + n_bootstrap)`` (resample 0: the window itself).
    n_bootstrap : int
        Bootstrap resamples per window.
    entropy : int
        Root seed of the run.
    prior : (p, p) int array or None
        Prior knowledge (lingam convention).
    method : CausalMethod, optional
        Backend (default the engine); must be picklable to run on processes or dask.

    Returns
    -------
    orders : (stop - first, p) int array
        Causal order of each fit (-1 for a degenerate fit).
    adjacency : (stop - first, p, p) float array
        Adjacency of each fit, ``B[e, c]`` = effect of ``c`` on ``e``.
    """
    per_window = 1 + n_bootstrap
    n_max = data.shape[1]
    fits = np.arange(first, stop)
    w, r = fits // per_window, fits % per_window
    rows = np.empty((len(fits), n_max), dtype=np.int32)
    for u in np.unique(w):
        drawn = _window_resamples(int(counts[u]), n_max, n_bootstrap, entropy, int(flat_index[u]))
        rows[w == u] = drawn[r[w == u]]
    X = data[w[:, None], rows]
    mask = np.arange(n_max)[None, :] < counts[w][:, None]
    return resolve_method(method).fit_batch(X, mask, prior, workers=1)


def _run_fits(plan: _WindowPlan, n_bootstrap: int, entropy: int, prior, *, method, workers: int, executor,
              in_flight, progress, cancel):
    """Fit every (window, resample) pair of ``plan`` through :func:`fit_chunk`, in fixed chunks.

    Returns ``orders (w * r, p)`` and ``B (w * r, p, p)`` with ``r = 1 + n_bootstrap`` fits per window.  The
    chunks depend only on the array shapes, never on ``workers`` or the executor, so every fit sees exactly
    the same arrays whatever the parallelism.  Chunks run in the calling thread (``workers == 1``), on a
    local thread pool of ``workers`` threads, or on ``executor`` with at most ``in_flight`` chunks submitted
    and unfinished at a time (None: all at once).  Cancel and progress are handled here, between chunks:
    on cancel no more chunks are submitted, pending ones are cancelled and Cancelled is raised.
    """
    n_windows, n_max, p = plan.data.shape
    per_window = 1 + n_bootstrap
    total = n_windows * per_window
    chunk = int(max(1, min(_CHUNK_FITS, _CHUNK_VALUES // (n_max * p), -(-total // _MIN_CHUNKS))))
    starts = list(range(0, total, chunk))
    flat = _flat_indices(plan)
    orders = np.empty((total, p), dtype=np.int64)
    adjacency = np.empty((total, p, p))

    def arguments(start: int) -> tuple:
        stop = min(start + chunk, total)
        w0, w1 = start // per_window, (stop - 1) // per_window + 1
        offset = w0 * per_window
        return (plan.data[w0:w1], plan.counts[w0:w1], flat[w0:w1], start - offset, stop - offset)

    def store(start: int, result) -> int:
        o, b = result
        orders[start : start + len(o)] = o
        adjacency[start : start + len(o)] = b
        return len(o)

    options = {"n_bootstrap": n_bootstrap, "entropy": entropy, "prior": prior, "method": method}
    run_units(starts, lambda start: (fit_chunk, arguments(start), options), store, total=total, workers=workers,
              executor=executor, in_flight=in_flight, progress=progress, cancel=cancel)
    return orders, adjacency
