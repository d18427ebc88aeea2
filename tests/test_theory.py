"""Closed-form checks of the linearized LGD equations (Eqs. 14-16)."""

import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.figure import Figure

from napari_causal_lattice import theory
from napari_causal_lattice.figures import plot_figure8, plot_figure9


def test_dp2_dp1_limits_far_from_wall_and_at_wall():
    eps, r = 0.5, 0.3
    k_far = -2.0 * (1 - eps)  # 1 - 3 tanh^2 -> -2
    k_wall = 1.0 - eps
    far = theory.dp2_dp1(np.array([-40.0, 40.0]), eps=eps, Lc=2.0, r=r)
    wall = theory.dp2_dp1(0.0, eps=eps, Lc=2.0, r=r)
    np.testing.assert_allclose(far, (k_far * r + 1) / (k_far + r), rtol=1e-12)
    np.testing.assert_allclose(wall, (k_wall * r + 1) / (k_wall + r), rtol=1e-12)


def test_dp2_dp1_even_in_x_and_independent_of_a1():
    x = np.linspace(-5, 5, 201)
    a = theory.dp2_dp1(x, eps=0.2, Lc=1.5, r=-0.4)
    np.testing.assert_allclose(a, a[::-1], rtol=1e-10)
    np.testing.assert_allclose(theory.dp2_dp1(x, eps=0.2, Lc=1.5, r=-0.4, a1=-7.3), a, rtol=1e-10)


def test_dp2_dp1_broadcasts_over_eps_and_r():
    x = np.linspace(-3, 3, 11)
    eps = np.array([0, 0.5, 0.95])[:, None, None]
    out = theory.dp2_dp1(x[None, None], eps=eps, Lc=1, r=np.array([0.1, 2])[None, :, None])
    assert out.shape == (3, 2, 11)
    np.testing.assert_allclose(out[1, 0], theory.dp2_dp1(x, eps=0.5, Lc=1, r=0.1))


def test_dp2_dp1_pole_is_nan_without_warnings():
    # r = 0: pole where 1 - 3 tanh^2(x/Lc) = 0
    x_pole = np.arctanh(1 / np.sqrt(3))
    x = np.array([-x_pole, 0.0, x_pole, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = theory.dp2_dp1(x, eps=0.0, Lc=1.0, r=0.0)
    assert np.isnan(out[0]) and np.isnan(out[2])
    assert np.isfinite(out[[1, 3]]).all()
    # removable singularity: r = +-1 gives the ratio r everywhere
    for r in (1.0, -1.0):
        x_rm = np.arctanh(np.sqrt((1 + r / 1.0) / 3))  # (1 - 3 t^2) = -r with eps = 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            vals = theory.dp2_dp1(np.array([x_rm, 0.3, 5.0]), eps=0.0, Lc=1.0, r=r)
        np.testing.assert_allclose(vals, r, atol=1e-9)


def test_strain_couplings_closed_form_odd_and_limits():
    x = np.linspace(-6, 6, 121)
    eps, P0, Lc = 0.5, 0.6, 2.0
    c = theory.strain_couplings(x, eps=eps, Lc=Lc, Q11=0.05, Q12=-0.02, Q44=0.03, P0=P0)
    ps = P0 * np.sqrt(1 - eps) * np.tanh(x / Lc)
    np.testing.assert_allclose(c["du11/dP1"], 2 * 0.05 * ps)
    np.testing.assert_allclose(c["du12/dP2"], 2 * 0.03 * ps)
    np.testing.assert_allclose(c["du22/dP1"], 2 * -0.02 * ps)
    np.testing.assert_allclose(c["dV/dP1"], 2 * 0.03 * ps)
    for v in c.values():
        np.testing.assert_allclose(v, -v[::-1], atol=1e-15)
    assert c["du11/dP1"][-1] == pytest.approx(2 * 0.05 * P0 * np.sqrt(0.5) * np.tanh(3.0), rel=1e-12)
    assert c["du11/dP1"][60] == 0.0


def test_bad_parameters_raise_actionable_errors():
    with pytest.raises(ValueError, match="Lc"):
        theory.dp2_dp1(0.0, eps=0, Lc=0, r=0.5)
    with pytest.raises(ValueError, match="eps"):
        theory.strain_couplings(0.0, eps=1.5)
    with pytest.raises(ValueError, match="a1"):
        theory.dp2_dp1(0.0, eps=0, Lc=1, r=0.5, a1=0)


def test_figure_curves_reproduce_paper_trends():
    f8 = theory.figure8_curves(r=(0.5,))
    assert f8.values["dP2/dP1"].shape == (3, 1, 601)
    mid = 300
    wall = f8.values["dP2/dP1"][:, 0, mid]
    # at the wall k = 1 - eps: (k r + 1)/(k + r); the maximum at the wall decreases with eps for r = 0.5
    np.testing.assert_allclose(wall, [(1 * 0.5 + 1) / 1.5, (0.25 + 1) / 1.0, (0.025 + 1) / 0.55])
    f9 = theory.figure9_curves()
    for name in theory.STRAIN_COUPLINGS:
        assert f9.values[name].shape == (3, 601)
    # amplitude scales with sqrt(1 - eps)
    far = f9.values["du11/dP1"][:, -1]
    np.testing.assert_allclose(far / far[0], np.sqrt(1 - np.array(theory.PAPER_EPS)), rtol=1e-6)


def test_plot_helpers_draw_without_pyplot():
    fig = Figure()
    ax = fig.add_subplot(1, 5, 1)
    plot_figure8(ax, theory.figure8_curves(), eps_index=1)
    assert len(ax.lines) >= 5
    low, high = ax.get_ylim()
    assert np.isfinite([low, high]).all() and high <= 10.0
    axes = [fig.add_subplot(1, 5, k) for k in range(2, 6)]
    plot_figure9(axes, theory.figure9_curves())
    assert all(len(a.lines) == 4 for a in axes)
