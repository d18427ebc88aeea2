"""Linearized Landau-Ginzburg-Devonshire (LGD) theory of the couplings near a 180 degree domain wall.

Implements Eqs. 14-16 of Barakati et al., "Mapping causal patterns in crystalline solids"
(the paper's LGD section, Figs. 8-9).  ``x`` is the signed distance from the wall plane (any length
unit, the same as ``Lc``), ``eps`` the dimensionless doping factor (0 at the morphotropic phase
boundary, -> 1 towards the antiferroelectric phase), ``r = e2*/e1*`` the ratio of the two
non-observable local fields.

* Eq. 14, spontaneous polarization across the wall: ``P_S(x) = P0 sqrt(1 - eps) tanh(x / Lc)``.
* Eq. 15, polarization ratio: ``dP2/dP1 = (a11 r - a12) / (a11 - a12 r)`` with
  ``a11 = 2 a1 (1 - eps)(1 - 3 tanh^2(x / Lc))`` and ``a12 = -2 a1`` (the paper's choice for Fig. 8).
* Eq. 16, strain-polarization couplings: ``du11/dP1 = 2 Q11 P_S``, ``du12/dP2 = 2 Q44 P_S``,
  ``du22/dP1 = 2 Q12 P_S``, ``dV/dP1 = 2 (Q11 + Q12) P_S`` (``V`` the projected volume relative to
  ``a0 b0``), with ``Q`` in m^4/C^2 and ``P`` in C/m^2, so the couplings are in m^2/C.

Default material constants are order-of-magnitude values for rhombohedral BiFeO3 of the kind used in
phase-field and LGD work (pseudocubic frame, Voigt notation): ``Q11 = 0.032``, ``Q12 = -0.016``,
``Q44 = 0.020`` m^4/C^2 and ``P0 = 0.52`` C/m^2 (one pseudocubic component of the [111] polarization).
They were not checked against the paper's supplementary Table SI; reported values differ between sources
by up to a factor of two (and in the Voigt factor of ``Q44``).  Pass your own for quantitative work: the
shapes of Figs. 8-9 do not depend on them, only the amplitudes do.

The scalar parameters (``eps``, ``Lc``, ``r``, ``Q11``, ``Q12``, ``Q44``, ``P0``) are one
:class:`~napari_causal_lattice.options.LGDOptions` (``options=``; the Theory dock's form); ``eps`` and ``r`` may
also be arrays.  Nothing here draws: :func:`napari_causal_lattice.figures.plot_figure8` and ``plot_figure9`` draw
the curves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._moved import moved
from .options import LGDOptions, takes_options

#: Electrostriction coefficient Q11 of BiFeO3 in m^4/C^2 (typical magnitude, see above).
Q11_BFO = 0.032
#: Electrostriction coefficient Q12 of BiFeO3 in m^4/C^2 (typical magnitude, see above).
Q12_BFO = -0.016
#: Electrostriction coefficient Q44 of BiFeO3 in m^4/C^2 (typical magnitude, Voigt notation).
Q44_BFO = 0.020
#: Spontaneous polarization of pure BiFeO3 in C/m^2 (one pseudocubic component).
P0_BFO = 0.52

#: The doping factors plotted in Figs. 8 and 9 of the paper.
PAPER_EPS = (0.0, 0.5, 0.95)

#: Names of the Eq. 16 couplings, in the order of Fig. 9 (a)-(d).
STRAIN_COUPLINGS = ("du11/dP1", "du12/dP2", "du22/dP1", "dV/dP1")

_POLE_TOL = 1e-12

#: Drawing helpers that lived here (old name -> new module).
_MOVED = dict.fromkeys(("plot_figure8", "plot_figure9"), "napari_causal_lattice.figures")


def _positive(value, name: str, what: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number ({what}), got {value!r}")
    return value


def _eps_array(eps) -> np.ndarray:
    eps = np.asarray(eps, dtype=float)
    if not np.all(np.isfinite(eps)) or np.any(eps > 1.0):
        raise ValueError(
            "eps (the doping factor of Eq. 9) must be finite and <= 1: eps = 1 is the antiferroelectric limit "
            f"where the spontaneous polarization vanishes; got {eps!r}"
        )
    return eps


def _x_array(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("x (distance from the wall) must be finite; remove NaN/inf distances first")
    return x


@takes_options(LGDOptions, arrays=("eps",))
def spontaneous_polarization(x, *, eps=0.0, Lc=1.0, P0=P0_BFO) -> np.ndarray:
    """Eq. 14: spontaneous polarization ``P_S(x) = P0 sqrt(1 - eps) tanh(x / Lc)`` across a 180 degree wall.

    Parameters
    ----------
    x : array_like
        Signed distance from the wall plane (same length unit as ``Lc``).
    eps : float or array_like
        Doping factor (dimensionless, <= 1); broadcast against ``x``.
    Lc : float
        Correlation length (wall half-width) ``L_C^P``, same unit as ``x``.
    P0 : float
        Bulk spontaneous polarization of the undoped material in C/m^2.

    options : LGDOptions, optional
        The scalar parameters at once (:class:`~napari_causal_lattice.options.LGDOptions`, the Theory dock's
        form); keywords given as well replace its fields.

    Returns
    -------
    ndarray
        ``P_S`` in C/m^2, shape ``broadcast(x, eps)``.
    """
    x = _x_array(x)
    eps = _eps_array(eps)
    Lc = _positive(Lc, "Lc", "the correlation length, in the unit of x")
    return float(P0) * np.sqrt(1.0 - eps) * np.tanh(x / Lc)


@takes_options(LGDOptions, arrays=("eps", "r"))
def dp2_dp1(x, *, eps, Lc, r, a1=-1.0) -> np.ndarray:
    """Eq. 15: ratio ``dP2/dP1`` of the polarization fluctuations across a 180 degree wall.

    ``dP2/dP1 = (a11 r - a12) / (a11 - a12 r)`` with ``a11 = 2 a1 (1 - eps)(1 - 3 tanh^2(x / Lc))`` and
    ``a12 = -2 a1`` (Fig. 8 of the paper).  ``a1`` cancels from the ratio; it is kept so the stiffness
    terms read as in the paper (``a1 < 0`` in the ferroelectric state).

    Parameters
    ----------
    x : array_like
        Signed distance from the wall plane (same unit as ``Lc``).
    eps : float or array_like
        Doping factor (dimensionless, <= 1).
    Lc : float
        Correlation length ``L_C^P`` (same unit as ``x``).
    r : float or array_like
        Ratio ``e2*/e1*`` of the non-observable local fields (dimensionless).
    a1 : float
        Landau coefficient ``a1`` (any unit; non-zero).

    options : LGDOptions, optional
        The scalar parameters at once (:class:`~napari_causal_lattice.options.LGDOptions`, the Theory dock's
        form); keywords given as well replace its fields.

    Returns
    -------
    ndarray
        Dimensionless ratio, shape ``broadcast(x, eps, r)``.  Where the denominator vanishes
        (``(1 - eps)(1 - 3 tanh^2(x/Lc)) = -r``) the linearized response diverges: the value there is
        NaN (a pole of the linear theory, not a number).  For ``r = +-1`` the pole is removable and the
        ratio equals ``r`` everywhere.  No RuntimeWarning is emitted.

    Examples
    --------
    At the wall ``a11 = 2 a1 (1 - eps)``; far from it ``a11 = -4 a1 (1 - eps)``:

    >>> dp2_dp1([0.0, 50.0], eps=0.5, Lc=2.0, r=0.5).round(4)
    array([ 1.25, -1.  ])
    >>> dp2_dp1(np.arctanh(np.sqrt(1 / 3)), eps=0.0, Lc=1.0, r=0.0)  # on the pole
    array(nan)
    """
    x = _x_array(x)
    eps = _eps_array(eps)
    r = np.asarray(r, dtype=float)
    if not np.all(np.isfinite(r)):
        raise ValueError("r = e2*/e1* must be finite")
    Lc = _positive(Lc, "Lc", "the correlation length, in the unit of x")
    a1 = float(a1)
    if not np.isfinite(a1) or a1 == 0.0:
        raise ValueError("a1 must be a finite non-zero Landau coefficient (negative in the ferroelectric state)")
    t = np.tanh(x / Lc)
    a11 = 2.0 * a1 * (1.0 - eps) * (1.0 - 3.0 * t * t)
    a12 = -2.0 * a1
    num, den = np.broadcast_arrays(a11 * r - a12, a11 - a12 * r)
    r_b = np.broadcast_to(r, num.shape)
    pole = np.abs(den) <= _POLE_TOL * abs(a12)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=~pole)
    removable = pole & (np.abs(num) <= _POLE_TOL * abs(a12)) & (np.abs(np.abs(r_b) - 1.0) <= 1e-9)
    out[removable] = r_b[removable]
    return out


@takes_options(LGDOptions, arrays=("eps",))
def strain_couplings(x, *, eps=0.0, Lc=1.0, Q11=Q11_BFO, Q12=Q12_BFO, Q44=Q44_BFO, P0=P0_BFO) -> dict:
    """Eq. 16: strain-polarization couplings across a 180 degree wall.

    Parameters
    ----------
    x : array_like
        Signed distance from the wall plane (same unit as ``Lc``).
    eps : float or array_like
        Doping factor (dimensionless, <= 1); broadcast against ``x``.
    Lc : float
        Correlation length ``L_C^P`` (same unit as ``x``).
    Q11, Q12, Q44 : float
        Electrostriction coefficients in m^4/C^2 (defaults: BiFeO3, see the module docstring).
    P0 : float
        Bulk spontaneous polarization in C/m^2.

    options : LGDOptions, optional
        The scalar parameters at once (:class:`~napari_causal_lattice.options.LGDOptions`, the Theory dock's
        form); keywords given as well replace its fields.

    Returns
    -------
    dict
        ``"du11/dP1" = 2 Q11 P_S``, ``"du12/dP2" = 2 Q44 P_S``, ``"du22/dP1" = 2 Q12 P_S`` and
        ``"dV/dP1" = 2 (Q11 + Q12) P_S``, each an array in m^2/C of shape ``broadcast(x, eps)``.
        All are odd in ``x`` and change sign at the wall.

    Examples
    --------
    >>> c = strain_couplings([-1e3, 0.0, 1e3], eps=0.0, Lc=1.0, Q11=0.05, P0=0.5)
    >>> c["du11/dP1"].round(4)
    array([-0.05,  0.  ,  0.05])
    """
    ps = spontaneous_polarization(x, eps=eps, Lc=Lc, P0=P0)
    q11, q12, q44 = float(Q11), float(Q12), float(Q44)
    return {
        "du11/dP1": 2.0 * q11 * ps,
        "du12/dP2": 2.0 * q44 * ps,
        "du22/dP1": 2.0 * q12 * ps,
        "dV/dP1": 2.0 * (q11 + q12) * ps,
    }


@dataclass(frozen=True)
class TheoryCurves:
    """Curves of Figs. 8 or 9 on a grid of distances.

    Attributes
    ----------
    x : (n,) array
        Distance from the wall in units of ``Lc`` (``x / Lc``).
    eps : (k,) array
        Doping factors.
    r : (m,) array or None
        Field ratios ``e2*/e1*`` (Fig. 8 only).
    values : dict
        Name -> array: Fig. 8 ``"dP2/dP1"`` of shape (k, m, n); Fig. 9 the four
        :data:`STRAIN_COUPLINGS` of shape (k, n) in m^2/C.
    """

    x: np.ndarray
    eps: np.ndarray
    r: np.ndarray | None
    values: dict


def figure8_curves(*, x=None, eps=PAPER_EPS, r=(-2.0, -0.5, 0.0, 0.5, 2.0)) -> TheoryCurves:
    """Curves of Fig. 8: ``dP2/dP1`` vs ``x / Lc`` for each ``eps`` and field ratio ``r``.

    Parameters
    ----------
    x : array_like, optional
        Distances in units of ``Lc``; default 601 points on [-3, 3].
    eps : sequence of float
        Doping factors (default the paper's 0, 0.5, 0.95).
    r : sequence of float
        Field ratios ``e2*/e1*``; use a dense range for the colour maps of Fig. 8 (d)-(f).

    Returns
    -------
    TheoryCurves
        ``values["dP2/dP1"]`` of shape (len(eps), len(r), len(x)), NaN at exact poles.
    """
    x = np.linspace(-3.0, 3.0, 601) if x is None else _x_array(x).ravel()
    eps = _eps_array(eps).ravel()
    r = np.asarray(r, dtype=float).ravel()
    values = dp2_dp1(x[None, None, :], eps=eps[:, None, None], Lc=1.0, r=r[None, :, None])
    return TheoryCurves(x=x, eps=eps, r=r, values={"dP2/dP1": values})


def figure9_curves(*, x=None, eps=PAPER_EPS, Q11=Q11_BFO, Q12=Q12_BFO, Q44=Q44_BFO, P0=P0_BFO) -> TheoryCurves:
    """Curves of Fig. 9: the four Eq. 16 couplings vs ``x / Lc`` for each ``eps``.

    Parameters
    ----------
    x : array_like, optional
        Distances in units of ``Lc``; default 601 points on [-3, 3].
    eps : sequence of float
        Doping factors (default the paper's 0, 0.5, 0.95).
    Q11, Q12, Q44 : float
        Electrostriction coefficients in m^4/C^2.
    P0 : float
        Bulk spontaneous polarization in C/m^2.

    Returns
    -------
    TheoryCurves
        ``values[name]`` of shape (len(eps), len(x)) in m^2/C for each name in :data:`STRAIN_COUPLINGS`.
    """
    x = np.linspace(-3.0, 3.0, 601) if x is None else _x_array(x).ravel()
    eps = _eps_array(eps).ravel()
    values = strain_couplings(x[None, :], eps=eps[:, None], Lc=1.0, Q11=Q11, Q12=Q12, Q44=Q44, P0=P0)
    return TheoryCurves(x=x, eps=eps, r=None, values=values)


def __getattr__(name: str):
    return moved(__name__, _MOVED, name)
