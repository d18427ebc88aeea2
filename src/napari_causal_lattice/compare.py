"""Causal couplings compared across images and groups of images (e.g. compositions, Figs. 5 and 7 of the paper).

Each image is fitted with :func:`napari_causal_lattice.causal.fit_lingam` (bootstrap resamples from one
seeded generator); a group's coefficient is the mean of its images' coefficients, and its confidence
interval comes from averaging one bootstrap replicate per image, drawn at random, many times (images are
independent samples, each weighted equally as in the paper's per-composition averages).  The figures
(:func:`~napari_causal_lattice.figures.plot_coefficient_vs_group`, ``plot_group_adjacency``) live in
:mod:`napari_causal_lattice.figures`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._moved import moved
from .lattice import DESCRIPTORS
from .options import CompareOptions, check_seed, takes_options
from .progress import report
from .provenance import make_provenance

#: Drawing helpers that lived here (old name -> new module).
_MOVED = dict.fromkeys(("plot_coefficient_vs_group", "plot_group_adjacency"), "napari_causal_lattice.figures")

_TABLE_COLUMNS = ("level", "image", "group", "effect", "cause", "coefficient", "ci_low", "ci_high", "probability",
                  "n_samples", "flip_rate")


@dataclass(frozen=True)
class ComparisonResult:
    """Every edge coefficient per image and per group, with bootstrap confidence intervals.

    Attributes
    ----------
    table : DataFrame
        Tidy table, one row per (level, image or group, effect, cause) with columns ``level`` (``"image"`` or
        ``"group"``), ``image`` (image name; ``""`` on group rows), ``group``, ``effect``, ``cause``
        (lingam convention ``effect <- cause``), ``coefficient`` (median) and ``ci_low``, ``ci_high``
        (percentile interval at ``confidence``), both over the bootstrap resamples whose causal order puts
        ``cause`` and ``effect`` the way the group's resamples mostly do (conditional on the group's modal order
        of the pair; group rows: mean of the images' medians, interval of the mean of one kept resample per
        image), ``probability`` (fraction of bootstrap resamples in which the edge is non-zero; group rows: mean
        over the group's images), ``n_samples`` (cells; group rows: sum) and ``flip_rate`` (share of resamples
        whose order of the pair is the other way, left out; group rows: mean over the images; NaN when the
        resampled orders are unknown).  The full-data fits stay in ``adjacency``.  With ``eiv=True`` also ``coefficient_eiv``, ``ci_low_eiv``, ``ci_high_eiv``:
        the same in descriptor units, corrected for measurement noise (see :mod:`napari_causal_lattice.causal.eiv`).
    names : tuple of str
        The ``p`` variables.
    images : tuple of str
        Image names, in input order.
    groups : tuple of str
        Group of each image.
    adjacency : (n_images, p, p) array
        Adjacency of each image's full fit, ``[k, e, c]`` = effect of ``c`` on ``e``.
    confidence : float
        Level of the intervals.
    shared_order : bool
        Whether all fits used one causal order (see :func:`compare_images`).
    causal_order : tuple of str or None
        The shared order (causes first) when ``shared_order``.
    units : dict
        Variable name -> unit of the input descriptors (``""`` when unknown).
    standardized : bool
        Whether each image was standardized before fitting (coefficients in std/std).
    provenance : dict
    """

    table: pd.DataFrame
    names: tuple
    images: tuple
    groups: tuple
    adjacency: np.ndarray
    confidence: float
    shared_order: bool
    causal_order: tuple | None
    units: dict
    standardized: bool
    provenance: dict

    @property
    def group_names(self) -> tuple:
        """Distinct groups in order of first appearance."""
        return tuple(dict.fromkeys(self.groups))

    def edge(self, effect: str, cause: str, *, level: str = "group") -> pd.DataFrame:
        """Rows of one coupling ``effect <- cause`` at ``level`` ``"group"`` or ``"image"``."""
        if level not in ("group", "image"):
            raise ValueError(f"level must be 'group' or 'image', got {level!r}")
        for name in (effect, cause):
            if name not in self.names:
                raise ValueError(f"unknown variable {name!r}; this comparison has {', '.join(self.names)}")
        t = self.table
        return t[(t["level"] == level) & (t["effect"] == effect) & (t["cause"] == cause)].reset_index(drop=True)

    def edge_units(self, effect: str, cause: str) -> str:
        """Unit of the coefficient ``effect <- cause``: ``"std/std"`` when standardized, else effect/cause unit."""
        if self.standardized:
            return "std/std"
        ue, uc = self.units.get(effect, ""), self.units.get(cause, "")
        return f"{ue or '?'}/{uc or '?'}"

    def group_adjacency(self, group: str) -> np.ndarray:
        """(p, p) mean adjacency of the images of ``group``."""
        members = [k for k, g in enumerate(self.groups) if g == group]
        if not members:
            raise ValueError(f"unknown group {group!r}; groups are {', '.join(self.group_names)}")
        return self.adjacency[members].mean(axis=0)

    def to_state(self) -> dict:
        return {
            "table": {
                "columns": [str(c) for c in self.table.columns],
                "data": {str(c): self.table[c].to_numpy().copy() for c in self.table.columns},
            },
            "names": list(self.names),
            "images": list(self.images),
            "groups": list(self.groups),
            "adjacency": self.adjacency.copy(),
            "confidence": float(self.confidence),
            "shared_order": bool(self.shared_order),
            "causal_order": None if self.causal_order is None else list(self.causal_order),
            "units": {"names": list(self.units), "values": [str(v) for v in self.units.values()]},
            "standardized": bool(self.standardized),
            "provenance": self.provenance,
        }

    @classmethod
    def from_state(cls, state: dict) -> "ComparisonResult":
        columns = list(state["table"]["columns"])
        data = state["table"]["data"]
        order = state["causal_order"]
        return cls(
            table=pd.DataFrame({c: np.asarray(data[c]) for c in columns}, columns=columns),
            names=tuple(str(n) for n in state["names"]),
            images=tuple(str(n) for n in state["images"]),
            groups=tuple(str(n) for n in state["groups"]),
            adjacency=np.asarray(state["adjacency"], dtype=float),
            confidence=float(state["confidence"]),
            shared_order=bool(state["shared_order"]),
            causal_order=None if order is None else tuple(str(n) for n in order),
            units=dict(zip(state["units"]["names"], state["units"]["values"])),
            standardized=bool(state["standardized"]),
            provenance=state["provenance"],
        )


def _named_items(items) -> tuple[list[str], list]:
    if isinstance(items, dict):
        names, values = [str(k) for k in items], list(items.values())
    else:
        values = list(items)
        names = [f"image {k + 1}" for k in range(len(values))]
    if len(values) < 1:
        raise ValueError("compare_images needs at least one image (Cells, DataFrame or LingamResult)")
    return names, values


def _resolve_groups(groups, names: list[str]) -> list[str]:
    if groups is None:
        return ["all"] * len(names)
    if isinstance(groups, dict):
        missing = [n for n in names if n not in groups]
        if missing:
            raise ValueError(f"groups has no entry for image(s) {missing}; give a group label for every image")
        return [str(groups[n]) for n in names]
    groups = [str(g) for g in groups]
    if len(groups) != len(names):
        raise ValueError(f"got {len(groups)} group labels for {len(names)} images; give one label per image")
    return groups


def _is_lingam_result(item) -> bool:
    return hasattr(item, "adjacency") and hasattr(item, "bootstrap_adjacency") and hasattr(item, "names")


def _table_of(item, name: str) -> tuple[pd.DataFrame, dict]:
    if isinstance(item, pd.DataFrame):
        return item, {}
    table = getattr(item, "table", None)
    if isinstance(table, pd.DataFrame):
        return table, dict(getattr(item, "units", None) or {})
    raise TypeError(
        f"{name}: expected Cells (from build_cells), a DataFrame of descriptors or a LingamResult with bootstrap "
        f"samples, got {type(item).__name__}"
    )


def _data_matrix(table: pd.DataFrame, variables: list[str], name: str) -> np.ndarray:
    missing = [v for v in variables if v not in table.columns]
    if missing:
        raise ValueError(f"{name}: the cell table lacks variable(s) {missing}; choose variables present in all images")
    X = table[variables].to_numpy(dtype=float)
    X = X[np.all(np.isfinite(X), axis=1)]
    if X.shape[0] < len(variables) + 2:
        raise ValueError(f"{name}: only {X.shape[0]} complete cells for {len(variables)} variables; need more cells")
    return X


def order_prior(order, p: int) -> np.ndarray:
    """(p, p) prior-knowledge matrix (lingam convention) that forces the causal ``order`` (indices, causes first).

    ``pk[i, j] = 0`` (no directed path ``j -> i``) whenever ``j`` comes after ``i`` in the order, else -1.
    """
    position = np.empty(p, dtype=int)
    position[np.asarray(order, dtype=int)] = np.arange(p)
    pk = np.full((p, p), -1, dtype=np.int64)
    pk[position[None, :] > position[:, None]] = 0
    np.fill_diagonal(pk, -1)
    return pk


def _checked_result(result, name: str, variables: list, eiv: bool):
    """A precomputed LingamResult, checked for the comparison's variables, resamples and (eiv) corrections."""
    if list(result.names) != variables:
        raise ValueError(f"{name}: the LingamResult has variables {list(result.names)}, expected {variables}")
    if result.bootstrap_adjacency is None or len(result.bootstrap_adjacency) < 20:
        raise ValueError(f"{name}: the LingamResult has no (or < 20) bootstrap samples; refit with "
                         "n_bootstrap >= 20 or pass the cells instead")
    if eiv and getattr(result, "bootstrap_adjacency_eiv", None) is None:
        raise ValueError(f"{name}: eiv=True needs the cell tables with sigma_<name> columns, not a LingamResult "
                         "fitted without eiv")
    return result


