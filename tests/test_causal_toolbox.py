"""lingam's toolbox through ``fit_lingam``: orders, coefficients, total effects, error-independence p-values and
bootstrap summaries, against the installed ``lingam`` package (the reference)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from napari_causal_lattice.causal import ErrorDependenceWarning, LingamResult, bootstrap_indices, fit_lingam
from napari_causal_lattice.causal.toolbox import error_independence_pvalues, total_effects_from_adjacency

lingam = pytest.importorskip("lingam")
from lingam.bootstrap import BootstrapResult  # noqa: E402
from lingam.utils import calculate_total_effect  # noqa: E402


def random_sem(rng, n, p):
    """Linear non-Gaussian SEM on a random DAG (uniform / exponential / Laplace / cubed-uniform errors), columns
    shuffled so that the causal order is not the column order."""
    B = rng.uniform(0.3, 1.5, (p, p)) * rng.choice([-1.0, 1.0], (p, p))
    B = np.tril(B * (rng.random((p, p)) < 0.4), -1)
    draws = (lambda: rng.uniform(-1, 1, n), lambda: rng.exponential(1.0, n) - 1.0,
             lambda: rng.laplace(0.0, 1.0, n), lambda: rng.uniform(-1, 1, n) ** 3)
    E = np.stack([draws[k]() for k in rng.integers(0, 4, p)], axis=1)
    X = np.linalg.solve(np.eye(p) - B, E.T).T
    return X[:, rng.permutation(p)]


def reference(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lingam.DirectLiNGAM().fit(X)


def ours(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_lingam(X, prior_knowledge=None, standardize=False, **kw)


def lingam_total_effects(model, X):
    p = X.shape[1]
    T = np.zeros((p, p))
    order = list(model.causal_order_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, j in enumerate(order):
            for i in order[a + 1:]:
                T[i, j] = model.estimate_total_effect(X, j, i)
    return T


def test_orders_and_coefficients_identical_to_lingam_on_100_random_sems():
    """Measured: 100/100 identical orders, coefficients within 1e-8 (p 3..8, n 150..1000); ~13 s (lingam's
    fits are most of it), so not marked slow."""
    rng = np.random.default_rng(2022)
    same, worst = 0, 0.0
    for _ in range(100):
        X = random_sem(rng, int(rng.integers(150, 1000)), int(rng.integers(3, 9)))
        model, res = reference(X), ours(X, independence_max_samples=0)
        if np.array_equal(res.causal_order, model.causal_order_):
            same += 1
            worst = max(worst, float(np.abs(res.adjacency - model.adjacency_matrix_).max()))
    assert same == 100, f"identical orders in {same}/100"
    assert worst <= 1e-8


@pytest.mark.parametrize("seed", range(4))
def test_total_effects_and_error_independence_identical_to_lingam(seed):
    rng = np.random.default_rng(100 + seed)
    X = random_sem(rng, 300 + 100 * seed, 5 + seed % 3)
    model, res = reference(X), ours(X)
    assert np.array_equal(res.causal_order, model.causal_order_)
    assert np.allclose(res.total_effects, lingam_total_effects(model, X), rtol=1e-9, atol=1e-12)
    assert np.allclose(res.error_independence_p_values, model.get_error_independence_p_values(X),
                       rtol=1e-9, atol=1e-12)
    j, i = model.causal_order_[0], model.causal_order_[-1]
    assert res.total_effect(i, j) == pytest.approx(lingam_total_effects(model, X)[i, j], rel=1e-9, abs=1e-12)
    table = res.edges()
    row = table.iloc[0]
    assert row["total_effect"] == res.total_effect(row["effect"], row["cause"])
    totals = res.total_effects_table()
    assert len(totals) == np.count_nonzero(res.total_effects)
    assert totals["total_effect"].abs().is_monotonic_decreasing


def test_total_effects_in_units_follow_the_standardisation():
    rng = np.random.default_rng(5)
    X = random_sem(rng, 600, 4) * np.array([1.0, 10.0, 0.1, 3.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        std = fit_lingam(X, prior_knowledge=None)
    raw = ours(X)
    if np.array_equal(std.causal_order, raw.causal_order):
        assert np.allclose(std.total_effects_in_units(), raw.total_effects, rtol=1e-6, atol=1e-9)


def test_bootstrap_summaries_match_lingams_on_the_same_resamples():
    """The same resamples (bootstrap_indices from the seed) fitted by lingam and summarised by BootstrapResult."""
    rng = np.random.default_rng(7)
    X = random_sem(rng, 250, 5)
    n_boot, seed = 25, 11
    res = ours(X, n_bootstrap=n_boot, seed=seed)
    adjacencies, totals = np.zeros((n_boot, 5, 5)), np.zeros((n_boot, 5, 5))
    for k, idx in enumerate(bootstrap_indices(len(X), n_boot, np.random.default_rng(seed))):
        model = reference(X[idx])
        adjacencies[k] = model.adjacency_matrix_
        order = list(model.causal_order_)
        for c, from_ in enumerate(order):
            for to in order[c + 1:]:
                totals[k, to, from_] = calculate_total_effect(model.adjacency_matrix_, from_, to)
    ref = BootstrapResult(adjacencies, totals)
    assert np.allclose(res.bootstrap_adjacency, adjacencies, atol=1e-8)
    assert np.allclose(res.bootstrap_total_effects(), totals, atol=1e-8)
    assert np.array_equal(res.get_probabilities(), ref.get_probabilities())
    assert np.array_equal(res.get_probabilities(0.3), ref.get_probabilities(0.3))
    name = {v: k for k, v in enumerate(res.names)}

    for split in (False, True):
        cdc, cdc_ref = res.get_causal_direction_counts(split_by_causal_effect_sign=split), \
            ref.get_causal_direction_counts(split_by_causal_effect_sign=split)
        assert [name[c] for c in cdc["cause"]] == cdc_ref["from"]
        assert [name[e] for e in cdc["effect"]] == cdc_ref["to"]
        assert cdc["count"].tolist() == cdc_ref["count"]
        if split:
            assert cdc["sign"].tolist() == cdc_ref["sign"]
    assert len(res.get_causal_direction_counts(n_directions=3)) == 3

    dags, dags_ref = res.get_directed_acyclic_graph_counts(), ref.get_directed_acyclic_graph_counts()
    assert dags["count"].tolist() == dags_ref["count"]
    for edges, dag in zip(dags["edges"], dags_ref["dag"]):
        pairs = [tuple(name[v] for v in e.split(" <- ")) for e in edges]
        assert pairs == list(zip(dag["to"], dag["from"]))

    tce, tce_ref = res.get_total_causal_effects(), ref.get_total_causal_effects()
    assert [name[c] for c in tce["cause"]] == tce_ref["from"]
    assert [name[e] for e in tce["effect"]] == tce_ref["to"]
    assert np.allclose(tce["total_effect"], tce_ref["effect"], atol=1e-8)
    assert np.allclose(tce["probability"], tce_ref["probability"])
    assert np.all(tce["ci_low"] <= tce["ci_high"])
    assert np.allclose(tce["full_fit"], res.total_effects[[name[e] for e in tce["effect"]],
                                                          [name[c] for c in tce["cause"]]])

    first, last = int(res.causal_order[0]), int(res.causal_order[-1])
    paths, paths_ref = res.get_paths(first, last), ref.get_paths(first, last)
    assert [list(p) for p in paths["path_index"]] == paths_ref["path"]
    assert np.allclose(paths["coefficient"], paths_ref["effect"], atol=1e-8)
    assert np.allclose(paths["probability"], paths_ref["probability"])
    assert paths["path"].iloc[0][0] == res.names[first]


def test_summaries_survive_save_and_load_and_refuse_without_bootstrap():
    rng = np.random.default_rng(3)
    X = random_sem(rng, 200, 4)
    res = ours(X, n_bootstrap=10, seed=0)
    back = LingamResult.from_state(res.to_state())
    assert np.array_equal(back.total_effects, res.total_effects)
    assert np.array_equal(back.error_independence_p_values, res.error_independence_p_values)
    pd.testing.assert_frame_equal(back.get_total_causal_effects(), res.get_total_causal_effects())
    plain = ours(X)
    with pytest.raises(ValueError, match="n_bootstrap > 0"):
        plain.get_causal_direction_counts()
    with pytest.raises(ValueError, match="greater than 0"):
        res.get_probabilities(min_causal_effect=0)
    old = {k: v for k, v in res.to_state().items() if k not in ("total_effects", "error_independence_p_values")}
    with pytest.raises(ValueError, match="fit it again"):
        LingamResult.from_state(old).total_effect(0, 1)


def test_model_misfit_warns_and_a_good_fit_does_not():
    rng = np.random.default_rng(0)
    n = 800
    z = rng.uniform(-1, 1, n)
    good = np.c_[z, 2 * z + rng.uniform(-1, 1, n)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ErrorDependenceWarning)
        res = fit_lingam(good, prior_knowledge=None)
    assert res.error_independence_summary()["rejected"].sum() == 0
    bad = np.c_[z, z**2 + 0.05 * rng.uniform(-1, 1, n)]  # a non-linear relation: the linear model leaves it in e
    with pytest.warns(ErrorDependenceWarning, match="does not fit"):
        res = fit_lingam(bad, prior_knowledge=None)
    assert res.error_independence_summary()["rejected"].all()


def test_hsic_subsampling_and_path_sums():
    rng = np.random.default_rng(1)
    X = random_sem(rng, 400, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_lingam(X, prior_knowledge=None, independence_max_samples=100)
    assert res.params["independence_rows"] == 100
    B = np.array([[0, 0, 0], [2.0, 0, 0], [0.5, 3.0, 0]])
    assert total_effects_from_adjacency(B)[2, 0] == pytest.approx(0.5 + 3.0 * 2.0)
    P = error_independence_pvalues(X[:50], np.zeros((3, 3)))
    assert P.shape == (3, 3) and np.all(np.diag(P) == 0)
