"""Comparison across images: planted Px <- Py strengths rank correctly with non-overlapping intervals."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from napari_causal_lattice.compare import ComparisonResult, compare_images, order_prior
from napari_causal_lattice.figures import plot_coefficient_vs_group
from napari_causal_lattice.synthetic import synthetic_descriptor_grid

VARIABLES = ["I5", "a", "Px", "Py"]
STRENGTHS = (0.2, 0.5, 0.8)


@pytest.fixture(scope="module")
def images():
    """Two 24 x 24 grids per planted strength k0; the wall is moved out of the field so Px <- Py = k0 everywhere."""
    items, groups = {}, {}
    for k, k0 in enumerate(STRENGTHS):
        for rep in range(2):
            name = f"k0={k0} #{rep}"
            items[name] = synthetic_descriptor_grid(
                (24, 24), seed=10 * k + rep, substrate_rows=0, interface_rows=0, wall_position=-1000.0,
                px_py_coupling=k0,
            ).table
            groups[name] = f"k0={k0}"
    return items, groups


@pytest.fixture(scope="module")
def comparison(images):
    items, groups = images
    return compare_images(items, groups, variables=VARIABLES, n_bootstrap=40, seed=0)


def test_groups_rank_with_non_overlapping_intervals(comparison):
    rows = comparison.edge("Px", "Py")
    assert list(rows["group"]) == [f"k0={k0}" for k0 in STRENGTHS]
    # each group recovers its planted coefficient (pm/pm) within 0.06
    np.testing.assert_allclose(rows["coefficient"], STRENGTHS, atol=0.06)
    assert (rows["ci_low"] <= rows["coefficient"]).all() and (rows["coefficient"] <= rows["ci_high"]).all()
    assert (rows["ci_high"].to_numpy()[:-1] < rows["ci_low"].to_numpy()[1:]).all()
    assert (rows["probability"] > 0.95).all()
    images = comparison.edge("Px", "Py", level="image")
    assert len(images) == 6 and (images["n_samples"] == 576).all()
    # images of weaker groups lie below images of stronger groups
    by_group = images.groupby("group", sort=False)["coefficient"]
    assert (by_group.max().to_numpy()[:-1] < by_group.min().to_numpy()[1:]).all()


def test_tidy_table_layout_and_state_round_trip(comparison):
    t = comparison.table
    assert list(t.columns) == ["level", "image", "group", "effect", "cause", "coefficient", "ci_low", "ci_high",
                               "probability", "n_samples", "flip_rate"]
    p = len(VARIABLES)
    assert len(t) == (6 + 3) * p * (p - 1)
    back = ComparisonResult.from_state(comparison.to_state())
    pd.testing.assert_frame_equal(back.table, t)
    np.testing.assert_array_equal(back.adjacency, comparison.adjacency)
    mid = comparison.edge("Px", "Py").iloc[1]  # the table gives the median of the modal-order resamples,
    full = comparison.group_adjacency("k0=0.5")[2, 3]  # group_adjacency the mean of the full-data fits
    assert mid.ci_low <= full <= mid.ci_high and abs(full - mid.coefficient) < 0.01


def test_same_seed_reproduces(images, comparison):
    items, groups = images
    again = compare_images(items, groups, variables=VARIABLES, n_bootstrap=40, seed=0)
    pd.testing.assert_frame_equal(again.table, comparison.table)


def test_shared_order_fixes_one_order_for_all_images(images):
    items, groups = images
    res = compare_images(items, groups, variables=VARIABLES, n_bootstrap=20, seed=1, shared_order=True)
    order = res.causal_order
    assert res.shared_order and sorted(order) == sorted(VARIABLES)
    assert order.index("Py") < order.index("Px")
    # no edge against the shared order in any image
    pos = np.array([order.index(v) for v in VARIABLES])
    against = pos[None, :] > pos[:, None]
    assert np.all(res.adjacency[:, against] == 0)
    np.testing.assert_allclose(res.edge("Px", "Py")["coefficient"], STRENGTHS, atol=0.06)


def test_order_prior_forbids_paths_against_the_order():
    pk = order_prior([2, 0, 1], 3)
    # order: 2 first, then 0, then 1 -> 0 cannot be caused by 1; 2 cannot be caused by 0 or 1
    assert pk[0, 1] == 0 and pk[2, 0] == 0 and pk[2, 1] == 0
    assert pk[0, 2] == -1 and pk[1, 0] == -1 and pk[1, 2] == -1


def test_bad_inputs_raise_actionable_errors(images):
    items, groups = images
    with pytest.raises(ValueError, match="one label per image"):
        compare_images(items, ["a"], variables=VARIABLES, n_bootstrap=20)
    with pytest.raises(ValueError, match="lacks variable"):
        compare_images(items, groups, variables=["Px", "nope"], n_bootstrap=20)
    with pytest.raises(ValueError, match="n_bootstrap"):
        compare_images(items, groups, variables=VARIABLES, n_bootstrap=2)
    with pytest.raises(TypeError, match="Cells"):
        compare_images([np.zeros(3)], variables=VARIABLES, n_bootstrap=20)


def test_plot_coefficient_vs_group(comparison):
    ax = Figure().add_subplot()
    plot_coefficient_vs_group(ax, comparison, "Px", "Py")
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"k0={k0}" for k0 in STRENGTHS]


def test_precomputed_lingam_results_are_used_as_given(images, comparison):
    from napari_causal_lattice.causal import fit_lingam

    items, groups = images
    results = {name: fit_lingam(table, variables=VARIABLES, n_bootstrap=20, seed=3, standardize=False)
               for name, table in items.items()}
    res = compare_images(results, groups, n_bootstrap=20, seed=0)
    assert res.names == tuple(VARIABLES)
    for name, fit in results.items():
        row = res.edge("Px", "Py", level="image").set_index("image").loc[name]
        boot = fit.bootstrap_adjacency[:, 2, 3]  # every resample keeps the order of Px, Py here (flip rate 0)
        assert row["flip_rate"] == 0 and row["coefficient"] == np.median(boot)
        assert row["ci_low"] <= fit.coefficient("Px", "Py") <= row["ci_high"]
        assert row["n_samples"] == fit.n_samples
    rows = res.edge("Px", "Py")
    assert (rows["ci_high"].to_numpy()[:-1] < rows["ci_low"].to_numpy()[1:]).all()
    with pytest.raises(ValueError, match="shared_order"):
        compare_images(results, groups, n_bootstrap=20, shared_order=True)


def _noisy_images(seed, n=450):
    """The held-out case of issue 16: Px <- Py = 0.2 / 0.5 / 0.8, Py spread 4 pm (sd) measured with 1.5 pm noise."""
    rng = np.random.default_rng(seed)
    items, groups = {}, {}
    for k0 in STRENGTHS:
        for rep in range(2):
            py = rng.uniform(-1, 1, n) * 4 * np.sqrt(3)
            px = k0 * py + rng.uniform(-1, 1, n) * 3
            i5 = 800 + 40 * rng.uniform(-1, 1, n)
            observed = py + rng.normal(0, 1.5, n)
            items[f"{k0} #{rep}"] = pd.DataFrame({"I5": i5, "Px": px, "Py": observed, "sigma_Py": 1.5})
            groups[f"{k0} #{rep}"] = f"k0={k0}"
    return items, groups


def test_modal_order_intervals_and_eiv_recover_planted_strengths_over_8_seeds():
    # measured over these 8 seeds: intervals ~0.05 wide, never overlapping (one seed has an image whose order
    # flips in 51 % of resamples; conditioning on the group's modal order keeps it in place); the uncorrected
    # 0.8 comes out 0.68-0.71 (attenuation 16 / (16 + 2.25) = 0.88) and the corrected intervals held the planted
    # value in 24 of 24 cases; the bound allows 3 misses (95 % intervals: 1.2 expected).
    covered, attenuated = [], []
    for seed in range(8):
        items, groups = _noisy_images(seed)
        rows = compare_images(items, groups, variables=["I5", "Px", "Py"], seed=seed, eiv=True).edge("Px", "Py")
        assert (rows["ci_high"].to_numpy()[:-1] < rows["ci_low"].to_numpy()[1:]).all(), seed
        assert (rows["ci_high_eiv"].to_numpy()[:-1] < rows["ci_low_eiv"].to_numpy()[1:]).all(), seed
        planted = np.array(STRENGTHS)
        covered.extend((rows["ci_low_eiv"].to_numpy() <= planted) & (rows["ci_high_eiv"].to_numpy() >= planted))
        attenuated.append(rows["coefficient"].iloc[-1])
        assert rows["flip_rate"].between(0, 1).all()
    assert sum(covered) >= len(covered) - 3, covered
    assert np.all(np.array(attenuated) < 0.75)  # without the correction the dilution is plain


def test_eiv_needs_uncertainty_columns(images):
    items, groups = images
    with pytest.raises(ValueError, match="sigma_"):
        compare_images(items, groups, variables=VARIABLES, n_bootstrap=20, seed=0, eiv=True)