@dataclass
class _ImageInputs:
    """The images of a comparison, checked: names, items, group of each, the variables, and per image given as
    a table its (n, p) data matrix, its table and the descriptors' units."""

    names: list
    values: list
    group_of: list
    results_given: list
    variables: list
    data: dict
    tables: dict
    units: dict

    @classmethod
    def of(cls, items, groups, variables, shared_order: bool) -> _ImageInputs:
        names, values = _named_items(items)
        if len(set(names)) != len(names):
            raise ValueError("image names must be unique")
        group_of = _resolve_groups(groups, names)
        results_given = [_is_lingam_result(v) for v in values]
        if variables is None:
            variables = list(values[results_given.index(True)].names) if all(results_given) else list(DESCRIPTORS)
        variables = [str(v) for v in variables]
        if shared_order and any(results_given):
            raise ValueError("shared_order needs the cell tables of every image, not precomputed LingamResults")
        data, tables, units = {}, {}, {}
        for name, item, given in zip(names, values, results_given):
            if not given:
                table, unit_map = _table_of(item, name)
                data[name] = _data_matrix(table, variables, name)
                tables[name] = table
                units.update(unit_map)
        return cls(names, values, group_of, results_given, variables, data, tables, units)


def _shared_order(inputs: _ImageInputs, prior_knowledge, seed: int, standardize: bool, backend, cancel):
    """``(causal_order, prior)``: the order fitted once on the pooled, per-image centred data, and the prior that
    fixes it for every image's fit."""
    from .causal import fit_lingam

    variables = inputs.variables
    pooled = np.vstack([X - X.mean(axis=0) for X in inputs.data.values()])
    pooled_fit = fit_lingam(pooled, variables=variables, prior_knowledge=prior_knowledge, n_bootstrap=0,
                            seed=seed, standardize=standardize, backend=backend, cancel=cancel)
    order_idx = [int(k) for k in pooled_fit.causal_order]
    return tuple(variables[k] for k in order_idx), order_prior(order_idx, len(variables))


