"""Which edge criterion can a map reader believe?  False-edge rate and power on planted descriptor grids.

Run: ``python benchmarks/bench_confidence.py [n_seeds]`` (default 8 seeds, a few minutes on 2 cores).

Each seed draws a ``synthetic_descriptor_grid`` of 120 x 120 cells: a film with a domain wall (``Px <- Py``,
coefficient 0.6 tanh(d / 2 cells), opposite signs on the two sides) over an interface band of 60 rows where
``Py <- I5`` is planted; ``Vol <- a`` and ``Vol <- b`` hold everywhere.  ``sliding_lingam`` runs with
non-overlapping windows of 10, 15 and 20 cells and 100 bootstrap resamples kept; the first 30 resamples of
each window are exactly the resamples of a 30-resample run (one generator per window), so both bootstrap
counts come from one run.

* **false-edge rate**: share of (window, ordered pair) with no planted link in either direction anywhere in the
  window (effects I14 and I5 left out: the prior knowledge forbids them) in which the criterion reports the
  edge; ``Py<-I5 null``: the same for the pair the issue names, on windows outside the interface band.
* **power**: share of windows whose every cell carries the planted edge with ``|coefficient| >= 0.3`` (Px <- Py)
  or non-zero (Py <- I5, Vol <- a/b) in which the criterion reports ``effect <- cause`` (or both directions);
  the worst of the four edges is printed.  ``oriented``: share of those where only the planted direction is
  reported.

Criteria: lingam's bootstrap probability >= 0.5 and >= 0.9 (stability selection), the 95 % percentile
bootstrap interval of the coefficient excluding zero, and the order t-test (p-value of the coefficient given
the causal order; spatially honest, the default since 0.3) at alpha = 0.05 / 0.01, at alpha = 0.01 with
Benjamini-Hochberg over the run, and at alpha = 0.01 counting cells as independent (the 0.2 test).

A second table runs the order t-test on null grids (``synthetic_null_grid``: no causal link, spatially
correlated corner-sharing noise, correlation length 1-3 cells, 60 x 60 cells): false-edge rate of the
independent-cells test and of the spatially honest one (pairs inside ``Vol = a b sin(alpha)`` left out).
Mean over seeds, with the worst seed in brackets.  Targets: false-edge rate <= 5 % and power >= 90 %.
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from napari_causal_lattice.causal.confidence import edge_decision, fdr_adjust
from napari_causal_lattice.lattice import DESCRIPTORS
from napari_causal_lattice.sliding import sliding_lingam
from napari_causal_lattice.synthetic import synthetic_descriptor_grid, synthetic_null_grid

SHAPE = (120, 120)
WINDOWS = (10, 15, 20)
BOOTSTRAPS = (30, 100)
PLANTED = (("Px", "Py"), ("Py", "I5"), ("Vol", "a"), ("Vol", "b"))
IDX = {n: k for k, n in enumerate(DESCRIPTORS)}


def criteria(res, n_boot: int, independent_p) -> dict:
    """(ny, nx, p, p) bool decision of every criterion, from the first ``n_boot`` kept resamples
    (``independent_p``: the p-values of the same windows counting cells as independent)."""
    boot = res.bootstrap_adjacency[:, :, :n_boot]
    prob = np.mean(boot != 0, axis=2)
    low, high = np.percentile(boot, [2.5, 97.5], axis=2)
    return {
        "probability >= 0.5": prob >= 0.5,
        "stability >= 0.9": prob >= 0.9,
        "bootstrap 95% CI excludes 0": (low > 0) | (high < 0),
        "order t-test a=0.05": edge_decision(res.p_values, prob, alpha=0.05),
        "order t-test a=0.01": edge_decision(res.p_values, prob, alpha=0.01),
        "order t-test a=0.01 + BH": edge_decision(fdr_adjust(res.p_values, "bh"), prob, alpha=0.01),
        "t-test a=0.01, indep. cells": edge_decision(independent_p, prob, alpha=0.01),
    }


def truth(grid, window: int, shape) -> tuple[np.ndarray, np.ndarray]:
    """Per window: ``null`` (ny, nx, p, p) no planted link either way; ``strong`` edges planted in every cell."""
    ny, nx = shape
    adj = grid.adjacency
    p = adj.shape[-1]
    null = np.zeros((ny, nx, p, p), dtype=bool)
    strong = np.zeros((ny, nx, p, p), dtype=bool)
    for ky in range(ny):
        for kx in range(nx):
            block = adj[ky * window:(ky + 1) * window, kx * window:(kx + 1) * window].reshape(-1, p, p)
            linked = np.any(block != 0, axis=0)
            null[ky, kx] = ~(linked | linked.T) & ~np.eye(p, dtype=bool)
            floor = np.where(np.arange(p)[:, None] == IDX["Px"], 0.3, 0.0)
            same_sign = np.all(np.sign(block) == np.sign(block[:1]), axis=0)
            strong[ky, kx] = np.all(np.abs(block) > floor, axis=0) & same_sign & (block[0] != 0)
    null[:, :, [IDX["I14"], IDX["I5"]], :] = False
    return null, strong


def measure(n_seeds: int) -> dict:
    rows: dict = {}
    for seed in range(n_seeds):
        grid = synthetic_descriptor_grid(SHAPE, seed=seed, substrate_rows=0, interface_rows=60)
        for window in WINDOWS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = sliding_lingam(grid, window=window, stride=window, n_bootstrap=max(BOOTSTRAPS), seed=seed,
                                     keep_bootstrap=True)
                independent_p = sliding_lingam(grid, window=window, stride=window, seed=seed, spatial=False).p_values
            null, strong = truth(grid, window, res.shape)
            py_null = null[:, :, IDX["Py"], IDX["I5"]]
            for n_boot in BOOTSTRAPS:
                for name, decision in criteria(res, n_boot, independent_p).items():
                    powers, oriented = [], []
                    for effect, cause in PLANTED:
                        e, c = IDX[effect], IDX[cause]
                        where = strong[:, :, e, c]
                        powers.append(decision[:, :, e, c][where].mean())
                        oriented.append((decision[:, :, e, c] & ~decision[:, :, c, e])[where].mean())
                    rows.setdefault((name, window, n_boot), []).append((
                        decision[null].mean(), decision[:, :, IDX["Py"], IDX["I5"]][py_null].mean(),
                        min(powers), min(oriented),
                    ))
        print(f"  seed {seed} done", file=sys.stderr, flush=True)
    return rows


def null_grid_rates(n_seeds: int) -> None:
    """False-edge rate of the order t-test (alpha 0.01) on correlated null grids, independent cells vs spatial."""
    p = len(DESCRIPTORS)
    null = ~np.eye(p, dtype=bool)
    null[[IDX["I14"], IDX["I5"]], :] = False
    identity = [IDX[k] for k in ("a", "b", "alpha", "Vol")]
    null[np.ix_(identity, identity)] = False
    print(f"\nnull grids (60 x 60 cells, no causal link), {n_seeds} seeds: false-edge rate, mean [worst seed]")
    print(f"{'xi':>3s} {'win':>3s}  {'independent cells':>19s}  {'spatial (default)':>19s}")
    for xi in (1, 2, 3):
        for window in (10, 15):
            rates = {False: [], True: []}
            for seed in range(n_seeds):
                grid = synthetic_null_grid((60, 60), seed=seed, correlation_length=xi)
                for spatial in rates:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        res = sliding_lingam(grid, window=window, stride=window, seed=seed, spatial=spatial)
                    rates[spatial].append(res.significant[:, :, null].mean())
            cells = [f"{np.mean(v):7.3f} [{np.max(v):.3f}]" for v in rates.values()]
            print(f"{xi:3d} {window:3d}  {cells[0]:>19s}  {cells[1]:>19s}")


def main(n_seeds: int = 8) -> None:
    t0 = time.perf_counter()
    rows = measure(n_seeds)
    head = f"{'criterion':30s} {'win':>3s} {'boot':>4s}  {'false-edge rate':>19s}  {'Py<-I5 null':>17s}  " \
           f"{'power (worst edge)':>19s}  {'oriented':>17s}  ok"
    print(f"{n_seeds} seeds, grid {SHAPE}, mean [worst seed]\n{head}\n{'-' * len(head)}")
    passing = []
    for (name, window, n_boot), values in rows.items():
        v = np.array(values)
        fer, py, power, orient = v.mean(axis=0)
        ok = v[:, 0].mean() <= 0.05 and v[:, 1].mean() <= 0.05 and v[:, 2].mean() >= 0.9
        passing.append((name, ok))
        print(f"{name:30s} {window:3d} {n_boot:4d}  {fer:7.3f} [{v[:, 0].max():.3f}]  {py:7.3f} [{v[:, 1].max():.3f}]"
              f"  {power:7.3f} [{v[:, 2].min():.3f}]  {orient:7.3f} [{v[:, 3].min():.3f}]  {'yes' if ok else 'no'}")
    good = [n for n in dict.fromkeys(n for n, _ in passing) if all(ok for m, ok in passing if m == n)]
    print(f"\ncriteria meeting both targets at every window and bootstrap count: {good}")
    print("default: order t-test a=0.01 (sliding_lingam(alpha=0.01)); fdr='bh' for FDR control over the map")
    null_grid_rates(n_seeds)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
