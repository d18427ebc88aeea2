"""The kernels' Python twins (causal/_twins.py): what the first fits run on while the warmup children compile.

Kernels without fastmath: twins bit-identical.  The causal-order kernel (fastmath sums) and the HSIC sums
(numpy's exp): the same orders and pruned edges, numbers within 1e-12 relative.
"""

from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import pytest

from napari_causal_lattice import _warmup
from napari_causal_lattice.causal import _twins, confidence, engine, fit_lingam, toolbox


def _sem(rng, n, p=8):
    """A linear non-Gaussian SEM on a random DAG, columns shuffled."""
    B = np.tril(rng.uniform(0.3, 1.5, (p, p)) * rng.choice([-1.0, 1.0], (p, p)) * (rng.random((p, p)) < 0.4), -1)
    E = np.where(rng.random(p) < 0.5, rng.uniform(-1, 1, (n, p)), rng.laplace(0.0, 1.0, (n, p)))
    X = np.linalg.solve(np.eye(p) - B, E.T).T
    return X[:, rng.permutation(p)]


def _both(X, mask=None, prior=None):
    """(orders, B) of the compiled kernels and of their twins."""
    m, n, p = X.shape
    mask = np.ones((m, n), dtype=bool) if mask is None else mask
    orders0, allowed = engine._check_prior(prior, p)
    out = []
    for fit in (engine._fit_batch, engine._twin_fit_batch):
        order, B, bad = np.empty((m, p), dtype=np.int64), np.zeros((m, p, p)), np.zeros(m, dtype=bool)
        fit(np.ascontiguousarray(X), mask, orders0, allowed, order, B, bad)
        out.append((order, B, bad))
    return out


def _close(a, b, rtol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    ok = np.isnan(a) | (np.abs(a - b) <= rtol * np.maximum(1.0, np.abs(a)))
    return same_nan and bool(ok.all())


@pytest.mark.parametrize("standardize", [True, False])
def test_twins_give_the_kernels_orders_edges_and_coefficients(standardize):
    rng = np.random.default_rng(7)
    X = np.stack([_sem(rng, 300) for _ in range(12)])
    if standardize:
        X = (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)
    mask = rng.random(X.shape[:2]) > 0.2
    prior = np.full((8, 8), -1)
    prior[3, :] = 0  # variable 3 has no parents
    np.fill_diagonal(prior, -1)
    for kw in ({}, {"mask": mask}, {"prior": prior}):
        (o1, B1, bad1), (o2, B2, bad2) = _both(X, **kw)
        assert np.array_equal(o1, o2) and np.array_equal(bad1, bad2)
        assert np.array_equal(B1 != 0, B2 != 0)
        assert _close(B1, B2)


def test_twins_flag_degenerate_and_non_finite_datasets_like_the_kernels():
    rng = np.random.default_rng(1)
    X = np.stack([_sem(rng, 100, p=4) for _ in range(3)])
    X[0, :, 2] = X[0, :, 1] * 2.0  # duplicated column
    X[1, 5, 0] = np.nan
    (o1, B1, bad1), (o2, B2, bad2) = _both(X)
    assert np.array_equal(o1, o2) and np.array_equal(bad1, bad2) and bad2.tolist() == [False, True, False]
    assert o2[0, 0] == -1 and np.isnan(B2[0]).all()
    assert _close(B1, B2)


def test_order_tstats_and_lag_sums_twins_are_bit_identical():
    rng = np.random.default_rng(2)
    Y = rng.standard_normal((4, 60, 6))
    S = np.einsum("mni,mnj->mij", Y, Y) / 60
    orders = np.array([rng.permutation(6) for _ in range(4)])
    orders[3] = -1
    for a, b in zip(confidence._order_tstats(S, np.full(4, 60.0), orders),
                    confidence._twins()["_order_tstats"](S, np.full(4, 60.0), orders)):
        assert np.array_equal(a, b, equal_nan=True)
    series = rng.standard_normal((3, 150, 5))
    mask = rng.random((3, 150)) > 0.15
    mask[2] = False
    positions = np.stack(np.meshgrid(np.arange(10), np.arange(15), indexing="ij"), -1).reshape(1, 150, 2) - 4
    positions = np.repeat(positions, 3, axis=0)
    lags = np.array([(a, b) for a in range(3) for b in range(-2, 3) if a > 0 or b > 0], dtype=np.int64)
    for a, b in zip(confidence._lag_sums(series, mask, positions, lags),
                    confidence._lag_sums_numpy(series, mask, positions, lags)):
        assert np.array_equal(a, b)


def test_hsic_twin_agrees_to_rounding():
    rng = np.random.default_rng(3)
    E = rng.standard_normal((300, 5)) ** 3
    widths = rng.uniform(0.2, 2.0, 5)
    for a, b in zip(toolbox._hsic_sums(E, widths), toolbox._hsic_sums_numpy(E, widths, block=64)):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(a).max())