def _fit_images(inputs: _ImageInputs, prior, n_bootstrap: int, child_seeds, standardize: bool, backend, eiv: bool,
                *, progress, cancel, done: int, total: int) -> tuple[list, list]:
    """``(fits, n_samples)``: each image fitted with its own child seed (or its given LingamResult, checked);
    one progress unit per image after the ``done`` ones."""
    from .causal import fit_lingam

    units = inputs.units
    fits, n_samples = [], []
    for k, (name, item, given) in enumerate(zip(inputs.names, inputs.values, inputs.results_given)):
        if given:
            result = _checked_result(item, name, inputs.variables, eiv)
            units.update({n: u for n, u in (getattr(result, "units", None) or {}).items() if n not in units})
        else:
            result = fit_lingam(inputs.tables[name] if eiv else inputs.data[name], variables=inputs.variables,
                                prior_knowledge=prior, n_bootstrap=n_bootstrap, seed=child_seeds[k],
                                standardize=standardize, units=units or None, backend=backend, eiv=eiv,
                                cancel=cancel)
        fits.append(result)
        n_samples.append(int(getattr(result, "n_samples", len(inputs.data.get(name, ())))))
        done += 1
        report(progress, done, total, cancel)
    return fits, n_samples


@takes_options(CompareOptions, aliases={"method": "backend"})
def compare_images(
    items,
    groups=None,
    *,
    variables=None,
    n_bootstrap: int = 100,
    seed=None,
    shared_order: bool = False,
    standardize: bool = False,
    prior_knowledge="default",
    confidence: float = 0.95,
    backend=None,
    eiv: bool = False,
    progress=None,
    cancel=None,
    null=None,
) -> ComparisonResult:
    """Fit every image and compare all edge coefficients per image and per group, with bootstrap intervals.

    Parameters
    ----------
    items : sequence or dict
        Images as Cells (from ``build_cells``), DataFrames with the descriptor columns, or LingamResults that
        carry bootstrap samples (``bootstrap_adjacency``; then used as they are).  A dict maps image names to
        items; a sequence names them ``"image 1"``, ``"image 2"``...
    groups : sequence or dict, optional
        Group label per image (e.g. the composition ``"x = 0.07"``); default one group ``"all"``.
    variables : sequence of str, optional
        Variables to fit; default the 8 descriptors.  All images must have them.
    n_bootstrap : int
        Bootstrap resamples per image (>= 20).
    seed : int or None
        Seed (>= 0); image ``k`` gets its own child generator, so results do not depend on the processing order.
        None draws one, recorded in the provenance so the comparison can be repeated.
    shared_order : bool
        Fit one causal order for all images: the order is estimated once on the pooled data (each image
        centred, so offsets between images do not create fake dependencies), then every image is fitted
        with that order fixed (a prior-knowledge matrix that forbids paths against it) so only the pruning
        and the coefficients differ between images and groups.  Not applicable to LingamResult items.
    standardize : bool
        Standardize each image before fitting (coefficients in std/std).  Default False: raw coefficients in
        descriptor units, comparable between images with different spreads.
    prior_knowledge : "default", None, (p, p) array, list or dict
        Passed to ``fit_lingam`` (any form of :func:`~napari_causal_lattice.causal.prior.resolve_prior`;
        with ``shared_order`` only the pooled fit uses it).
    confidence : float
        Level of the percentile intervals.  Each interval is conditional on the modal order of its pair:
        resamples in which the two variables come the other way round (their edge is then structurally zero)
        are left out, and their share is the ``flip_rate`` column.
    backend : "engine", "lingam" or CausalMethod, optional
        Causal-discovery backend (:mod:`napari_causal_lattice.causal.methods`); formerly ``method``.
    eiv : bool
        Add coefficients corrected for measurement noise (``coefficient_eiv``, ``ci_low_eiv``,
        ``ci_high_eiv``, descriptor units) from the per-cell ``sigma_<name>`` columns of every image.
    progress, cancel
        See :mod:`napari_causal_lattice.progress` (one unit per image).
    null : dict or sequence of InstrumentNull, optional
        The instrument null of each image (a dict by image name, or one per item, None to skip an image), see
        :func:`napari_causal_lattice.null.instrument_null`: the image rows of ``table`` gain ``p_null``,
        ``significant`` (beats the calibrated test and the null) and ``instrument`` (:func:`~napari_causal_lattice.
        null.null_columns`).
    options : CompareOptions, optional
        ``n_bootstrap``, ``seed``, ``shared_order``, ``standardize``, ``confidence``, ``eiv``, ``backend`` and
        ``prior_knowledge`` at once (:class:`~napari_causal_lattice.options.CompareOptions`, the Compare dock's
        form); keywords given as well replace its fields.

    Returns
    -------
    ComparisonResult
    """
    n_bootstrap = int(n_bootstrap)  # options are validated by CompareOptions (see takes_options)
    seed = check_seed(seed)
    inputs = _ImageInputs.of(items, groups, variables, shared_order)
    names, variables = inputs.names, inputs.variables
    root = np.random.default_rng(seed)
    fits, n_samples, causal_order = _fit_all(inputs, root, prior_knowledge, n_bootstrap, shared_order, standardize,
                                             backend, eiv, progress=progress, cancel=cancel)
    table = _tidy(names, inputs.group_of, variables, fits, n_samples, float(confidence), root, n_bootstrap, eiv=eiv)
    if null is not None:
        from .null import null_columns

        table = null_columns(table, names, fits, null)
    provenance = make_provenance(
        "compare_images",
        {"images": names, "groups": inputs.group_of, "variables": variables, "n_bootstrap": n_bootstrap,
         "shared_order": shared_order, "standardize": standardize, "confidence": confidence,
         "method": getattr(fits[0], "params", {}).get("method", "engine") if fits else "engine", "eiv": bool(eiv),
         "prior_knowledge": prior_knowledge if isinstance(prior_knowledge, (str, type(None))) else "matrix",
         "causal_order": causal_order},
        seed=seed,
        inputs={n: getattr(v, "provenance", {}) or {} for n, v in zip(names, inputs.values)},
    )
    return ComparisonResult(
        table=table, names=tuple(variables), images=tuple(names), groups=tuple(inputs.group_of),
        adjacency=np.stack([np.asarray(f.adjacency, dtype=float) for f in fits]), confidence=float(confidence),
        shared_order=bool(shared_order), causal_order=causal_order,
        units={v: str(inputs.units.get(v, "")) for v in variables}, standardized=bool(standardize),
        provenance=provenance,
    )


