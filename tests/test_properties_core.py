"""Property-based tests of the core chain: random lattices, missing columns, random DAGs, seeding.

Each property draws a few random but realistic inputs (hypothesis, derandomized so CI is repeatable) and
checks what must hold for all of them:

* find_columns on a rotated, noisy synthetic perovskite of random pitch either fails with a ValueError that
  says what to do, or recovers the lattice spacing within 1 % and the rotation within 0.5 deg and every
  true column within 0.5 px (at a usable dose it must not fail);
* columns missing from the image (blanked) or from the column list never crash build_cells: the cells
  that remain are exactly the complete ones and their descriptors equal the planted ones;
* fit_lingam on random linear non-Gaussian DAGs gives a finite, acyclic result, and the same seed gives a
  bit-identical bootstrap;
* sliding_lingam gives bit-identical results for 1 and 2 workers and for repeated runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from napari_causal_lattice.cells import build_cells
from napari_causal_lattice.columns import Columns, find_columns
from napari_causal_lattice.sliding import sliding_lingam
from napari_causal_lattice.synthetic import synthetic_descriptor_grid, synthetic_perovskite

#: Words that every user-facing error message of this chain should contain at least one of: it says what to
#: change, not only what went wrong.
_ACTIONABLE = ("use ", "try", "check", "choose", "pick", "must", "need", "remove", "drop", "delete", "keep", "select",
               "replace", "crop", "fill", "lower", "raise", "set ", "pass ", "give", "rerun", "run ", "open ",
               "export", "install", "expected", "at least", "allowed", "larger", "smaller", "fewer")

_FAST = settings(max_examples=25, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _assert_actionable(err: Exception):
    message = str(err)
    assert len(message) > 20, f"error message too short to act on: {message!r}"
    assert any(word in message.lower() for word in _ACTIONABLE), f"error message says nothing to do: {message!r}"


def _sample(seed, rotation, pitch, dose, shape):
    return synthetic_perovskite(seed=seed, shape_cells=shape, rotation=rotation, pitch=pitch, dose=dose,
                                sigma_a=0.14 * pitch, sigma_b=0.12 * pitch)


def _lattices(min_dose: float):
    """Random synthetic perovskites: rotation, pitch (px), dose (counts at an A peak), 5-8 cells a side.

    Rotations stay within +-40 deg: at +-45 deg both lattice vectors are equally close to image +x, so which
    one is called v1 ("a", the Px direction) is a tie and the planted and measured frames may differ by 90 deg.
    """
    return st.fixed_dictionaries({
        "seed": st.integers(0, 2**16),
        "rotation": st.floats(-40.0, 40.0),
        "pitch": st.floats(14.0, 26.0),
        "dose": st.floats(min_dose, 1000.0),
        "shape": st.tuples(st.integers(5, 8), st.integers(5, 8)),
    })


@_FAST
@given(_lattices(20.0))
def test_find_columns_recovers_random_lattices(case):
    """Spacing and rotation recovered; at dose >= 100 every true column and no spurious one.

    Below dose 100 (B peaks a few noise levels high) a clear ValueError is acceptable.
    """
    sample = _sample(**case)
    truth = sample.truth
    clean = case["dose"] >= 100
    try:
        cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    except ValueError as err:
        assert not clean, f"find_columns failed on a clean image (dose {case['dose']:.0f}): {err}"
        _assert_actionable(err)
        return
    # measured on this generator: spacing error < 0.2 %, rotation < 0.07 deg, columns < 0.45 px at dose >= 100
    spacings = np.array(cols.lattice.spacings)
    np.testing.assert_allclose(spacings, case["pitch"], rtol=0.005 if clean else 0.02)
    turn = (cols.lattice.rotation - truth.lattice.rotation + 45.0) % 90.0 - 45.0
    assert abs(turn) < (0.25 if clean else 1.0)
    if not clean:
        return
    for true_yx, found in ((truth.a_positions, cols.a), (truth.b_positions, cols.b)):
        distance, _ = cKDTree(cols.positions[found]).query(true_yx)
        assert np.all(distance < 0.6), f"a true column was missed or misplaced by {distance.max():.2f} px"
        spurious, _ = cKDTree(true_yx).query(cols.positions[found])
        assert np.all(spurious < 0.6), f"{np.sum(spurious >= 0.6)} columns found where there is none"


@_FAST
@given(st.sampled_from(["noise", "poisson", "constant", "gradient", "stripes", "nan", "tiny", "stack"]),
       st.integers(0, 2**16), st.integers(1, 200), st.integers(1, 200))
def test_find_columns_without_a_lattice_raises_clear_errors(kind, seed, ny, nx):
    """Images with no atom lattice (noise, flat, ramps, stripes, NaN, tiny, stacks): a clear error, no result."""
    rng = np.random.default_rng(seed)
    shape = (ny, nx)
    image = {
        "noise": lambda: rng.normal(10.0, 2.0, shape),
        "poisson": lambda: rng.poisson(5.0, shape).astype(float),
        "constant": lambda: np.full(shape, 3.0),
        "gradient": lambda: np.add.outer(np.arange(ny, dtype=float), rng.uniform(0, 2) * np.arange(nx)),
        "stripes": lambda: np.sin(np.arange(nx) / rng.uniform(1.5, 6.0))[None, :].repeat(ny, axis=0),
        "nan": lambda: np.where(rng.random(shape) < 0.01, np.nan, rng.normal(10.0, 2.0, shape)),
        "tiny": lambda: rng.normal(size=(min(ny, 6), min(nx, 6))),
        "stack": lambda: rng.normal(size=(3,) + shape),
    }[kind]()
    with pytest.raises((ValueError, TypeError)) as info:
        find_columns(image)
    _assert_actionable(info.value)


def _remove_columns(sample, which):
    """Subtract the planted Gaussians of the A columns ``which`` from the image: vacancies (noise stays)."""
    truth = sample.truth
    sigma = sample.params["sigma_a"]
    yy, xx = np.indices(sample.image.shape)
    out = sample.image.copy()
    for (cy, cx), amplitude in zip(truth.a_positions[which], truth.a_intensity[which]):
        out -= amplitude * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return out


@_FAST
@given(_lattices(100.0), st.integers(1, 6), st.randoms(use_true_random=False))
def test_missing_columns_in_image_drop_their_cells(case, n_missing, rnd):
    """Vacancies (A columns removed from the image): no crash; the remaining cells are exactly the complete ones
    and carry the planted descriptors."""
    sample = _sample(**case)
    truth = sample.truth
    missing = np.array(rnd.sample(range(len(truth.a_positions)), n_missing))
    image = _remove_columns(sample, missing)
    try:
        # the neighbour-outlier gate is left out: it is not about vacancies, and it flags correctly measured cells
        # whose planted P differs from their neighbours' (see test_outlier_gate_keeps_a_correctly_measured_cell)
        cells = build_cells(find_columns(image, pixel_size=sample.pixel_size), outlier_threshold=np.inf)
    except ValueError as err:
        _assert_actionable(err)
        return
    _check_cells_against_truth(cells, truth, missing_a=truth.a_positions[missing])


def _check_cells_against_truth(cells, truth, *, missing_a):
    ni, nj = truth.grid_shape
    b_true = truth.b_positions
    distance, index = cKDTree(b_true).query(cells.table[["y", "x"]].to_numpy())
    assert np.all(distance < 0.25 * truth.cell_lattice.spacings[0]), "a cell sits on no true B column"
    assert len(np.unique(index)) == len(index), "two cells claim the same B column"
    # a true cell is lost exactly when one of its 4 corners is missing
    if len(missing_a):
        _, gone = cKDTree(truth.a_positions).query(missing_a)
        corner_grid = truth.a_grid[gone]
        lost = np.zeros((ni, nj), bool)
        for di in (0, -1):
            for dj in (0, -1):
                ij = corner_grid + [di, dj]
                ok = (ij[:, 0] >= 0) & (ij[:, 0] < ni) & (ij[:, 1] >= 0) & (ij[:, 1] < nj)
                lost[ij[ok, 0], ij[ok, 1]] = True
        expected = int(ni * nj - lost.sum())
    else:
        expected = ni * nj
    assert len(cells) == expected
    planted = truth.descriptors.iloc[index]
    # refined positions are good to ~0.15 px rms (0.7 px worst) at dose >= 100, next to a vacancy included
    for name in ("a", "b", "Px", "Py"):
        error = (cells.table[name].to_numpy() - planted[name].to_numpy()) / truth.pixel_size
        assert np.sqrt(np.mean(error**2)) < 0.3 and np.abs(error).max() < 1.0, f"{name} off by {error} px"


def test_outlier_gate_keeps_a_correctly_measured_cell():
    """The case hypothesis found, where the outlier gate flagged a cell measured within 1.1 pm of truth (its planted
    Px differs from its neighbours'); it passes since the neighbour-aware fit, but the gate itself still compares a
    cell with its neighbours, so sharp real structure (a wall) can be flagged: issue 21 notes."""
    # the example hypothesis found for test_missing_columns_in_image_drop_their_cells (no vacancy needed)
    sample = _sample(seed=380, rotation=-40.0, pitch=22.062724591834574, dose=157.609375, shape=(8, 8))
    cells = build_cells(find_columns(sample.image, pixel_size=sample.pixel_size))
    assert cells.flag_counts() == {}


@_FAST
@given(_lattices(100.0), st.floats(0.0, 0.25), st.randoms(use_true_random=False))
def test_columns_removed_from_list_never_crash_build_cells(case, fraction, rnd):
    """Deleting random columns (as a user would by hand) leaves only complete cells, or a clear error."""
    sample = _sample(**case)
    cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    keep = np.array([rnd.random() >= fraction for _ in range(len(cols))])
    kept = Columns(positions=cols.positions[keep], sublattice=cols.sublattice[keep],
                   intensity=cols.intensity[keep], width=cols.width[keep], quality=cols.quality[keep],
                   lattice=cols.lattice, pixel_size=cols.pixel_size, image_shape=cols.image_shape)
    try:
        cells = build_cells(kept)
    except ValueError as err:
        _assert_actionable(err)
        return
    corners = kept.positions[cells.corners]
    b = kept.positions[cells.b_index]
    assert np.all(kept.sublattice[cells.corners] == "A") and np.all(kept.sublattice[cells.b_index] == "B")
    # every B lies inside its own 4 corners, and the corners are one lattice step apart
    assert np.all(np.linalg.norm(b - corners.mean(axis=1), axis=1) < 0.25 * case["pitch"])
    edge = np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1)
    np.testing.assert_allclose(edge, case["pitch"], rtol=0.1)
    assert np.all(np.isfinite(cells.table[["a", "b", "alpha", "Vol", "Px", "Py"]].to_numpy()))


def _random_dag_data(rng, p, n):
    """(n, p) samples of a random linear DAG with uniform / Laplace / exponential noise; B[i, j] = j -> i."""
    order = rng.permutation(p)
    B = np.zeros((p, p))
    for a in range(1, p):
        for b in range(a):
            if rng.random() < 0.4:
                B[order[a], order[b]] = rng.choice([-1, 1]) * rng.uniform(0.5, 2.0)
    kinds = rng.integers(0, 3, p)
    noise = np.column_stack([
        rng.uniform(-1, 1, n) if k == 0 else rng.laplace(0, 1, n) if k == 1 else rng.exponential(1, n) - 1
        for k in kinds
    ])
    X = np.zeros((n, p))
    for v in order:
        X[:, v] = X @ B[v] + noise[:, v]
    return X


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(0, 2**31), st.integers(2, 8), st.integers(40, 600))
def test_fit_lingam_random_dags_finite_and_seeded(seed, p, n):
    """Random DAGs: finite acyclic adjacency, valid order; same seed -> bit-identical bootstrap."""
    from napari_causal_lattice.causal import fit_lingam

    rng = np.random.default_rng(seed)
    X = _random_dag_data(rng, p, n)
    first = fit_lingam(X, n_bootstrap=5, seed=seed, prior_knowledge=None)
    again = fit_lingam(X, n_bootstrap=5, seed=seed, prior_knowledge=None)
    B = np.asarray(first.adjacency)
    assert B.shape == (p, p) and np.all(np.isfinite(B))
    assert sorted(np.asarray(first.causal_order).tolist()) == list(range(p))
    position = np.argsort(first.causal_order)
    cause, effect = np.nonzero(B.T)
    assert np.all(position[cause] < position[effect]), "an edge goes against the causal order"
    assert np.all((first.probabilities >= 0) & (first.probabilities <= 1))
    np.testing.assert_array_equal(first.adjacency, again.adjacency)
    np.testing.assert_array_equal(first.bootstrap_adjacency, again.bootstrap_adjacency)
    np.testing.assert_array_equal(first.probabilities, again.probabilities)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.integers(2, 6), st.integers(1, 9), st.sampled_from(["constant", "duplicate", "all_nan", "too_few"]))
def test_fit_lingam_bad_tables_raise_clear_errors(p, n_extra, defect):
    """Too few rows, constant or duplicate columns, a column of NaN: a ValueError that says what to do."""
    from napari_causal_lattice.causal import fit_lingam

    rng = np.random.default_rng(n_extra)
    X = rng.uniform(-1, 1, (p + 2 + 10 * n_extra, p))
    if defect == "constant":
        X[:, -1] = 3.0
    elif defect == "duplicate":
        X[:, -1] = 2 * X[:, 0]
    elif defect == "all_nan":
        X[:, 0] = np.nan
    else:
        X = X[: min(n_extra, p + 1)]
    with pytest.raises(ValueError) as info:
        fit_lingam(X, prior_knowledge=None)
    _assert_actionable(info.value)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(st.integers(0, 2**16), st.lists(st.tuples(st.integers(0, 59), st.integers(0, 2)), max_size=8))
def test_fit_lingam_drops_and_counts_nan_rows(seed, holes):
    """NaN / inf cells drop their rows (counted in n_dropped); the fit equals the fit without those rows."""
    from napari_causal_lattice.causal import fit_lingam

    X = _random_dag_data(np.random.default_rng(seed), 3, 60)
    holed = X.copy()
    for row, column in holes:
        holed[row, column] = np.nan if (row + column) % 2 else np.inf
    bad = sorted({row for row, _ in holes})
    result = fit_lingam(holed, prior_knowledge=None)
    assert result.n_dropped == len(bad) and result.n_samples == 60 - len(bad)
    clean = fit_lingam(np.delete(X, bad, axis=0), prior_knowledge=None)
    np.testing.assert_array_equal(result.adjacency, clean.adjacency)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(st.integers(0, 2**16), st.integers(10, 18), st.integers(5, 8), st.integers(0, 4))
def test_sliding_lingam_identical_across_workers_and_runs(seed, size, window, n_bootstrap):
    grid = synthetic_descriptor_grid((size, size + 2), seed=seed)
    kwargs = dict(window=window, n_bootstrap=n_bootstrap, seed=seed)
    one = sliding_lingam(grid.table, workers=1, **kwargs)
    two = sliding_lingam(grid.table, workers=2, **kwargs)
    again = sliding_lingam(grid.table, workers=1, **kwargs)
    for other in (two, again):
        np.testing.assert_array_equal(one.adjacency, other.adjacency)
        np.testing.assert_array_equal(one.orders, other.orders)
        if n_bootstrap:
            np.testing.assert_array_equal(one.probabilities, other.probabilities)
    fitted = one.fitted
    assert fitted.any()
    assert np.all(np.isfinite(one.adjacency[fitted]))
    assert np.all(np.isnan(one.adjacency[~fitted]))
