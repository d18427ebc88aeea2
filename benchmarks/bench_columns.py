"""Benchmark: find + refine ~20,000 atom columns, against per-column scipy and Atomap Gaussian refinement.

Run:  python benchmarks/bench_columns.py [--cells 100] [--subset 400]

Prints one table.  ``find_columns`` includes peeling (B refitted on the image minus the A Gaussians, A on
the image minus the B Gaussians, B once more); the ``A peeled`` row times ``refine_columns(..., peel=A)`` on
the B columns alone.  The references fit a subset of the columns (one optimizer call per column) and
are extrapolated linearly to all columns; ``ratio`` is reference time / our time for the same number
of columns.  Atomap is optional (``pip install atomap``; not a dependency): it is skipped when absent.
Target: find + refine of 20,000 columns in <= 5 s on 2 cores, >= 30x faster than Atomap.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial import cKDTree

from napari_causal_lattice._gaussfit import reference_fit_scipy
from napari_causal_lattice.columns import find_columns, refine_columns
from napari_causal_lattice.synthetic import synthetic_perovskite


def rms(found, truth):
    d, _ = cKDTree(found).query(truth)
    return float(np.sqrt(np.mean(d**2)))


def atomap_refine(image, start):
    """Atomap's Gaussian refinement of the given positions; returns (positions yx, seconds) or None."""
    try:
        import atomap.api as am
    except ImportError:
        return None
    sub = am.Sublattice(start[:, ::-1].copy(), image, fix_negative_values=True)
    sub.find_nearest_neighbors()
    t0 = time.perf_counter()
    sub.refine_atom_positions_using_2d_gaussian(show_progressbar=False)
    seconds = time.perf_counter() - t0
    return np.column_stack([sub.y_position, sub.x_position]), seconds


def measure(cells: int = 100, subset: int = 400) -> dict:
    """Time find/refine on a ``cells`` x ``cells`` synthetic perovskite and the per-column references.

    Returns
    -------
    dict
        ``rows``: (method, columns, seconds, RMS error in pm, ratio to find_columns) per method; ``n``
        columns; ``shape`` of the image; ``subset`` columns timed by the references; ``atomap``: whether
        Atomap was importable.  Reference times are scaled linearly from ``subset`` columns to all.
    """
    sample = synthetic_perovskite(seed=0, shape_cells=(cells, cells))
    truth = np.concatenate([sample.truth.a_positions, sample.truth.b_positions])
    n = len(truth)
    ps = sample.pixel_size

    find_columns(sample.image[:300, :300])  # warm-up (imports, caches)
    t0 = time.perf_counter()
    cols = find_columns(sample.image, pixel_size=ps)
    t_find = time.perf_counter() - t0
    radius = cols.provenance["params"]["radius"]
    start = np.rint(truth)
    t0 = time.perf_counter()
    ref_all = refine_columns(sample.image, start, radius=radius)
    t_refine = time.perf_counter() - t0

    b_truth = sample.truth.b_positions
    t0 = time.perf_counter()
    peeled = refine_columns(sample.image, np.rint(b_truth), radius=radius, peel=np.rint(sample.truth.a_positions))
    t_peel = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    subset = rng.choice(n, min(subset, n), replace=False)
    t0 = time.perf_counter()
    sp = np.array([reference_fit_scipy(sample.image, start[k], radius) for k in subset])
    t_scipy = (time.perf_counter() - t0) * n / len(subset)

    rows = [
        ("find_columns (find + refine + classify)", len(cols), t_find, rms(cols.positions, truth) * ps, 1.0),
        ("refine_columns (batched LM)", n, t_refine, rms(ref_all.positions, truth) * ps, t_find / t_refine),
        ("refine_columns B only, A peeled (B RMS)", len(b_truth), t_peel, rms(peeled.positions, b_truth) * ps,
         t_peel / t_find),
        ("scipy least_squares per column", n, t_scipy, rms(sp, truth[subset]) * ps, t_scipy / t_find),
    ]
    # Atomap refines one sublattice with its own neighbour-based masks: give it a compact block of A columns
    a_truth = sample.truth.a_positions
    centre = np.asarray(sample.image.shape) / 2
    block = np.argsort(np.hypot(*(a_truth - centre).T))[: len(subset)]
    at = atomap_refine(sample.image, np.rint(a_truth[block]))
    if at is None:
        rows.append(("Atomap 2D Gaussian refinement", 0, float("nan"), float("nan"), float("nan")))
    else:
        pos, seconds = at
        t_atomap = seconds * n / len(block)
        rows.append(("Atomap 2D Gaussian refinement (A block)", n, t_atomap, rms(pos, a_truth[block]) * ps,
                     t_atomap / t_find))
    return {"rows": rows, "n": n, "shape": sample.image.shape, "subset": len(subset), "atomap": at is not None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100, help="cells per side (100 -> 20,201 columns)")
    parser.add_argument("--subset", type=int, default=400, help="columns fitted by the per-column references")
    args = parser.parse_args()
    result = measure(args.cells, args.subset)
    print(f"synthetic perovskite {args.cells}x{args.cells} cells, image {result['shape']}, {result['n']} columns; "
          f"references timed on {result['subset']} columns and scaled to {result['n']}")
    print(f"{'method':42s} {'columns':>8s} {'time s':>9s} {'RMS pm':>8s} {'x slower than find':>19s}")
    for name, count, seconds, err, ratio in result["rows"]:
        print(f"{name:42s} {count:8d} {seconds:9.2f} {err:8.2f} {ratio:19.1f}")
    if not result["atomap"]:
        print("Atomap not installed: pip install atomap (in a separate environment) to compare")


if __name__ == "__main__":
    main()