def _fit_all(inputs: _ImageInputs, root, prior_knowledge, n_bootstrap: int, shared_order: bool, standardize: bool,
             backend, eiv: bool, *, progress, cancel) -> tuple[list, list, tuple | None]:
    """``(fits, n_samples, causal_order)`` of every image: child seeds drawn from ``root`` (one per image and
    one for the pooled order), the shared order first when asked for (one progress unit), then each image."""
    n_images = len(inputs.values)
    child_seeds = [int(s) for s in root.integers(0, 2**63 - 1, size=n_images + 1)]
    total = n_images + (1 if shared_order else 0)
    causal_order, prior = None, prior_knowledge
    if shared_order:
        causal_order, prior = _shared_order(inputs, prior_knowledge, child_seeds[-1], standardize, backend, cancel)
        report(progress, 1, total, cancel)
    fits, n_samples = _fit_images(inputs, prior, n_bootstrap, child_seeds, standardize, backend, eiv,
                                  progress=progress, cancel=cancel, done=total - n_images, total=total)
    return fits, n_samples, causal_order


def _cause_first(result) -> np.ndarray | None:
    """(n_boot, p, p) bool: in resample r, variable c comes before variable e (``[r, e, c]``); None if unknown."""
    orders = getattr(result, "bootstrap_orders", None)
    if orders is None:
        return None
    position = np.argsort(np.asarray(orders), axis=1)  # position[r, v] = place of variable v in resample r
    return position[:, None, :] < position[:, :, None]


