"""Sliding LiNGAM: our batched transform against looping ``lingam.DirectLiNGAM`` over the same fits.

Workload (issue 7): 81 windows (9 x 9, window 20, stride 10 on a 100 x 100-cell synthetic grid) x
(1 + 100 bootstrap) fits, n = 400 cells per window, p = 8 descriptors, I14 and I5 exogenous.

The reference fits exactly the same arrays: every window standardized as ours does, and every bootstrap
resample with the same row indices (re-drawn from the same per-window seeds).  Reported: wall time of both,
the ratio, agreement (same causal order, max |B difference|) and the peak memory of a 128 x 128-cell grid.

Usage::

    python benchmarks/bench_sliding.py            # full reference, ~5 min
    python benchmarks/bench_sliding.py --quick    # reference on a subset of windows, time extrapolated
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np

from napari_causal_lattice.causal.prior import make_prior_knowledge
from napari_causal_lattice.lattice import DESCRIPTORS
from napari_causal_lattice.sliding import _draw_resamples, _plan_windows, sliding_lingam
from napari_causal_lattice.synthetic import synthetic_descriptor_grid

WINDOW, STRIDE, N_BOOT, SEED = 20, 10, 100, 0


def reference_fits(plan, resamples, prior, windows):
    """lingam.DirectLiNGAM on the given windows' fits: orders (w, r, p), B (w, r, p, p), seconds."""
    import lingam

    n_windows, per_window, _ = resamples.shape
    p = plan.data.shape[-1]
    orders = np.empty((len(windows), per_window, p), dtype=np.int64)
    adjacency = np.empty((len(windows), per_window, p, p))
    start = time.perf_counter()
    for out, w in enumerate(windows):
        n = int(plan.counts[w])
        for r in range(per_window):
            model = lingam.DirectLiNGAM(prior_knowledge=prior).fit(plan.data[w][resamples[w, r, :n]])
            orders[out, r] = model.causal_order_
            adjacency[out, r] = model.adjacency_matrix_
    return orders, adjacency, time.perf_counter() - start


def peak_memory(shape=(128, 128)) -> tuple[float, float, int]:
    """(tracemalloc peak MB, process max RSS MB, fits) of one sliding run on a ``shape`` grid."""
    grid = synthetic_descriptor_grid(shape, seed=1)
    tracemalloc.start()
    result = sliding_lingam(grid, window=WINDOW, stride=STRIDE, n_bootstrap=N_BOOT, seed=SEED)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return peak / 2**20, rss, int(result.fitted.sum()) * (1 + N_BOOT)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run the lingam reference on a subset of windows")
    parser.add_argument("--reference-windows", type=int, default=4, help="windows in the --quick reference")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats of our transform (best is reported)")
    args = parser.parse_args(argv)

    grid = synthetic_descriptor_grid((100, 100), seed=0)
    names = tuple(DESCRIPTORS)
    prior = make_prior_knowledge(list(names), exogenous=["I14", "I5"])

    sliding_lingam(grid.table[(grid.table.i < 20) & (grid.table.j < 40)], window=WINDOW, n_bootstrap=2)  # JIT warm-up
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = sliding_lingam(grid, window=WINDOW, stride=STRIDE, n_bootstrap=N_BOOT, seed=SEED, keep_bootstrap=True)
        times.append(time.perf_counter() - start)
    ours = min(times)
    ny, nx = result.shape
    total_fits = ny * nx * (1 + N_BOOT)
    one = sliding_lingam(grid, window=WINDOW, stride=STRIDE, n_bootstrap=N_BOOT, seed=SEED, workers=1)
    identical_workers = np.array_equal(one.probabilities, result.probabilities) and np.array_equal(
        one.adjacency, result.adjacency
    )

    plan = _plan_windows(grid.table, names, window=WINDOW, stride=STRIDE, min_cells=24, standardize=True)
    resamples = _draw_resamples(plan, N_BOOT, result.provenance["seed"])
    n_windows = len(plan.fitted_index)
    windows = list(range(n_windows))
    if args.quick:
        windows = list(np.linspace(0, n_windows - 1, args.reference_windows).round().astype(int))
    ref_orders, ref_adjacency, ref_time = reference_fits(plan, resamples, prior, windows)
    ref_fits = len(windows) * (1 + N_BOOT)
    ref_total = ref_time / ref_fits * total_fits

    our_orders = np.empty((len(windows), 1 + N_BOOT, len(names)), dtype=np.int64)
    our_adjacency = np.empty((len(windows), 1 + N_BOOT, len(names), len(names)))
    for out, w in enumerate(windows):
        ky, kx = plan.fitted_index[w]
        our_orders[out, 0], our_adjacency[out, 0] = result.orders[ky, kx], result.adjacency[ky, kx]
        our_orders[out, 1:] = result.bootstrap_orders[ky, kx]
        our_adjacency[out, 1:] = result.bootstrap_adjacency[ky, kx]
    same_order = np.all(our_orders == ref_orders, axis=-1)
    diff = np.abs(our_adjacency - ref_adjacency)[same_order].max()

    mem_peak, rss, mem_fits = peak_memory()

    print(f"sliding LiNGAM benchmark: {ny} x {nx} windows, window {WINDOW}, stride {STRIDE}, "
          f"n = {WINDOW * WINDOW} cells, p = {len(names)}, {N_BOOT} bootstraps -> {total_fits} fits")
    ref_note = "measured on all fits" if not args.quick else (
        f"--quick: measured on {ref_fits} fits ({len(windows)} windows), extrapolated to {total_fits}"
    )
    rows = [
        ("lingam.DirectLiNGAM loop", f"{ref_total:9.2f} s", ref_note),
        ("ours (sliding_lingam)", f"{ours:9.3f} s", f"best of {args.repeat}, all {total_fits} fits; target <= 3 s"),
        ("ratio", f"{ref_total / ours:9.1f} x", "target >= 100 x"),
        ("same causal order", f"{same_order.mean():9.2%}", f"of {same_order.size} compared fits; target >= 99 %"),
        ("max |B diff| (same order)", f"{diff:9.1e}", "target <= 1e-6"),
        ("workers 1 vs default", f"{'identical' if identical_workers else 'DIFFERENT':>9}", "bit-identical required"),
        ("peak memory 128 x 128 grid", f"{mem_peak:7.0f} MB", f"tracemalloc, {mem_fits} fits; max RSS {rss:.0f} MB; "
                                                             "target < 1 GB"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main()
