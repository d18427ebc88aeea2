"""Window deconvolution of a wall profile, tested by its effect: the fitted Lc moves toward the planted width.

A sliding window of ``w`` cells reports about the mean of the local coupling over its width, so a profile
of window coefficients is the planted ``tanh`` blurred by a box of width ``w``; ``wall_profile`` fits the
box-averaged tanh (``deconvolve_window=True``) so ``Lc`` is the local width.  Over 8 seeds of a small planted
grid (a 3-cell wall seen through 5-cell windows) the deconvolved Lc must be closer to the planted width than the
plain fit, on every seed.

Measured (48 x 40 cells, seeds 0-9, ``Lc / planted``): deconvolved 1.20-1.87, plain 1.37-1.97; the deconvolved
fit is 6.1-10.9 px (0.10-0.18 of the 60 px planted width, mean 8.1 px) closer on every seed.  Both stay biased
high: windows straddling the wall also see the two domains' different mean Px, Py.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_causal_lattice.sliding import sliding_lingam
from napari_causal_lattice.synthetic import synthetic_descriptor_grid
from napari_causal_lattice.walls import wall_profile

SEEDS = range(8)
WINDOW = 5  # cells
WALL_WIDTH = 3.0  # cells


def _profiles(seed: int):
    g = synthetic_descriptor_grid((48, 40), seed=seed, substrate_rows=4, interface_rows=0, wall_width=WALL_WIDTH)
    sliding = sliding_lingam(g.table, window=WINDOW, stride=1, lattice=g.lattice, seed=0, standardize=False,
                             prior_knowledge=None, variables=("Px", "Py"))
    normal = np.asarray(g.wall["normal"])
    tangent = np.array([normal[1], -normal[0]])
    half = 18 * g.wall["pitch_px"]
    line = np.stack([g.wall["point"] - half * tangent, g.wall["point"] + half * tangent])
    with_deconvolution = wall_profile(sliding, line, n_bootstrap=50, seed=0)
    without = wall_profile(sliding, line, n_bootstrap=50, seed=0, deconvolve_window=False)
    return g.wall, with_deconvolution, without


def test_deconvolution_brings_lc_closer_to_the_planted_width_on_every_seed():
    gains = []
    for seed in SEEDS:
        wall, on, off = _profiles(seed)
        assert on.params["window"] == pytest.approx(WINDOW * wall["pitch_px"], rel=1e-6)
        assert off.params["window"] == 0.0
        planted = wall["width_px"]
        error_on, error_off = abs(on.params["Lc"] - planted), abs(off.params["Lc"] - planted)
        assert error_on < error_off, f"seed {seed}: Lc {on.params['Lc']:.1f} (deconvolved) vs " \
                                     f"{off.params['Lc']:.1f} (plain), planted {planted:.1f} px"
        gains.append((error_off - error_on) / planted)
    # measured 0.10-0.18 of the planted width per seed (mean 0.135): the mean gain is at least 0.08
    assert np.mean(gains) > 0.08, gains
