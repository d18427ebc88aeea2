"""Prior knowledge for DirectLiNGAM, written with variable names.

The result is lingam's prior-knowledge matrix ``pk`` (p, p) of ints: ``pk[i, j] = 1`` a directed path
``j -> i`` exists, ``0`` there is no directed path ``j -> i``, ``-1`` nothing is known (diagonal: -1).
DirectLiNGAM uses it as hard ordering constraints ("j before i" for a required path; "i before j" for a
forbidden path, unless the reverse path is also forbidden) and never lets a forbidden cause into the
regression of its effect.  A required path only fixes the order: it does not force a non-zero coefficient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .engine import partial_orders

__all__ = ["make_prior_knowledge", "parse_edge", "describe_prior_knowledge", "resolve_prior", "DEFAULT_EXOGENOUS"]

#: Descriptors treated as exogenous by default (the paper's prior knowledge: column intensities are
#: set by the chemistry/thickness, not by the distortions).
DEFAULT_EXOGENOUS: tuple[str, ...] = ("I14", "I5")
_PRIOR_KEYS = ("exogenous", "sink", "forbidden", "required", "paths", "no_paths", "matrix")

_ARROW = re.compile(r"^\s*(.+?)\s*(<-|->)\s*(.+?)\s*$")


def parse_edge(edge, names: Sequence[str]) -> tuple[int, int]:
    """Resolve one edge written as text to ``(effect_index, cause_index)``.

    Parameters
    ----------
    edge : str
        ``"Px <- Py"`` (Py causes Px) or ``"Py -> Px"``.  A bare pair such as ``("Px", "Py")`` or ``[2, 3]`` is
        refused: this package read it as (effect, cause) before 0.3, while lingam reads ``paths=[[2, 3]]`` as
        ``2 -> 3``; write the arrow, or give lingam-ordered (cause, effect) pairs to
        :func:`make_prior_knowledge` as ``paths=`` / ``no_paths=``.
    names : sequence of str
        Variable names, in column order.

    Returns
    -------
    (int, int)
        Indices of the effect and of the cause.

    Raises
    ------
    ValueError
        Unreadable text, a bare pair, unknown names, a self-loop.
    """
    if not isinstance(edge, str):
        raise ValueError(_ambiguous_pair_message(edge, names))
    match = _ARROW.match(edge)
    if match is None:
        raise ValueError(f"Cannot read the edge {edge!r}: write it as 'effect <- cause' or 'cause -> effect'.")
    left, arrow, right = match.groups()
    effect, cause = (left, right) if arrow == "<-" else (right, left)
    i, j = _index(effect, names), _index(cause, names)
    if i == j:
        raise ValueError(f"The edge {edge!r} links {names[i]!r} to itself; self-loops are not allowed.")
    return i, j


def _ambiguous_pair_message(edge, names) -> str:
    """The message refusing a bare pair as an edge: it says how to write it either way."""
    try:
        first, second = edge
        a, b = (names[v] if isinstance(v, (int, np.integer)) and 0 <= int(v) < len(names) else str(v)
                for v in (first, second))
    except (TypeError, ValueError):
        return f"An edge must be a string like 'Px <- Py' (Py causes Px) or 'Py -> Px'; got {edge!r}."
    return (
        f"The pair {edge!r} is ambiguous: lingam reads [cause, effect] ('{a} -> {b}') while this package used to "
        f"read (effect, cause) ('{a} <- {b}'). Write the arrow instead: '{b} -> {a}' / '{a} <- {b}' if {b} causes "
        f"{a}, or '{a} -> {b}' if {a} causes {b}; or pass lingam-ordered pairs as paths=[[cause, effect]] "
        "(no_paths= for forbidden ones)."
    )


def _index(name, names: Sequence[str]) -> int:
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        if not 0 <= int(name) < len(names):
            raise ValueError(f"Variable index {name} is out of range for {len(names)} variables {list(names)}.")
        return int(name)
    if isinstance(name, str) and name in names:
        return list(names).index(name)
    raise ValueError(f"Unknown variable {name!r}; the variables are {list(names)}.")


def _indices(items, names, what: str) -> list[int]:
    if isinstance(items, (str, int, np.integer)):
        items = [items]
    if not isinstance(items, Iterable):
        raise TypeError(f"{what} must be a list of variable names, got {items!r}.")
    return [_index(v, names) for v in items]


def _start_matrix(matrix, names: list) -> np.ndarray:
    """(p, p) int matrix the prior knowledge starts from: a given lingam matrix (checked; NaN = unknown) or all
    -1 (unknown)."""
    p = len(names)
    if matrix is None:
        return np.full((p, p), -1, dtype=int)
    pk = np.array(matrix, dtype=float)
    if pk.shape != (p, p):
        raise ValueError(f"The prior-knowledge matrix must be {p} x {p} for variables {names}, got {pk.shape}.")
    pk = np.where(np.isnan(pk), -1, pk)
    if not np.all(np.isin(pk, (-1, 0, 1))):
        raise ValueError("A lingam prior-knowledge matrix may only contain -1 (unknown), 0 (no path) and 1 (path).")
    return pk.astype(int)


def _forbidden_and_required(names: list, *, forbidden, no_paths, required, paths) -> tuple[list, list]:
    """``(forbidden, required)`` (i, j) index pairs ("i <- j") from the edge strings and lingam-style pairs;
    an edge that is both is a ValueError."""
    forb = [parse_edge(e, names) for e in _edges(forbidden, "forbidden")]
    forb += [_lingam_pair(e, names, "no_paths") for e in _pairs(no_paths, "no_paths")]
    req = [parse_edge(e, names) for e in _edges(required, "required")]
    req += [_lingam_pair(e, names, "paths") for e in _pairs(paths, "paths")]
    both = set(forb) & set(req)
    if both:
        pairs = [f"{names[i]} <- {names[j]}" for i, j in sorted(both)]
        raise ValueError(f"These edges are both required and forbidden: {pairs}; keep only one of each.")
    return forb, req


def make_prior_knowledge(
    names: Sequence[str],
    *,
    exogenous=(),
    sink=(),
    forbidden=(),
    required=(),
    paths=(),
    no_paths=(),
    matrix=None,
) -> np.ndarray:
    """Build a lingam prior-knowledge matrix from names.

    Parameters
    ----------
    names : sequence of str
        Variable names in column order (p of them).
    exogenous : iterable of str
        Variables with no cause among the others (e.g. ``("I14", "I5")``): ``pk[e, :] = 0``.
    sink : iterable of str
        Variables that cause none of the others: ``pk[:, s] = 0``.
    forbidden : iterable of str
        No directed path ``cause -> effect``; edges as ``"effect <- cause"`` or ``"cause -> effect"`` (a bare
        pair is refused as ambiguous, see :func:`parse_edge`).
    required : iterable of str
        A directed path ``cause -> effect`` exists (orders ``cause`` before ``effect``).
    paths, no_paths : iterable of (cause, effect) pairs
        lingam's ``make_prior_knowledge`` arguments, in lingam's order: ``paths=[[2, 3]]`` (or
        ``[["I5", "Px"]]``) is a required path ``2 -> 3``; ``no_paths`` forbidden ones.
    matrix : (p, p) array, optional
        Start from an existing lingam matrix (-1 / 0 / 1); the other arguments are applied on top.

    Returns
    -------
    (p, p) int array
        lingam convention, ``pk[i, j]`` is about a path ``j -> i``; diagonal -1.

    Raises
    ------
    ValueError
        Unknown names, a pair both required and forbidden, an exogenous variable with a required cause,
        a sink with a required effect, or constraints that admit no causal order (a cycle).

    Examples
    --------
    >>> make_prior_knowledge(["I14", "I5", "Px"], exogenous=["I14"], required=["Px <- I5"])
    array([[-1,  0,  0],
           [-1, -1, -1],
           [-1,  1, -1]])
    """
    names = [str(n) for n in names]
    p = len(names)
    if len(set(names)) != p:
        raise ValueError(f"Variable names must be unique, got {names}.")
    pk = _start_matrix(matrix, names)
    forb, req = _forbidden_and_required(names, forbidden=forbidden, no_paths=no_paths, required=required,
                                        paths=paths)
    for i, j in forb:
        pk[i, j] = 0
    for i, j in req:
        pk[i, j] = 1
    exo = _indices(exogenous, names, "exogenous")
    snk = _indices(sink, names, "sink")
    for i, j in req:
        if i in exo:
            raise ValueError(f"{names[i]} is declared exogenous but the edge '{names[i]} <- {names[j]}' is required.")
        if j in snk:
            raise ValueError(f"{names[j]} is declared a sink but the edge '{names[i]} <- {names[j]}' is required.")
    for s in snk:
        pk[:, s] = 0
    for e in exo:
        pk[e, :] = 0
    np.fill_diagonal(pk, -1)
    try:
        partial_orders(pk)
    except ValueError as err:
        raise ValueError(f"Inconsistent prior knowledge for {names}: {err}") from None
    return pk


def _pairs(pairs, what: str) -> list:
    if pairs is None:
        return []
    if isinstance(pairs, str):
        raise TypeError(f"{what} must be a list of [cause, effect] pairs like [['I5', 'Px']], got {pairs!r}.")
    return list(np.asarray(pairs, dtype=object).reshape(-1, 2)) if len(pairs) else []


def _lingam_pair(pair, names, what: str) -> tuple[int, int]:
    """A lingam-ordered ``[cause, effect]`` pair -> ``(effect_index, cause_index)``."""
    cause, effect = (v.item() if isinstance(v, np.generic) else v for v in pair)
    i, j = _index(effect, names), _index(cause, names)
    if i == j:
        raise ValueError(f"The {what} pair {list(pair)!r} links {names[i]!r} to itself; self-loops are not allowed.")
    return i, j


def _edges(edges, what: str) -> list:
    if edges is None:
        return []
    if isinstance(edges, str):
        return [edges]
    if (isinstance(edges, (tuple, list)) and len(edges) == 2 and not isinstance(edges[0], (tuple, list))
            and not all(isinstance(e, str) and _ARROW.match(e) for e in edges)):
        return [edges]  # one bare pair: parse_edge refuses it with a message
    try:
        return list(edges)
    except TypeError:
        raise TypeError(f"{what} edges must be a list like ['Px <- Py'], got {edges!r}.") from None


def describe_prior_knowledge(pk, names: Sequence[str]) -> dict:
    """Readable summary of a prior-knowledge matrix.

    Returns
    -------
    dict
        ``exogenous`` (names with pk[e, others] all 0), ``sink`` (pk[others, s] all 0), ``required`` and
        ``forbidden`` ("effect <- cause" strings for the remaining 1 / 0 entries).
    """
    pk = np.asarray(pk)
    p = len(names)
    off = ~np.eye(p, dtype=bool)
    no_path = (pk == 0) | ~off  # one array test per axis instead of one per variable (called on every fit)
    exo = [names[i] for i in np.flatnonzero(no_path.all(axis=1))] if p > 1 else []
    snk = [names[j] for j in np.flatnonzero(no_path.all(axis=0))] if p > 1 else []
    req, forb = [], []
    for i in range(p):
        for j in range(p):
            if i == j:
                continue
            if pk[i, j] == 1:
                req.append(f"{names[i]} <- {names[j]}")
            elif pk[i, j] == 0 and names[i] not in exo and names[j] not in snk:
                forb.append(f"{names[i]} <- {names[j]}")
    return {"exogenous": exo, "sink": snk, "required": req, "forbidden": forb}


def resolve_prior(prior_knowledge, names: Sequence[str]) -> tuple[np.ndarray | None, str]:
    """Prior knowledge in any accepted form -> lingam matrix and a readable label (the one parser for all).

    Parameters
    ----------
    prior_knowledge : "default", None, (p, p) array, list or dict
        ``"default"``: the intensities in :data:`DEFAULT_EXOGENOUS` present in ``names`` are exogenous;
        ``None``: no constraint; a (p, p) lingam matrix; a list of exogenous names, where strings with an
        arrow are required edges (``["I14", "Px <- I5"]``); or a dict with keys ``exogenous``, ``sink``,
        ``forbidden``, ``required``, ``matrix`` (the arguments of :func:`make_prior_knowledge`).
    names : sequence of str
        The ``p`` variables in column order.

    Returns
    -------
    pk : (p, p) int array or None
        None when nothing is constrained.
    label : str
        For provenance, e.g. ``"default (I14, I5 exogenous)"``.

    Raises
    ------
    ValueError
        An unknown string or dict key, unknown names, a matrix of the wrong shape, inconsistent constraints.
    TypeError
        Any other type.
    """
    names = [str(n) for n in names]
    if prior_knowledge is None:
        return None, "none"
    if isinstance(prior_knowledge, str):
        if prior_knowledge != "default":
            raise ValueError(f"prior_knowledge must be 'default', None, a (p, p) matrix, a list or a dict; "
                             f"got {prior_knowledge!r}.")
        exo = [n for n in DEFAULT_EXOGENOUS if n in names]
        if not exo:
            return None, "default (no intensity variable selected: none)"
        return make_prior_knowledge(names, exogenous=exo), f"default ({', '.join(exo)} exogenous)"
    if isinstance(prior_knowledge, Mapping):
        unknown = sorted(set(map(str, prior_knowledge)) - set(_PRIOR_KEYS))
        if unknown:
            raise ValueError(f"Unknown prior-knowledge keys {unknown}; use {list(_PRIOR_KEYS)}.")
        return make_prior_knowledge(names, **prior_knowledge), f"custom {sorted(prior_knowledge)}"
    if isinstance(prior_knowledge, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in prior_knowledge):
        items = list(prior_knowledge)
        edges = [v for v in items if "<-" in v or "->" in v]
        exogenous = [v for v in items if v not in edges]
        pk = make_prior_knowledge(names, exogenous=exogenous, required=edges)
        return pk, f"custom {items}"
    if (isinstance(prior_knowledge, (list, tuple)) and prior_knowledge and len(names) != 2
            and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in prior_knowledge)):
        raise ValueError(_ambiguous_pair_message(prior_knowledge[0], names)
                         + " A list of pairs is not a prior-knowledge matrix; use {'paths': [[cause, effect], ...]}.")
    try:
        matrix = np.asarray(prior_knowledge, dtype=float)
    except (TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.ndim != 2:
        raise TypeError("prior_knowledge must be 'default', None, a (p, p) lingam matrix, a list of exogenous "
                        "names (and 'effect <- cause' required edges), or a dict with keys "
                        "exogenous/sink/forbidden/required.")
    return make_prior_knowledge(names, matrix=matrix), "custom matrix"
