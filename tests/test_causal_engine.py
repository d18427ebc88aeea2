"""The batched DirectLiNGAM engine against lingam.DirectLiNGAM (the reference implementation)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_causal_lattice.causal.engine import (
    bootstrap_indices,
    direct_lingam,
    direct_lingam_batch,
    partial_orders,
)

lingam = pytest.importorskip("lingam")


def random_sem(rng, n, p=8, edge_prob=0.4):
    """Linear non-Gaussian SEM on a random DAG; columns shuffled so the order is not the column order."""
    B = rng.uniform(0.3, 1.5, (p, p)) * rng.choice([-1.0, 1.0], (p, p))
    B = np.tril(B * (rng.random((p, p)) < edge_prob), -1)
    kinds = rng.integers(0, 4, p)
    E = np.empty((n, p))
    for k in range(p):
        if kinds[k] == 0:
            E[:, k] = rng.uniform(-1, 1, n)
        elif kinds[k] == 1:
            E[:, k] = rng.exponential(1.0, n) - 1.0
        elif kinds[k] == 2:
            E[:, k] = rng.laplace(0.0, 1.0, n)
        else:
            E[:, k] = rng.uniform(-1, 1, n) ** 3
    X = np.linalg.solve(np.eye(p) - B, E.T).T
    perm = rng.permutation(p)
    return X[:, perm]


def lingam_fit(X, pk=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lingam.DirectLiNGAM(prior_knowledge=pk).fit(X)
    return np.asarray(model.causal_order_), model.adjacency_matrix_


def test_matches_lingam_on_200_random_datasets():
    """>= 99 % identical causal orders; where identical, max |B - B_lingam| <= 1e-6 (p = 8, n 100..5000)."""
    rng = np.random.default_rng(20240607)
    pks = [
        None,
        lingam.utils.make_prior_knowledge(8, exogenous_variables=[0, 1]),
        lingam.utils.make_prior_knowledge(8, sink_variables=[7], paths=[[2, 5]], no_paths=[[6, 3]]),
    ]
    n_same, worst, total = 0, 0.0, 200
    for t in range(total):
        # n log-uniform in [100, 5000], most datasets small to keep lingam's share of the runtime modest
        n = int(round(10 ** rng.uniform(2.0, np.log10(5000) if t % 10 == 0 else 2.9)))
        X = random_sem(rng, n)
        pk = pks[t % 3]
        order_ref, B_ref = lingam_fit(X, pk)
        order, B = direct_lingam(X, prior_knowledge=pk)
        if np.array_equal(order, order_ref):
            n_same += 1
            worst = max(worst, float(np.abs(B - B_ref).max()))
    assert n_same >= 0.99 * total, f"identical orders in {n_same}/{total} datasets"
    assert worst <= 1e-6, f"max |B diff| = {worst:g}"


def test_same_resamples_give_lingams_per_resample_results():
    rng = np.random.default_rng(5)
    X = random_sem(rng, 300)
    idx = bootstrap_indices(len(X), 12, np.random.default_rng(99))
    orders, Bs = direct_lingam_batch(X[idx])
    for k in range(len(idx)):
        order_ref, B_ref = lingam_fit(X[idx[k]])
        assert np.array_equal(orders[k], order_ref)
        np.testing.assert_allclose(Bs[k], B_ref, atol=1e-8)


def test_mask_equals_fitting_the_valid_rows():
    rng = np.random.default_rng(3)
    X = np.stack([random_sem(rng, 250) for _ in range(20)])
    mask = rng.random((20, 250)) < np.linspace(0.2, 1.0, 20)[:, None]
    pk = lingam.utils.make_prior_knowledge(8, exogenous_variables=[4])
    orders, Bs = direct_lingam_batch(X, prior_knowledge=pk, mask=mask)
    for k in range(20):
        o, B = direct_lingam(X[k][mask[k]], prior_knowledge=pk)
        assert np.array_equal(orders[k], o)
        np.testing.assert_allclose(Bs[k], B, rtol=0, atol=1e-12)


def test_results_do_not_depend_on_workers():
    rng = np.random.default_rng(4)
    X = np.stack([random_sem(rng, 120) for _ in range(40)])
    o1, B1 = direct_lingam_batch(X, workers=1)
    o2, B2 = direct_lingam_batch(X, workers=2)
    assert np.array_equal(o1, o2)
    assert np.array_equal(B1, B2)


def test_degenerate_dataset_is_flagged_not_raised():
    rng = np.random.default_rng(6)
    X = np.stack([random_sem(rng, 100, p=3) for _ in range(2)])
    X[1, :, 2] = 2.0 * X[1, :, 0]  # duplicated column -> zero residual variance
    orders, Bs = direct_lingam_batch(X)
    assert np.all(orders[1] == -1) and np.all(np.isnan(Bs[1]))
    assert np.all(orders[0] >= 0) and np.all(np.isfinite(Bs[0]))


def test_bootstrap_indices_seeded():
    a = bootstrap_indices(50, 7, np.random.default_rng(1))
    b = bootstrap_indices(50, 7, np.random.default_rng(1))
    assert a.shape == (7, 50) and a.min() >= 0 and a.max() < 50
    assert np.array_equal(a, b)
    assert not np.array_equal(a, bootstrap_indices(50, 7, np.random.default_rng(2)))
    with pytest.raises(TypeError, match="Generator"):
        bootstrap_indices(50, 7, 1)


def test_partial_orders_match_lingam_rules():
    pk = lingam.utils.make_prior_knowledge(4, exogenous_variables=[0, 1], paths=[[2, 3]])
    orders = {tuple(o) for o in partial_orders(np.where(pk < 0, np.nan, pk))}
    # both exogenous come before every other variable, not before each other; path 2 -> 3
    assert (0, 2) in orders and (1, 3) in orders and (2, 3) in orders
    assert (0, 1) not in orders and (1, 0) not in orders


def test_engine_input_errors():
    with pytest.raises(ValueError, match="more than p \\+ 1"):
        direct_lingam_batch(np.zeros((1, 5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        X = np.random.default_rng(0).random((1, 20, 3))
        X[0, 3, 1] = np.nan
        direct_lingam_batch(X)
    with pytest.raises(ValueError, match="shape"):
        direct_lingam_batch(np.zeros((20, 3)))
    with pytest.raises(ValueError, match="cyclic"):
        pk = -np.ones((3, 3))
        pk[1, 0] = pk[2, 1] = pk[0, 2] = 1
        direct_lingam_batch(np.random.default_rng(0).random((1, 20, 3)), prior_knowledge=pk)


def test_adaptive_lasso_matches_lingam_including_lasso_drops():
    """Our LARS/BIC pruning against lingam.utils.predict_adaptive_lasso on correlated designs."""
    from napari_causal_lattice.causal.engine import _lars_lasso_path, _prune_kernel

    from sklearn.linear_model import lars_path

    rng = np.random.default_rng(8)
    worst, drops = 0.0, 0
    for _ in range(150):
        q = int(rng.integers(1, 8))
        n = int(rng.integers(q + 3, 300))
        mix = rng.normal(size=(q + 1, q + 1)) * rng.uniform(0, 1.5)
        X = rng.laplace(size=(n, q + 1)) @ (np.eye(q + 1) + mix)
        X[:, -1] += X[:, :-1] @ (rng.normal(size=q) * (rng.random(q) < 0.5))
        pred = np.arange(q)
        ref = lingam.utils.predict_adaptive_lasso(X, list(pred), q)
        S = np.cov(X, rowvar=False, bias=True)
        allowed = np.zeros((q + 1, q + 1), dtype=bool)
        allowed[q, :q] = True  # only the last variable is fitted, on all the others
        B = np.zeros((1, q + 1, q + 1))
        _prune_kernel(S[None], np.array([n]), np.arange(q + 1)[None], allowed, B)
        ours = B[0, q, :q]
        worst = max(worst, float(np.abs(ours - ref).max()))
        # the LARS path itself, on a Gram matrix where variables leave the active set
        Xc = X[:, :q] - X[:, :q].mean(0)
        yc = X[:, q] - X[:, q].mean()
        _, _, ref_path = lars_path(Xc, yc, Gram=Xc.T @ Xc, method="lasso")
        path = _lars_lasso_path(Xc.T @ Xc, Xc.T @ yc, float(n))
        assert path.shape == ref_path.T.shape
        np.testing.assert_allclose(path, ref_path.T, atol=1e-8 * max(1.0, np.abs(ref_path).max()))
        drops += path.shape[0] > q + 1
    assert worst <= 1e-8
    assert drops > 0  # the drop branch was exercised


def test_bootstrap_indices_can_be_drawn_in_chunks():
    rng = np.random.default_rng(4)
    chunks = np.concatenate([bootstrap_indices(37, 3, rng), bootstrap_indices(37, 4, rng)])
    assert np.array_equal(chunks, bootstrap_indices(37, 7, np.random.default_rng(4)))


def test_permutation_equivariance_and_unit_covariance():
    """Relabelling variables relabels the answer; changing a variable's unit rescales its couplings."""
    rng = np.random.default_rng(12)
    for _ in range(10):
        X = random_sem(rng, 500)
        order, B = direct_lingam(X)
        perm = rng.permutation(8)
        order_p, B_p = direct_lingam(X[:, perm])
        assert np.array_equal(perm[order_p], order)
        np.testing.assert_allclose(B_p, B[np.ix_(perm, perm)], atol=1e-9)
        scale = rng.uniform(0.01, 100.0, 8)  # e.g. pm -> nm, counts -> kcounts
        order_s, B_s = direct_lingam(X * scale)
        assert np.array_equal(order_s, order)
        np.testing.assert_allclose(B_s, B * scale[:, None] / scale[None, :], rtol=1e-8, atol=1e-12)


