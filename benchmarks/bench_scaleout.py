"""Sliding LiNGAM on local threads vs a dask LocalCluster vs a process pool: the same fits, the same numbers.

Run: ``python benchmarks/bench_scaleout.py``.  Workload: 81 windows (window 20, stride 10 on a 100 x 100-cell
synthetic grid) x (1 + 100 bootstrap) fits, n = 400, p = 8.  Prints the best of two runs per executor, the
ratio to the local thread pool, and whether the adjacency and probability maps are bit-identical.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from napari_causal_lattice.sliding import sliding_lingam
from napari_causal_lattice.synthetic import synthetic_descriptor_grid

OPTIONS = {"window": 20, "stride": 10, "n_bootstrap": 100, "seed": 0}


def _warm_up() -> None:
    """Compile the numba kernels in this process (workers compile their own, outside the timing)."""
    small = synthetic_descriptor_grid((20, 40), seed=0)
    sliding_lingam(small, window=20, n_bootstrap=2, workers=1)


def _timed(grid, **kwargs):
    best, result = np.inf, None
    for _ in range(2):
        start = time.perf_counter()
        result = sliding_lingam(grid, **OPTIONS, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def _same(a, b) -> bool:
    return np.array_equal(a.adjacency, b.adjacency, equal_nan=True) and np.array_equal(
        a.probabilities, b.probabilities, equal_nan=True
    )


def main() -> None:
    from distributed import Client, LocalCluster

    grid = synthetic_descriptor_grid((100, 100), seed=0)
    _warm_up()
    t_local, reference = _timed(grid, workers=2)
    rows = [("local threads (2)", t_local, True)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.run(_warm_up)
            t, result = _timed(grid, executor=client)
            rows.append(("dask LocalCluster, 2 processes x 1 thread", t, _same(result, reference)))
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        list(pool.map(_warm_up_noarg, [0, 1]))
        t, result = _timed(grid, executor=pool)
        rows.append(("ProcessPoolExecutor(2)", t, _same(result, reference)))
    ny, nx = reference.shape
    print(f"{ny} x {nx} windows x 101 fits = {ny * nx * 101} fits, n = 400, p = 8 (best of 2)")
    print(f"  {'executor':<44} {'time s':>7}  {'vs local':>8}  identical")
    for name, t, same in rows:
        print(f"  {name:<44} {t:7.2f}  {t / t_local:8.2f}  {same}")


def _warm_up_noarg(_):
    _warm_up()


if __name__ == "__main__":
    main()
