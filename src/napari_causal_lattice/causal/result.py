"""The result of a global causal fit: :class:`LingamResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["LingamResult"]


def _opt_array(value, dtype=float):
    return None if value is None else np.asarray(value, dtype=dtype)


@dataclass(frozen=True, eq=False)
class LingamResult:
    """Causal order and direct effects between variables (DirectLiNGAM), with bootstrap statistics.

    Adjacency convention (lingam): ``adjacency[i, j]`` is the direct effect of variable ``j`` on
    variable ``i`` ("names[i] <- names[j]"); zero means no direct edge.

    Units: when the fit was standardised (``standardized=True``, the default of :func:`fit_lingam`),
    ``adjacency`` and ``bootstrap_adjacency`` are in standard deviations of the effect per standard
    deviation of the cause (dimensionless, comparable across descriptors).  :meth:`adjacency_in_units`
    gives the same couplings in physical units (unit of the effect per unit of the cause, e.g. pm per pm,
    pm per degree), using ``scale``.  When not standardised, both are the same.

    Attributes
    ----------
    names : tuple of str
        Variable names, p of them, in column order.
    causal_order : (p,) int array
        Indices into ``names``, most exogenous first.
    adjacency : (p, p) float array
        Direct effects, see above.
    probabilities : (p, p) float array or None
        Fraction of bootstrap resamples with ``|B[i, j]| > min_causal_effect``; None without bootstrap.
    bootstrap_adjacency : (n_bootstrap, p, p) float array or None
        Adjacency of each resample (same units as ``adjacency``).
    bootstrap_orders : (n_bootstrap, p) int array or None
        Causal order of each resample.
    p_values : (p, p) float array or None
        p-value of ``i <- j`` from the order t-test (:mod:`napari_causal_lattice.causal.confidence`);
        1 against the causal order.  None for results saved before it existed.
    significant : (p, p) bool array or None
        The calibrated edge decision (``params["alpha"]``, ``params["fdr"]``; direction from the bootstrap,
        both directions True when the bootstrap cannot orient a linked pair).  None for old results.
    adjacency_eiv : (p, p) float array or None
        Coefficients corrected for measurement noise (errors in variables, regression calibration) in
        descriptor units (``fit_lingam(..., eiv=True)``); None otherwise.
    bootstrap_adjacency_eiv : (n_bootstrap, p, p) float array or None
        The same correction for every resample.
    n_samples : int
        Rows used in the fit (after dropping rows with NaN).
    n_dropped : int
        Rows dropped because a selected variable was NaN or infinite.
    units : dict
        Unit of each variable (``""`` when unknown).
    scale : (p,) float array
        Standard deviation of each variable in its units (the standardisation scale).
    standardized : bool
        Whether ``adjacency`` is in standardised units.
    prior_knowledge : (p, p) int array or None
        lingam prior-knowledge matrix used (``pk[i, j]`` is about a path ``j -> i``).
    params : dict
        Parameters of the fit (seed, n_bootstrap, min_causal_effect, prior knowledge as names, ...).
    provenance : dict
        Provenance record (:func:`napari_causal_lattice.provenance.make_provenance`).
    null_p_values : (p, p) float array or None
        FDR-adjusted p-value of each edge against the instrument null (:mod:`napari_causal_lattice.null`; a pair
        is tested along the causal order, both directions carry its value); None without a null.  With a null,
        ``significant`` holds only the edges that beat both the calibrated test and the null.
    instrument : (p, p) bool array or None
        Edges that pass the calibrated test but that the instrument null reproduces; None without a null.
    """

    names: tuple
    causal_order: np.ndarray
    adjacency: np.ndarray
    probabilities: np.ndarray | None = None
    bootstrap_adjacency: np.ndarray | None = None
    bootstrap_orders: np.ndarray | None = None
    p_values: np.ndarray | None = None
    significant: np.ndarray | None = None
    adjacency_eiv: np.ndarray | None = None
    bootstrap_adjacency_eiv: np.ndarray | None = None
    n_samples: int = 0
    n_dropped: int = 0
    units: dict = field(default_factory=dict)
    scale: np.ndarray | None = None
    standardized: bool = False
    prior_knowledge: np.ndarray | None = None
    params: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    null_p_values: np.ndarray | None = None
    instrument: np.ndarray | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "names", tuple(str(n) for n in self.names))
        p = len(self.names)
        set_(self, "causal_order", np.asarray(self.causal_order, dtype=np.int64))
        set_(self, "adjacency", np.asarray(self.adjacency, dtype=float))
        set_(self, "probabilities", _opt_array(self.probabilities))
        set_(self, "bootstrap_adjacency", _opt_array(self.bootstrap_adjacency))
        set_(self, "bootstrap_orders", _opt_array(self.bootstrap_orders, np.int64))
        set_(self, "p_values", _opt_array(self.p_values))
        set_(self, "significant", _opt_array(self.significant, bool))
        set_(self, "adjacency_eiv", _opt_array(self.adjacency_eiv))
        set_(self, "bootstrap_adjacency_eiv", _opt_array(self.bootstrap_adjacency_eiv))
        set_(self, "prior_knowledge", _opt_array(self.prior_knowledge, np.int64))
        set_(self, "null_p_values", _opt_array(self.null_p_values))
        set_(self, "instrument", _opt_array(self.instrument, bool))
        scale = np.ones(p) if self.scale is None else np.asarray(self.scale, dtype=float)
        set_(self, "scale", scale)
        set_(self, "units", {n: str(self.units.get(n, "")) for n in self.names})
        if self.adjacency.shape != (p, p) or self.causal_order.shape != (p,) or scale.shape != (p,):
            raise ValueError(
                f"Inconsistent LingamResult: {p} names but adjacency {self.adjacency.shape}, "
                f"causal_order {self.causal_order.shape}, scale {scale.shape}."
            )

    # ------------------------------------------------------------------ queries
    @property
    def n_bootstrap(self) -> int:
        """Number of bootstrap resamples (0 without bootstrap)."""
        return 0 if self.bootstrap_adjacency is None else int(self.bootstrap_adjacency.shape[0])

    def index(self, name) -> int:
        """Index of a variable given its name (or an index)."""
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if 0 <= int(name) < len(self.names):
                return int(name)
        elif name in self.names:
            return self.names.index(name)
        raise ValueError(f"Unknown variable {name!r}; the variables are {list(self.names)}.")

    def _unit_factor(self) -> np.ndarray:
        """(p, p) factor turning a standardised B into physical units: scale[i] / scale[j]."""
        if not self.standardized:
            return np.ones((len(self.names),) * 2)
        return self.scale[:, None] / self.scale[None, :]

    def adjacency_in_units(self) -> np.ndarray:
        """Direct effects in physical units: ``B[i, j]`` in unit of ``names[i]`` per unit of ``names[j]``."""
        return self.adjacency * self._unit_factor()

    def bootstrap_adjacency_in_units(self) -> np.ndarray | None:
        """Bootstrap adjacencies in physical units, (n_bootstrap, p, p), or None."""
        if self.bootstrap_adjacency is None:
            return None
        return self.bootstrap_adjacency * self._unit_factor()[None]

    def coupling_unit(self, effect, cause) -> str:
        """Unit of ``adjacency_in_units()[effect, cause]``, e.g. ``"pm/deg"``.

        ``"1"`` for a ratio of equal units, ``""`` when both units are unknown.
        """
        ue, uc = self.units[self.names[self.index(effect)]], self.units[self.names[self.index(cause)]]
        if not ue and not uc:
            return ""
        if ue == uc:
            return "1"
        return f"{ue or '1'}/{uc or '1'}"

    def coefficient(self, effect, cause, *, in_units: bool = False) -> float:
        """Direct effect of ``cause`` on ``effect`` (names or indices); standardised unless ``in_units``."""
        i, j = self.index(effect), self.index(cause)
        B = self.adjacency_in_units() if in_units else self.adjacency
        return float(B[i, j])

    def probability(self, effect, cause) -> float:
        """Bootstrap probability of the edge ``effect <- cause``.

        Raises
        ------
        ValueError
            If the fit had no bootstrap (run it with ``n_bootstrap > 0``).
        """
        if self.probabilities is None:
            raise ValueError("This result has no bootstrap; fit again with n_bootstrap > 0 to get probabilities.")
        return float(self.probabilities[self.index(effect), self.index(cause)])

    def edges(self, min_probability: float = 0.0, *, in_units: bool = False) -> pd.DataFrame:
        """Table of edges.

        Parameters
        ----------
        min_probability : float
            Keep edges whose bootstrap probability is at least this (ignored without bootstrap).
        in_units : bool
            Coefficients in physical units (see :meth:`adjacency_in_units`) instead of standardised.

        Returns
        -------
        DataFrame
            One row per edge present in ``adjacency``, seen in any resample or significant, sorted by
            probability then ``|coefficient|``: ``cause``, ``effect``, ``coefficient`` (the full-data fit),
            ``probability``, ``ci_low`` / ``ci_high`` (2.5 / 97.5 percentiles of the resampled coefficient,
            zeros included), ``std`` (its standard deviation), ``unit``, ``p_value`` (order t-test),
            ``significant`` (the calibrated decision for ``effect <- cause``) and ``link``: ``"none"``,
            ``"effect <- cause"``, ``"cause <- effect"`` (the reverse is believed) or ``"effect <-> cause"``
            (linked, direction not resolved), written with the names.  Without bootstrap the bootstrap
            columns are NaN; results without a significance test give NaN p-values, False and ``""``.  A fit
            with ``eiv=True`` adds ``coefficient_eiv``, ``ci_low_eiv``, ``ci_high_eiv``: the coefficient corrected
            for measurement noise, always in descriptor units (``unit`` of ``in_units=True``).  A result tested
            against an instrument null adds ``p_null`` and ``instrument`` (see :attr:`instrument`).
        """
        B = self.adjacency_in_units() if in_units else self.adjacency
        boot = self.bootstrap_adjacency_in_units() if in_units else self.bootstrap_adjacency
        has_boot = boot is not None and len(boot) > 0
        sig = self.significant
        present = B != 0
        if has_boot:
            present |= self.probabilities > 0
        if sig is not None:
            present |= sig
        if self.instrument is not None:
            present |= self.instrument
        rows = []
        for i, j in zip(*np.nonzero(present)):
            if has_boot:
                prob = float(self.probabilities[i, j])
                if prob < min_probability:
                    continue
                lo, hi = np.percentile(boot[:, i, j], [2.5, 97.5])
                sd = float(np.std(boot[:, i, j]))
            else:
                prob = lo = hi = sd = np.nan
            unit = self.coupling_unit(i, j) if (in_units or not self.standardized) else "std/std"
            pv = np.nan if self.p_values is None else float(self.p_values[i, j])
            rows.append((self.names[j], self.names[i], float(B[i, j]), prob, float(lo), float(hi), sd, unit, pv,
                         bool(sig is not None and sig[i, j]), self._link(i, j)))
        cols = ["cause", "effect", "coefficient", "probability", "ci_low", "ci_high", "std", "unit", "p_value",
                "significant", "link"]
        table = pd.DataFrame(rows, columns=cols)
        if self.adjacency_eiv is not None and len(table):
            e = [self.index(n) for n in table["effect"]]
            c = [self.index(n) for n in table["cause"]]
            table["coefficient_eiv"] = self.adjacency_eiv[e, c]
            boot = self.bootstrap_adjacency_eiv
            if boot is not None and len(boot):
                table["ci_low_eiv"], table["ci_high_eiv"] = np.nanpercentile(boot[:, e, c], [2.5, 97.5], axis=0)
            else:
                table["ci_low_eiv"] = table["ci_high_eiv"] = np.nan
        if self.null_p_values is not None:
            e = [self.index(n) for n in table["effect"]]
            c = [self.index(n) for n in table["cause"]]
            table["p_null"] = self.null_p_values[e, c] if len(table) else np.zeros(0)
            table["instrument"] = self.instrument[e, c] if len(table) else np.zeros(0, bool)
        if len(table):
            key = table["coefficient"].abs()
            table = table.assign(_k=key).sort_values(["probability", "_k"], ascending=False, na_position="last")
            table = table.drop(columns="_k").reset_index(drop=True)
        return table

    def _link(self, i: int, j: int) -> str:
        """Link between ``names[i]`` and ``names[j]`` as text (see :meth:`edges`)."""
        if self.significant is None:
            return ""
        forward, backward = bool(self.significant[i, j]), bool(self.significant[j, i])
        a, b = self.names[i], self.names[j]
        if forward and backward:
            return f"{a} <-> {b}"
        if forward:
            return f"{a} <- {b}"
        return f"{b} <- {a}" if backward else "none"

    def summary(self) -> str:
        """A few lines for humans: order, number of edges, samples."""
        order = " -> ".join(self.names[k] for k in self.causal_order)
        boot = f", {self.n_bootstrap} bootstrap resamples" if self.n_bootstrap else ""
        return (
            f"DirectLiNGAM on {self.n_samples} samples ({self.n_dropped} dropped){boot}\n"
            f"causal order: {order}\n"
            f"{int(np.count_nonzero(self.adjacency))} direct edges "
            f"({'standardised' if self.standardized else 'data'} units)"
        )

    # ------------------------------------------------------------------ io
    def to_state(self) -> dict:
        """Nested dict of arrays / str / numbers / None (exact round trip with :meth:`from_state`)."""
        return {
            "type": "LingamResult",
            "names": list(self.names),
            "causal_order": self.causal_order.copy(),
            "adjacency": self.adjacency.copy(),
            "probabilities": None if self.probabilities is None else self.probabilities.copy(),
            "bootstrap_adjacency": None if self.bootstrap_adjacency is None else self.bootstrap_adjacency.copy(),
            "bootstrap_orders": None if self.bootstrap_orders is None else self.bootstrap_orders.copy(),
            "p_values": None if self.p_values is None else self.p_values.copy(),
            "significant": None if self.significant is None else self.significant.copy(),
            "adjacency_eiv": None if self.adjacency_eiv is None else self.adjacency_eiv.copy(),
            "bootstrap_adjacency_eiv": None if self.bootstrap_adjacency_eiv is None
            else self.bootstrap_adjacency_eiv.copy(),
            "n_samples": int(self.n_samples),
            "n_dropped": int(self.n_dropped),
            "units": dict(self.units),
            "scale": self.scale.copy(),
            "standardized": bool(self.standardized),
            "prior_knowledge": None if self.prior_knowledge is None else self.prior_knowledge.copy(),
            "params": _copy_state(self.params),
            "provenance": _copy_state(self.provenance),
            "null_p_values": None if self.null_p_values is None else self.null_p_values.copy(),
            "instrument": None if self.instrument is None else self.instrument.copy(),
        }

    @classmethod
    def from_state(cls, state: dict) -> LingamResult:
        """Rebuild a result from :meth:`to_state` output."""
        if state.get("type", "LingamResult") != "LingamResult":
            raise ValueError(f"This state holds a {state.get('type')!r}, not a LingamResult.")
        kw = {k: v for k, v in state.items() if k != "type"}
        kw["n_samples"] = int(kw["n_samples"])
        kw["n_dropped"] = int(kw["n_dropped"])
        kw["standardized"] = bool(kw["standardized"])
        kw["params"] = _copy_state(kw.get("params", {}))
        kw["provenance"] = _copy_state(kw.get("provenance", {}))
        return cls(**kw)


def _copy_state(value):
    if isinstance(value, dict):
        return {k: _copy_state(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_state(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.copy()
    return value
