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
    total_effects : (p, p) float array or None
        ``total_effects[i, j]``: total causal effect of ``j`` on ``i`` (all directed paths), as lingam's
        ``estimate_total_effect(X, from_index=j, to_index=i)`` on the fitted data (same units as ``adjacency``);
        0 where ``j`` is not before ``i`` in the causal order.  None for results saved before 0.3.
    error_independence_p_values : (p, p) float array or None
        HSIC p-values of independence between the fitted errors of each pair (lingam's
        ``get_error_independence_p_values``); small values say the model does not fit.  None when skipped.
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
    total_effects: np.ndarray | None = None
    error_independence_p_values: np.ndarray | None = None
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
        set_(self, "total_effects", _opt_array(self.total_effects))
        set_(self, "error_independence_p_values", _opt_array(self.error_independence_p_values))
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
            ``significant`` (the calibrated decision for ``effect <- cause``), ``total_effect`` (all paths,
            :meth:`total_effect`; NaN for old results) and ``link``: ``"none"``,
            ``"effect <- cause"``, ``"cause <- effect"`` (the reverse is believed) or ``"effect <-> cause"``
            (linked, direction not resolved), written with the names.  Without bootstrap the bootstrap
            columns are NaN; results without a significance test give NaN p-values, False and ``""``.  A fit
            with ``eiv=True`` adds ``coefficient_eiv``, ``ci_low_eiv``, ``ci_high_eiv``: the coefficient corrected
            for measurement noise, always in descriptor units (``unit`` of ``in_units=True``).  A result tested
            against an instrument null adds ``p_null`` and ``instrument`` (see :attr:`instrument`).
        """
        B = self.adjacency_in_units() if in_units else self.adjacency
        T = self.total_effects_in_units() if in_units else self.total_effects
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
            total = np.nan if T is None else float(T[i, j])
            rows.append((self.names[j], self.names[i], float(B[i, j]), prob, float(lo), float(hi), sd, unit, pv,
                         bool(sig is not None and sig[i, j]), total, self._link(i, j)))
        cols = ["cause", "effect", "coefficient", "probability", "ci_low", "ci_high", "std", "unit", "p_value",
                "significant", "total_effect", "link"]
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

    # ------------------------------------------------------------------ lingam's toolbox
    def total_effects_in_units(self) -> np.ndarray | None:
        """Total effects in physical units (unit of ``names[i]`` per unit of ``names[j]``), or None."""
        return None if self.total_effects is None else self.total_effects * self._unit_factor()

    def total_effect(self, effect, cause, *, in_units: bool = False) -> float:
        """Total causal effect of ``cause`` on ``effect`` over every directed path (names or indices).

        The number of lingam's ``estimate_total_effect(X, from_index=cause, to_index=effect)``: the coefficient
        of ``cause`` when ``effect`` is regressed on ``cause`` and the parents of ``cause``.  0 when ``cause`` is
        not before ``effect`` in the causal order (the fitted model has no path that way).

        Raises
        ------
        ValueError
            For a result saved before total effects existed (fit it again).
        """
        if self.total_effects is None:
            raise ValueError("This result has no total effects (saved by an older version); fit it again.")
        T = self.total_effects_in_units() if in_units else self.total_effects
        return float(T[self.index(effect), self.index(cause)])

    def total_effects_table(self, *, in_units: bool = False) -> pd.DataFrame:
        """Every non-zero total effect of the full-data fit, largest first (no bootstrap needed).

        Returns
        -------
        DataFrame
            ``cause``, ``effect`` (names), ``total_effect`` (all directed paths, :meth:`total_effect`),
            ``direct`` (the direct coefficient, 0 for a purely indirect effect), ``unit``.
        """
        if self.total_effects is None:
            raise ValueError("This result has no total effects (saved by an older version); fit it again.")
        T = self.total_effects_in_units() if in_units else self.total_effects
        B = self.adjacency_in_units() if in_units else self.adjacency
        effect, cause = np.nonzero(T)
        order = np.argsort(-np.abs(T[effect, cause]), kind="stable")
        effect, cause = effect[order], cause[order]
        units = [self.coupling_unit(i, j) if (in_units or not self.standardized) else "std/std"
                 for i, j in zip(effect, cause)]
        return pd.DataFrame({"cause": [self.names[j] for j in cause], "effect": [self.names[i] for i in effect],
                             "total_effect": T[effect, cause], "direct": B[effect, cause], "unit": units})

    def _require_bootstrap(self) -> None:
        if self.n_bootstrap == 0:
            raise ValueError("This result has no bootstrap; fit again with n_bootstrap > 0 for bootstrap summaries.")

    def _min_effect(self, min_causal_effect) -> float:
        if min_causal_effect is None:
            return float(self.params.get("min_causal_effect", 0.0))
        if not min_causal_effect > 0.0:
            raise ValueError(f"min_causal_effect must be a value greater than 0 (or None), got {min_causal_effect!r}.")
        return float(min_causal_effect)

    def bootstrap_total_effects(self, *, in_units: bool = False) -> np.ndarray:
        """(n_bootstrap, p, p) total effects of every resample: the sum over directed paths of the products of
        its direct effects (``[k, i, j]``: ``j`` on ``i``; 0 unless ``j`` is before ``i`` in the resample's
        order), as lingam's ``BootstrapResult.total_effects_``."""
        from .toolbox import total_effects_from_adjacency

        self._require_bootstrap()
        T = total_effects_from_adjacency(self.bootstrap_adjacency, self.bootstrap_orders)
        return T * self._unit_factor()[None] if in_units else T

    def get_probabilities(self, min_causal_effect=None) -> np.ndarray:
        """(p, p) share of resamples with ``|B[i, j]| > min_causal_effect`` (``i <- j``), as lingam's.

        ``min_causal_effect`` defaults to the fit's (``params["min_causal_effect"]``), in the units of
        ``adjacency``.
        """
        self._require_bootstrap()
        threshold = self._min_effect(min_causal_effect)
        return (np.abs(np.nan_to_num(self.bootstrap_adjacency)) > threshold).mean(axis=0)

    def get_causal_direction_counts(self, n_directions=None, min_causal_effect=None,
                                    split_by_causal_effect_sign: bool = False) -> pd.DataFrame:
        """How many resamples contain each direct edge, most frequent first (lingam's order of ties).

        Returns
        -------
        DataFrame
            ``cause``, ``effect`` (names: the edge is ``effect <- cause``, ``B[effect, cause] != 0``),
            ``count``, and ``sign`` (+1 / -1) with ``split_by_causal_effect_sign``; the first
            ``n_directions`` rows when given.
        """
        self._require_bootstrap()
        n_directions = _check_top(n_directions, "n_directions")
        threshold = self._min_effect(min_causal_effect)
        rows = []
        for am in np.nan_to_num(self.bootstrap_adjacency):
            effect, cause = np.nonzero(np.abs(am) > threshold)
            cols = [effect, cause] + ([np.sign(am[effect, cause]).astype(np.int64)]
                                      if split_by_causal_effect_sign else [])
            rows.append(np.stack(cols, axis=1))
        rows = np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.int64)
        columns = ["cause", "effect", "count"] + (["sign"] if split_by_causal_effect_sign else [])
        if len(rows) == 0:
            return pd.DataFrame({c: [] for c in columns})
        unique, counts = np.unique(rows, axis=0, return_counts=True)
        order = np.argsort(-counts)[:n_directions]
        table = {"cause": [self.names[k] for k in unique[order, 1]],
                 "effect": [self.names[k] for k in unique[order, 0]], "count": counts[order]}
        if split_by_causal_effect_sign:
            table["sign"] = unique[order, 2]
        return pd.DataFrame(table, columns=columns)

    def get_directed_acyclic_graph_counts(self, n_dags=None, min_causal_effect=None,
                                          split_by_causal_effect_sign: bool = False) -> pd.DataFrame:
        """How many resamples give each whole graph, most frequent first (lingam's order of ties).

        Returns
        -------
        DataFrame
            ``edges``: tuple of ``"effect <- cause"`` strings of the graph (in lingam's (to, from) row-major
            order), ``count``, and ``signs`` (tuple of +1 / -1 per edge) with ``split_by_causal_effect_sign``.
        """
        self._require_bootstrap()
        n_dags = _check_top(n_dags, "n_dags")
        threshold = self._min_effect(min_causal_effect)
        dags = []
        for am in np.nan_to_num(self.bootstrap_adjacency):
            dag = np.abs(am) > threshold
            dags.append(np.where(dag, np.sign(am), 0).astype(np.int64) if split_by_causal_effect_sign else dag)
        unique, counts = np.unique(np.array(dags), axis=0, return_counts=True)
        order = np.argsort(-counts)[:n_dags]
        edges, signs = [], []
        for dag in unique[order]:
            effect, cause = np.nonzero(dag)
            edges.append(tuple(f"{self.names[i]} <- {self.names[j]}" for i, j in zip(effect, cause)))
            signs.append(tuple(int(v) for v in dag[effect, cause]))
        table = {"edges": edges, "count": counts[order]}
        if split_by_causal_effect_sign:
            table["signs"] = signs
        return pd.DataFrame(table)

    def get_total_causal_effects(self, min_causal_effect=None, *, in_units: bool = False,
                                 percentiles=(2.5, 97.5)) -> pd.DataFrame:
        """Bootstrap total effects with probabilities and intervals, most probable first (as lingam's).

        Parameters
        ----------
        min_causal_effect : float, optional
            A resample counts a total effect when ``|T| > min_causal_effect`` (default the fit's).
        in_units : bool
            Effects in physical units instead of standardised.
        percentiles : (float, float)
            Interval of the resampled total effect (zeros included), in percent.

        Returns
        -------
        DataFrame
            ``cause``, ``effect`` (names), ``total_effect`` (median over the resamples where it is non-zero:
            lingam's ``effect``), ``probability`` (share of resamples with ``|T| > min_causal_effect``),
            ``ci_low``, ``ci_high`` (the percentiles), ``full_fit`` (:meth:`total_effect` of the full data; NaN
            for old results).
        """
        T = self.bootstrap_total_effects(in_units=in_units)
        threshold = self._min_effect(min_causal_effect)
        probs = (np.abs(T) > threshold).mean(axis=0)
        effect, cause = np.nonzero(np.abs(probs) > 0)
        probs = probs[effect, cause]
        medians = np.array([np.median(T[:, i, j][np.abs(T[:, i, j]) > 0]) for i, j in zip(effect, cause)])
        order = np.argsort(-probs)
        effect, cause, probs, medians = effect[order], cause[order], probs[order], medians[order]
        low, high = (np.percentile(T[:, effect, cause], percentiles, axis=0) if len(effect)
                     else (np.zeros(0), np.zeros(0)))
        full = self.total_effects_in_units() if in_units else self.total_effects
        return pd.DataFrame({
            "cause": [self.names[j] for j in cause], "effect": [self.names[i] for i in effect],
            "total_effect": medians, "probability": probs, "ci_low": low, "ci_high": high,
            "full_fit": np.full(len(effect), np.nan) if full is None else full[effect, cause],
        })

    def get_paths(self, cause, effect, min_causal_effect=None, *, in_units: bool = False) -> pd.DataFrame:
        """Every directed path from ``cause`` to ``effect`` seen in the resamples, with its probability.

        Returns
        -------
        DataFrame
            ``path`` (tuple of names, ``cause`` first), ``path_index`` (tuple of indices), ``coefficient`` (median
            over the resamples containing the path of the product of its direct effects: lingam's ``effect``),
            ``probability`` (share of resamples containing it); most probable first (lingam's order of ties).
        """
        from .toolbox import find_paths

        self._require_bootstrap()
        threshold = self._min_effect(min_causal_effect)
        start, stop = self.index(cause), self.index(effect)
        boot = self.bootstrap_adjacency_in_units() if in_units else self.bootstrap_adjacency
        keys, products = [], []
        for am in boot:
            paths, effects = find_paths(am, start, stop, threshold)
            keys.extend("_".join(map(str, path)) for path in paths)
            products.extend(effects)
        keys, products = np.array(keys), np.array(products)
        if len(keys) == 0:
            return pd.DataFrame({"path": [], "path_index": [], "coefficient": [], "probability": []})
        unique, counts = np.unique(keys, return_counts=True)
        order = np.argsort(-counts)
        index = [tuple(int(v) for v in key.split("_")) for key in unique[order]]
        return pd.DataFrame({
            "path": [tuple(self.names[v] for v in path) for path in index], "path_index": index,
            "coefficient": [float(np.median(products[keys == key])) for key in unique[order]],
            "probability": counts[order] / len(boot),
        })

    def error_independence_summary(self) -> pd.DataFrame:
        """Pairs of variables whose fitted errors are tested for independence, smallest p-value first.

        Returns
        -------
        DataFrame
            ``a``, ``b`` (names), ``p_value`` (HSIC, as lingam's), ``rejected`` (below the fit's
            ``independence_alpha`` divided by the number of pairs: the model does not fit there).
        """
        if self.error_independence_p_values is None:
            raise ValueError("This result has no error-independence p-values (skipped or saved by an older version).")
        p = len(self.names)
        n_pairs = max(p * (p - 1) // 2, 1)
        level = float(self.params.get("independence_alpha", 0.01)) / n_pairs
        rows = [(self.names[u], self.names[v], float(self.error_independence_p_values[u, v]))
                for u in range(p) for v in range(u + 1, p)]
        table = pd.DataFrame(rows, columns=["a", "b", "p_value"]).sort_values("p_value", kind="stable")
        return table.assign(rejected=table["p_value"] < level).reset_index(drop=True)

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
        text = (
            f"DirectLiNGAM on {self.n_samples} samples ({self.n_dropped} dropped){boot}\n"
            f"causal order: {order}\n"
            f"{int(np.count_nonzero(self.adjacency))} direct edges "
            f"({'standardised' if self.standardized else 'data'} units)"
        )
        if self.error_independence_p_values is not None:
            rejected = self.error_independence_summary()
            rejected = rejected[rejected["rejected"]]
            text += ("\nfitted errors independent (HSIC): the model fits" if rejected.empty else
                     f"\nfitted errors dependent (HSIC) for {len(rejected)} pair(s), e.g. "
                     f"{rejected['a'].iloc[0]}/{rejected['b'].iloc[0]}: the model does not fit")
        return text

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
            "total_effects": None if self.total_effects is None else self.total_effects.copy(),
            "error_independence_p_values": None if self.error_independence_p_values is None
            else self.error_independence_p_values.copy(),
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


def _check_top(value, name: str):
    """``None`` or a whole number > 0 (lingam's ``n_directions`` / ``n_dags``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a whole number greater than 0 (or None), got {value!r}.")
    return int(value)


def _copy_state(value):
    if isinstance(value, dict):
        return {k: _copy_state(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_state(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.copy()
    return value