def test_both_methods_give_the_same_orders_and_coefficients_on_random_dags():
    from napari_causal_lattice.causal.methods import EngineMethod, LingamMethod, resolve_method

    rng = np.random.default_rng(11)
    X = np.stack([random_sem(rng, 300) for _ in range(12)])
    mask = rng.random((12, 300)) < 0.9
    o_engine, b_engine = EngineMethod().fit_batch(X, mask, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        o_lingam, b_lingam = LingamMethod().fit_batch(X, mask, None)
    np.testing.assert_array_equal(o_engine, o_lingam)
    np.testing.assert_allclose(b_engine, b_lingam, atol=1e-8)
    assert isinstance(resolve_method(None), EngineMethod) and isinstance(resolve_method("lingam"), LingamMethod)


def test_answers_match_the_frozen_baseline():
    """Orders, B, p-values and bootstrap probabilities equal those of tests/data/engine_baseline.npz (written before
    the kernels were restructured for a shorter compile; see tests/data/make_engine_baseline.py).

    Whole-number arrays (orders, counts) must be equal bit for bit. Real-valued arrays pass through BLAS, whose
    kernels (and so the last bits of a sum) depend on the CPU: on an AMD EPYC host the frozen B differs by up to
    1.9e-14 and the bootstrap coefficients by up to 2.3e-11 (2.8e-12 relative) from the host that wrote it, so
    they are held to 1e-10 relative (plus 1e-12 absolute for zeros). Bit-identity on one machine is what
    benchmarks/same_numbers.py checks."""
    import importlib.util
    from pathlib import Path

    here = Path(__file__).with_name("data") / "make_engine_baseline.py"
    spec = importlib.util.spec_from_file_location("make_engine_baseline", here)
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    frozen = np.load(baseline.PATH)
    X, mask, pk = baseline.batch_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the default sample's Vol is near-deterministic (warned elsewhere)
        now = baseline.compute(X, mask, pk, frozen["table"])
    assert sorted(now) == sorted(k for k in frozen.files if k != "table")
    for key, value in now.items():
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.asarray(value).shape == frozen[key].shape, key
            np.testing.assert_allclose(value, frozen[key], rtol=1e-10, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(value, frozen[key], err_msg=key, strict=True)