@pytest.fixture
def compiling(monkeypatch):
    """Pretend the warmup children are compiling; record the calls that waited for them instead."""
    waited = []
    monkeypatch.setattr(_warmup, "kernels_compiling", lambda: True)
    monkeypatch.setattr(_warmup, "wait_for_kernels", lambda **kw: waited.append(1))
    return waited


def test_small_fits_run_on_the_twins_while_the_kernels_compile(compiling, monkeypatch):
    rng = np.random.default_rng(4)
    X = _sem(rng, 400)
    order, B = engine.direct_lingam(X)

    def compiled(*args):
        raise AssertionError("the compiled kernels ran while they were compiling")

    monkeypatch.setattr(engine, "_fit_batch", compiled)
    assert compiling == []
    twin_order, twin_B = engine.direct_lingam(X)
    assert np.array_equal(order, twin_order) and _close(B, twin_B)
    with pytest.raises(AssertionError, match="compiled kernels ran"):  # a large batch waits for the kernels
        engine.direct_lingam_batch(np.stack([X] * (_twins.MAX_DATASETS + 1)))
    assert compiling == [1]
    monkeypatch.setitem(engine._twin_fits, "used", engine._TWIN_BUDGET)
    with pytest.raises(AssertionError, match="compiled kernels ran"):  # so does any batch once the budget is spent
        engine.direct_lingam(X)
    assert compiling == [1, 1]


def test_fit_lingam_on_the_twins_gives_the_same_result(monkeypatch):
    from napari_causal_lattice import synthetic_descriptor_grid
    from napari_causal_lattice.lattice import DESCRIPTORS

    grid = synthetic_descriptor_grid((30, 30), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = fit_lingam(grid, n_bootstrap=20, seed=0)
        monkeypatch.setattr(_warmup, "kernels_compiling", lambda: True)
        twin = fit_lingam(grid, n_bootstrap=20, seed=0)
    assert list(compiled.names) == list(DESCRIPTORS) and compiled.params["spatial"]
    for name in ("causal_order", "significant", "bootstrap_orders", "probabilities"):
        assert np.array_equal(getattr(compiled, name), getattr(twin, name)), name
    for name in ("adjacency", "bootstrap_adjacency", "p_values", "total_effects", "error_independence_p_values"):
        assert _close(getattr(compiled, name), getattr(twin, name)), name


def test_twins_call_each_other_not_the_compiled_kernels():
    twins = engine._twins()
    assert twins["_prune_kernel"].__globals__ is twins and twins["_cov"] is engine._cov_numpy
    assert not isinstance(twins["_lars_lasso_path"], type(engine._lars_lasso_path))


def test_busy_compiling_waits_for_loads_but_not_for_compiles():
    code = "import sys, time\nprint({!r}, flush=True)\ntime.sleep({})\n"
    loading = _warmup.Warmup(("a",), command=lambda job: [sys.executable, "-c", code.format("loading", 0.3)])
    assert loading.start()
    assert not loading.busy_compiling() and not loading.running
    compiling = _warmup.Warmup(("a",), command=lambda job: [sys.executable, "-c", code.format("compiling", 30)])
    assert compiling.start()
    assert compiling.busy_compiling() and compiling.running
    stream = io.StringIO()
    compiling.stop()
    assert compiling.wait(30, stream=stream) and stream.getvalue() == ""
