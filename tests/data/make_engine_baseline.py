"""Write ``engine_baseline.npz``: engine answers frozen before the compile-time work of issue 24.

Generated once, at commit 23cf2dc (main before the kernels were restructured), with
``PYTHONPATH=src python tests/data/make_engine_baseline.py``.  ``tests/test_causal_engine.py`` checks that the
current code reproduces every array bit for bit.  Do not regenerate it to make a failing comparison pass: a
difference means the kernels changed their answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PATH = Path(__file__).with_name("engine_baseline.npz")


def batch_inputs():
    """Random non-Gaussian SEMs (p = 8), a ragged mask, one degenerate dataset (a duplicated column)."""
    rng = np.random.default_rng(24)
    m, n, p = 24, 400, 8
    X = np.empty((m, n, p))
    for k in range(m):
        B = np.tril(rng.uniform(0.3, 1.5, (p, p)) * rng.choice([-1.0, 1.0], (p, p)) * (rng.random((p, p)) < 0.5), -1)
        E = rng.uniform(-1, 1, (n, p)) ** (1 + 2 * (k % 2))
        X[k] = np.linalg.solve(np.eye(p) - B, E.T).T[:, rng.permutation(p)]
    X[5, :, 3] = X[5, :, 6]
    mask = np.ones((m, n), dtype=bool)
    for k in range(m):
        mask[k, rng.integers(20, n) :] = False
    pk = -np.ones((p, p))
    pk[[0, 1], :] = 0
    pk[[0, 1], [0, 1]] = -1
    pk[4, 7] = 0
    return X, mask, pk


def default_sample_table():
    """The 8 descriptors of the default sample's cells (napari sample: synthetic perovskite, seed 0)."""
    import napari_causal_lattice as ncl

    sample = ncl.synthetic_perovskite(seed=0)
    cells = ncl.build_cells(ncl.find_columns(sample.image, pixel_size=sample.pixel_size))
    return cells.table[list(ncl.DESCRIPTORS)].to_numpy(dtype=float)


def compute(X, mask, pk, table):
    """Every frozen answer, from the given inputs (run by the generator and by the test)."""
    import pandas as pd

    import napari_causal_lattice as ncl
    from napari_causal_lattice.causal.engine import direct_lingam_batch
    from napari_causal_lattice.synthetic import synthetic_descriptor_grid

    out = {}
    out["batch_order"], out["batch_B"] = direct_lingam_batch(X, mask=mask, prior_knowledge=pk, workers=1)
    out["nomask_order"], out["nomask_B"] = direct_lingam_batch(X[:6], workers=1)
    frame = pd.DataFrame(table, columns=list(ncl.DESCRIPTORS))
    fit = ncl.fit_lingam(frame, n_bootstrap=20, seed=0)
    out["fit_order"] = np.asarray(fit.causal_order)
    out["fit_B"] = fit.adjacency
    out["fit_p"] = fit.p_values
    out["fit_prob"] = fit.probabilities
    out["fit_boot"] = fit.bootstrap_adjacency
    grid = synthetic_descriptor_grid((40, 40), seed=1)
    # spatial=False: the 0.2 p-values the baseline froze (the spatial correction is tested on its own)
    slide = ncl.sliding_lingam(grid, window=20, stride=10, n_bootstrap=5, seed=0, workers=1, spatial=False)
    out["slide_orders"] = slide.orders
    out["slide_B"] = slide.adjacency
    out["slide_p"] = slide.p_values
    out["slide_prob"] = slide.probabilities
    return out


def main() -> None:
    X, mask, pk = batch_inputs()
    table = default_sample_table()
    out = compute(X, mask, pk, table)
    np.savez_compressed(PATH, table=table, **out)
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes): {sorted(out)}")


if __name__ == "__main__":
    main()