def _group_keep(fits, members, p: int) -> dict:
    """Per image of a group: resamples agreeing with the group's modal order of each pair, and the flip rate."""
    firsts = {k: _cause_first(fits[k]) for k in members}
    known = [f.mean(axis=0) for f in firsts.values() if f is not None]
    modal = np.mean(known, axis=0) >= 0.5 if known else None
    out = {}
    for k, first in firsts.items():
        n_boot = len(fits[k].bootstrap_adjacency)
        if first is None:
            out[k] = (np.ones((n_boot, p, p), dtype=bool), np.full((p, p), np.nan))
        else:
            keep = first == modal[None]
            out[k] = (keep, 1.0 - keep.mean(axis=0))
    return out


def _conditional(boot, keep, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and percentile interval (p, p) of the kept resamples; NaN where none is kept."""
    values = np.where(keep, boot, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN elements: no resample in the modal order
        median, low, high = np.nanquantile(values, [0.5, alpha, 1.0 - alpha], axis=0)
    return median, low, high


def _group_draws(boots, keeps, members, rng, n_draws: int) -> np.ndarray:
    """(n_draws, p, p) group means of one kept resample per image, drawn per element (images without any kept
    resample for an element are left out of that element's mean)."""
    draws = []
    for k in members:
        keep = keeps[k][0]
        ranked = np.argsort(~keep, axis=0, kind="stable")  # kept resamples first, per element
        n_kept = keep.sum(axis=0)
        pick = np.floor(rng.random((n_draws,) + n_kept.shape) * np.maximum(n_kept, 1)).astype(int)
        values = np.take_along_axis(boots[k], np.take_along_axis(ranked, pick, axis=0), axis=0)
        draws.append(np.where(n_kept > 0, values, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(draws, axis=0)


def _tidy(names, group_of, variables, fits, n_samples, confidence, rng, n_group_boot, *, eiv: bool) -> pd.DataFrame:
    p = len(variables)
    alpha = (1.0 - confidence) / 2.0
    eff, cau = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    off = eff != cau
    eff, cau = eff[off], cau[off]
    boots = [np.asarray(f.bootstrap_adjacency, dtype=float) for f in fits]
    eiv_boots = [np.asarray(f.bootstrap_adjacency_eiv, dtype=float) for f in fits] if eiv else None
    keeps = {}
    for group in dict.fromkeys(group_of):
        keeps.update(_group_keep(fits, [k for k, g in enumerate(group_of) if g == group], p))
    frames = []

    def rows(level, image, group, stats, prob, n, flip, eiv_stats):
        frame = pd.DataFrame({
            "level": level, "image": image, "group": group,
            "effect": [variables[e] for e in eff], "cause": [variables[c] for c in cau],
            "coefficient": stats[0][eff, cau], "ci_low": stats[1][eff, cau], "ci_high": stats[2][eff, cau],
            "probability": prob[eff, cau], "n_samples": n, "flip_rate": flip[eff, cau],
        })
        if eiv_stats is not None:
            frame = frame.assign(coefficient_eiv=eiv_stats[0][eff, cau], ci_low_eiv=eiv_stats[1][eff, cau],
                                 ci_high_eiv=eiv_stats[2][eff, cau])
        return frame

    image_stats, image_eiv = {}, {}
    for k, name in enumerate(names):
        image_stats[k] = _conditional(boots[k], keeps[k][0], alpha)
        image_eiv[k] = _conditional(eiv_boots[k], keeps[k][0], alpha) if eiv else None
        frames.append(rows("image", name, group_of[k], image_stats[k], np.mean(boots[k] != 0, axis=0),
                           n_samples[k], keeps[k][1], image_eiv[k]))
    for group in dict.fromkeys(group_of):
        members = [k for k, g in enumerate(group_of) if g == group]

        def group_stats(stats, samples):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                centre = np.nanmean([stats[k][0] for k in members], axis=0)
                low, high = np.nanquantile(_group_draws(samples, keeps, members, rng, n_group_boot),
                                           [alpha, 1.0 - alpha], axis=0)
            return centre, low, high

        prob = np.mean([np.mean(boots[k] != 0, axis=0) for k in members], axis=0)
        flip = np.mean([keeps[k][1] for k in members], axis=0)
        frames.append(rows("group", "", group, group_stats(image_stats, boots), prob,
                           int(sum(n_samples[k] for k in members)), flip,
                           group_stats(image_eiv, eiv_boots) if eiv else None))
    table = pd.concat(frames, ignore_index=True)
    extra = ["coefficient_eiv", "ci_low_eiv", "ci_high_eiv"] if eiv else []
    return table[list(_TABLE_COLUMNS) + extra]


@takes_options(CompareOptions)
def compare_stem_images(
    images,
    groups=None,
    *,
    pixel_size=None,
    variables=None,
    n_bootstrap: int = 100,
    seed=None,
    shared_order: bool = False,
    standardize: bool = False,
    prior_knowledge="default",
    confidence: float = 0.95,
    backend=None,
    eiv: bool = False,
    progress=None,
    cancel=None,
) -> ComparisonResult:
    """Run ``find_columns -> build_cells`` on every image (Cells items pass through), then :func:`compare_images`.

    Parameters
    ----------
    images : dict
        Image name -> (H, W) STEM image array, or ready ``Cells`` (e.g. from a results folder).
    groups : sequence or dict, optional
        Group label per image, as in :func:`compare_images`.
    pixel_size : float or dict, optional
        pm per px for all images, or image name -> pm per px (None: lengths in px; give it when the images
        differ in magnification, else their lattice and polarization descriptors are not comparable).
    variables, n_bootstrap, seed, shared_order, standardize, prior_knowledge, confidence, backend, eiv
        As in :func:`compare_images`.
    options : CompareOptions, optional
        Those options at once (the Compare dock's form); keywords given as well replace its fields.
    progress, cancel
        See :mod:`napari_causal_lattice.progress`: one unit per image for the columns, then one per fit.

    Returns
    -------
    ComparisonResult
    """
    from .cells import build_cells
    from .columns import find_columns

    if not isinstance(images, dict) or not images:
        raise ValueError("images must be a non-empty dict: image name -> 2D image array (or Cells)")
    names = list(images)
    total = 2 * len(names) + (1 if shared_order else 0)
    cells = {}
    for k, name in enumerate(names):
        item = images[name]
        if hasattr(item, "table"):
            cells[name] = item
        else:
            size = pixel_size.get(name) if isinstance(pixel_size, dict) else pixel_size
            try:
                columns = find_columns(item, pixel_size=size, cancel=cancel)
                cells[name] = build_cells(columns, cancel=cancel)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from exc
        report(progress, k + 1, total, cancel)

    def fit_progress(done: int, _total: int) -> None:
        if progress is not None:
            progress(len(names) + done, total)

    return compare_images(
        cells, groups, variables=variables, n_bootstrap=n_bootstrap, seed=seed, shared_order=shared_order,
        standardize=standardize, prior_knowledge=prior_knowledge, confidence=confidence, backend=backend, eiv=eiv,
        progress=fit_progress, cancel=cancel,
    )


def __getattr__(name: str):
    return moved(__name__, _MOVED, name)
