"""PCA of the windowed adjacency: the first loading map separates the two planted ferroelectric domains."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causal_lattice.pca import AdjacencyPCA, adjacency_pca
from napari_causal_lattice.sliding import SlidingResult, sliding_lingam
from napari_causal_lattice.synthetic import synthetic_descriptor_grid

WINDOW, STRIDE = 16, 8


@pytest.fixture(scope="module")
def grid():
    return synthetic_descriptor_grid((64, 72), seed=4, substrate_rows=0, interface_rows=16)


@pytest.fixture(scope="module")
def sliding(grid):
    return sliding_lingam(grid, window=WINDOW, n_bootstrap=4, seed=1)


def domain_of_windows(grid, result):
    """(ny, nx) region label of windows lying fully in one region, -1 for mixed windows."""
    out = np.full(result.shape, -1)
    for ky, kx in np.ndindex(result.shape):
        block = grid.region[ky * STRIDE : ky * STRIDE + WINDOW, kx * STRIDE : kx * STRIDE + WINDOW]
        if np.all(block == block[0, 0]):
            out[ky, kx] = block[0, 0]
    return out


def test_first_loading_separates_domains(grid, sliding):
    pca = adjacency_pca(sliding, 4)
    labels = domain_of_windows(grid, sliding)
    first = pca.loadings[0]
    minus, plus = first[labels == 0], first[labels == 1]
    assert minus.size >= 8 and plus.size >= 8
    spread = max(minus.std(), plus.std())
    assert abs(minus.mean() - plus.mean()) > 2 * spread
    # rank-based: every window of one domain scores beyond every window of the other (AUC = 1 > 0.95)
    auc = np.mean(minus[:, None] < plus[None, :])
    assert max(auc, 1 - auc) > 0.95
    # the component that does it is the Px <- Py coupling
    names = list(pca.names)
    comp = np.abs(pca.components[0])
    assert np.unravel_index(np.argmax(comp), comp.shape) == (names.index("Px"), names.index("Py"))


def test_components_are_orthonormal_and_ranked(sliding):
    pca = adjacency_pca(sliding, 5)
    flat = pca.components.reshape(5, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(5), atol=1e-10)
    ratio = pca.explained_variance_ratio
    assert np.all(np.diff(ratio) <= 1e-12) and 0 < ratio.sum() <= 1 + 1e-12
    # scores reproduce the projection of each window's centred matrix
    fitted = sliding.fitted
    centred = sliding.adjacency[fitted].reshape(fitted.sum(), -1) - pca.mean.reshape(-1)
    np.testing.assert_allclose(pca.loadings[:, fitted].T, centred @ flat.T, atol=1e-10)
    assert pca.lattice is sliding.lattice and pca.loadings.shape == (5,) + sliding.shape


def test_skipped_windows_are_nan_and_other_uses(grid):
    table = grid.table[~((grid.table.i < 16) & (grid.table.j < 16))]
    res = sliding_lingam(table, window=WINDOW, n_bootstrap=3, seed=0)
    assert not res.fitted[0, 0]
    for use in ("adjacency", "abs_adjacency", "probabilities"):
        pca = adjacency_pca(res, 2, use=use)
        assert np.isnan(pca.loadings[:, 0, 0]).all()
        assert np.isfinite(pca.loadings[:, res.fitted]).all()
        assert pca.use == use
    np.testing.assert_allclose(adjacency_pca(res, 1, use="probabilities").mean, np.nanmean(res.probabilities, (0, 1)))


def test_state_round_trip(sliding):
    pca = adjacency_pca(sliding, 3)
    again = AdjacencyPCA.from_state(pca.to_state())
    for name in ("components", "loadings", "explained_variance_ratio", "mean"):
        assert np.array_equal(getattr(again, name), getattr(pca, name), equal_nan=True), name
    assert again.names == pca.names and again.use == pca.use and again.provenance == pca.provenance
    np.testing.assert_array_equal(again.lattice.affine, pca.lattice.affine)


def test_bad_input(grid, sliding):
    with pytest.raises(ValueError, match="n_components must be at least 1"):
        adjacency_pca(sliding, 0)
    with pytest.raises(ValueError, match="n_components must be between 1 and"):
        adjacency_pca(sliding, 65)
    with pytest.raises(ValueError, match="use must be one of"):
        adjacency_pca(sliding, 2, use="total_effects")
    with pytest.raises(TypeError, match="SlidingResult"):
        adjacency_pca(sliding.adjacency, 2)
    no_boot = sliding_lingam(grid.table[grid.table.i < 32], window=WINDOW)
    with pytest.raises(ValueError, match="no bootstrap probabilities"):
        adjacency_pca(no_boot, 2, use="probabilities")
    single = sliding_lingam(grid.table[(grid.table.i < 16) & (grid.table.j < 16)], window=16)
    with pytest.raises(ValueError, match="at least 2 fitted windows"):
        adjacency_pca(single, 1)


def test_a_single_wild_window_is_an_outlier_not_a_component(sliding):
    clean = adjacency_pca(sliding, 2)
    assert not clean.outliers.any()
    adjacency = sliding.adjacency.copy()
    adjacency[2, 3] *= 40.0  # one window gone wrong (e.g. a bad fit over a defect)
    wild = SlidingResult.from_state({**sliding.to_state(), "adjacency": adjacency})
    robust = adjacency_pca(wild, 2)
    assert robust.outliers[2, 3] and robust.outliers.sum() == 1
    without = np.zeros(sliding.shape, dtype=bool)
    without[2, 3] = True
    reference = adjacency_pca(sliding, 2, exclude=without)  # the clean windows only
    np.testing.assert_allclose(robust.components, reference.components, atol=1e-9)
    assert abs(np.sum(robust.components[0] * clean.components[0])) > 0.99
    assert np.isfinite(robust.loadings[:, 2, 3]).all()
    plain = adjacency_pca(wild, 2, outlier_factor=None)
    assert abs(np.sum(plain.components[0] * clean.components[0])) < 0.9  # without it the outlier takes PC 1


def test_significant_only_and_exclude(sliding):
    pca = adjacency_pca(sliding, 2, significant_only=True)
    assert pca.significant_only and pca.provenance["params"]["significant_only"]
    never = ~sliding.significant[sliding.fitted].any(axis=0)
    assert never.sum() > 30  # most of the 64 elements never pass the test
    assert np.all(np.abs(pca.components[:, never]) < 1e-12)  # so they are never part of a component
    exclude = np.zeros(sliding.shape, dtype=bool)
    exclude[0, 0] = True
    cut = adjacency_pca(sliding, 2, exclude=exclude)
    assert np.isnan(cut.loadings[:, 0, 0]).all() and cut.excluded[0, 0]
    again = AdjacencyPCA.from_state(cut.to_state())
    np.testing.assert_array_equal(again.excluded, cut.excluded)
    with pytest.raises(ValueError, match="exclude must be"):
        adjacency_pca(sliding, 2, exclude=np.zeros((2, 2), dtype=bool))
