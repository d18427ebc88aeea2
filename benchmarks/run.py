"""All benchmarks in one run and one table of ratios (the table the README quotes).

Run:  ``python benchmarks/run.py``  (about 10 min on 2 busy cores, most of it compiling with an empty cache)
      ``python benchmarks/run.py --quick``  (smaller workloads; the analyze with an empty cache is skipped)
      ``--readme`` also writes the table into README.md (between its two benchmark-table markers)

Measured side by side in the same run, since machines differ:

* public API against lingam 1.12 (single fit, bootstrap, sliding windows): ``lingam / ours`` = how many times
  faster.  lingam runs that would take minutes are timed on fewer fits of the same size and scaled linearly
  (the number measured is stated);
* public API against our own engine: ``public / engine`` = wall time of the public call / time spent inside
  ``direct_lingam_batch`` during it (single thread), i.e. the cost of the layer users call (target <= 1.5);
* column finding against the per-column scipy fit (and Atomap when importable), scaled from a subset;
* the end-to-end ``napari-causal-lattice analyze`` of the default sample (the napari sample: synthetic
  perovskite, seed 0) in a child process: wall time and peak RSS;
* the instrument null (``instrument_null``, K = 20 images, global and sliding) against one analysis of the
  default sample (columns, cells, fit_lingam and sliding_lingam with 100 bootstrap resamples): target <= 10x;
* time to the first global LiNGAM result in a fresh process (sample -> columns -> cells -> fit_lingam),
  with an empty numba cache (``NUMBA_CACHE_DIR`` set to a new temporary folder) without and with the
  compilation in child processes that the CLI and the plugin start (the fit then runs on the kernels' Python
  twins instead of waiting), and with the cache filled; wall and CPU s of the fitting process, best of 3; the
  same for ``analyze`` of the default sample (cold and warm cache).  The cold rows give the seconds they take
  beyond the warm run (target: at most 5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import bench_columns
from napari_causal_lattice import compare_images, fit_lingam, sliding_lingam, wall_profile
from napari_causal_lattice.causal import engine
from napari_causal_lattice.causal.prior import make_prior_knowledge
from napari_causal_lattice.lattice import DESCRIPTORS
from napari_causal_lattice.synthetic import synthetic_descriptor_grid, synthetic_perovskite

README = Path(__file__).resolve().parents[1] / "README.md"
README_BEGIN = "<!-- table written by: python benchmarks/run.py --readme -->"
README_END = "<!-- end of the benchmark table -->"

_FIRST_RESULT = """
import json, sys, time
start = time.perf_counter()
import napari_causal_lattice as ncl
from napari_causal_lattice._warmup import start_warmup
start_warmup()  # what the CLI and the plugin do when they start (off with the env variable)
sample = ncl.synthetic_perovskite(seed=0)
t_sample = time.perf_counter()
cells = ncl.build_cells(ncl.find_columns(sample.image, pixel_size=sample.pixel_size))
t_cells = time.perf_counter()
ncl.fit_lingam(cells)
t_fit = time.perf_counter()
json.dump({"total": t_fit - start, "columns": t_cells - t_sample, "fit": t_fit - t_cells, "cpu": time.process_time(),
           "cells": len(cells.table)}, sys.stdout)
"""

_STAMPED = "from napari_causal_lattice import _warmup as w; print(all(w._stamp_exists(j) for j in w.JOBS))"


# ------------------------------------------------------------------------------------------ timing tools
def best_of(func, repeat: int = 3, number: int = 1) -> float:
    """Best wall time of ``repeat`` runs of ``number`` calls, per call, in s."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter() - start) / number)
    return best


@contextmanager
def engine_clock():
    """Accumulate the wall time spent inside ``direct_lingam_batch``, wherever the package calls it from.

    Yields a dict whose ``"seconds"`` and ``"calls"`` grow while the block runs.  Only meaningful for calls
    that run the engine in one thread (``workers=1``): threads would add up their times.
    """
    original = engine.direct_lingam_batch
    clock = {"seconds": 0.0, "calls": 0}

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clock["seconds"] += time.perf_counter() - start
            clock["calls"] += 1

    modules = [m for name, m in list(sys.modules.items())
               if name.startswith("napari_causal_lattice") and getattr(m, "direct_lingam_batch", None) is original]
    for module in modules:
        module.direct_lingam_batch = timed
    try:
        yield clock
    finally:
        for module in modules:
            module.direct_lingam_batch = original


def public_over_engine(call, repeat: int = 2) -> tuple[float, float]:
    """(best wall s of ``call``, ratio of that run's wall time to its time inside the engine)."""
    best = (np.inf, np.nan)
    for _ in range(repeat):
        with engine_clock() as clock:
            start = time.perf_counter()
            call()
            wall = time.perf_counter() - start
        best = min(best, (wall, wall / clock["seconds"]))
    return best


def lingam_seconds_per_fit(datasets, prior) -> float:
    """Mean wall time of ``lingam.DirectLiNGAM(prior_knowledge=prior).fit`` over the datasets, in s."""
    import lingam

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        for X in datasets:
            lingam.DirectLiNGAM(prior_knowledge=prior).fit(X)
    return (time.perf_counter() - start) / len(datasets)


def standardized(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


# ------------------------------------------------------------------------------------------ the stages
def lingam_rows(quick: bool) -> list[tuple]:
    """Single fit, bootstrap and sliding windows: public API vs engine and vs lingam."""
    names = list(DESCRIPTORS)
    prior = make_prior_knowledge(names, exogenous=["I14", "I5"])
    table = synthetic_descriptor_grid((20, 20), seed=0).table[names]  # n = 400 cells, p = 8 descriptors
    Z = standardized(table.to_numpy(dtype=float))
    fit_lingam(table)
    engine.direct_lingam(Z, prior_knowledge=prior)
    number = 20 if quick else 100
    t_fit, t_engine = np.inf, np.inf
    for _ in range(3):  # interleaved, so a busy machine slows both alike
        t_fit = min(t_fit, best_of(lambda: fit_lingam(table), repeat=1, number=number))
        t_engine = min(t_engine, best_of(lambda: engine.direct_lingam(Z, prior_knowledge=prior), repeat=1,
                                         number=number))
    t_ref = lingam_seconds_per_fit([Z] * (3 if quick else 10), prior)
    rows = [
        ("fit_lingam, n = 400, p = 8", t_fit, "direct_lingam (engine)", t_engine, t_fit / t_engine, "public / engine"),
        ("fit_lingam, n = 400, p = 8", t_fit, "lingam DirectLiNGAM.fit", t_ref, t_ref / t_fit, "lingam / ours"),
    ]

    n_boot = 100
    boot = lambda: fit_lingam(table, n_bootstrap=n_boot, seed=0)  # noqa: E731
    boot()
    t_boot, ratio = public_over_engine(boot)
    import lingam

    measured = 3 if quick else 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        lingam.DirectLiNGAM(prior_knowledge=prior).bootstrap(Z, n_sampling=measured)
        t_ref = (time.perf_counter() - start) * n_boot / measured
    rows += [
        (f"fit_lingam, {n_boot} bootstrap", t_boot, "engine inside the call", t_boot / ratio, ratio, "public / engine"),
        (f"fit_lingam, {n_boot} bootstrap", t_boot, f"lingam .bootstrap ({measured} timed)", t_ref, t_ref / t_boot,
         "lingam / ours"),
    ]

    side, n_boot = (60, 20) if quick else (100, 100)
    grid = synthetic_descriptor_grid((side, side), seed=0)
    options = {"window": 20, "stride": 10, "n_bootstrap": n_boot, "seed": 0}
    result = sliding_lingam(grid, **options)
    t_slide = best_of(lambda: sliding_lingam(grid, **options), repeat=2)
    _, ratio = public_over_engine(lambda: sliding_lingam(grid, **options, workers=1), repeat=1)
    fits = int(result.fitted.sum()) * (1 + n_boot)
    windows = [standardized(grid.table[(grid.table.i // 20 == k) & (grid.table.j // 20 == 0)][names].to_numpy(float))
               for k in range(side // 20)]
    sample = windows * (2 if quick else 5)
    t_ref = lingam_seconds_per_fit(sample, prior) * fits
    label = f"sliding_lingam {side}x{side} cells, {fits} fits"
    rows += [
        (label, t_slide, "engine inside the call (1 thread)", np.nan, ratio, "public / engine"),
        (label, t_slide, f"lingam loop ({len(sample)} fits timed)", t_ref, t_ref / t_slide, "lingam / ours"),
    ]
    return rows


def compare_and_wall_rows(quick: bool) -> list[tuple]:
    """compare_images and wall_profile relative to the fits they run."""
    images = {f"image {k}": synthetic_descriptor_grid((30, 30), seed=k).table for k in range(2 if quick else 4)}
    n_boot = 20 if quick else 100
    call = lambda: compare_images(images, n_bootstrap=n_boot, seed=0)  # noqa: E731
    call()
    t_compare, r_compare = public_over_engine(call)

    grid = synthetic_descriptor_grid((64, 64), seed=3)
    wall = grid.wall
    normal = np.asarray(wall["normal"])
    along = np.array([normal[1], -normal[0]]) * 54 * wall["pitch_px"]
    line = np.stack([wall["point"] - along, wall["point"] + along])
    call = lambda: wall_profile(grid, line, estimator="lingam", n_bootstrap=20, seed=1, max_distance=300)  # noqa: E731
    call()
    t_wall, r_wall = public_over_engine(call)
    return [
        (f"compare_images, {len(images)} images x {n_boot} bootstrap", t_compare, "engine inside the call", np.nan,
         r_compare, "public / engine"),
        ("wall_profile, per-bin LiNGAM, 20 bootstrap", t_wall, "engine inside the call", np.nan, r_wall,
         "public / engine"),
    ]


def column_rows(quick: bool) -> list[tuple]:
    """find_columns against the per-column scipy fit (and Atomap when importable)."""
    result = bench_columns.measure(cells=40 if quick else 100, subset=150 if quick else 400)
    by_name = {row[0]: row for row in result["rows"]}
    t_find = by_name["find_columns (find + refine + classify)"][2]
    label = f"find_columns, {result['n']} columns"
    rows = [(label, t_find, f"scipy per column ({result['subset']} timed)",
             by_name["scipy least_squares per column"][2], by_name["scipy least_squares per column"][4],
             "scipy / ours")]
    atomap = [row for name, row in by_name.items() if name.startswith("Atomap")][0]
    if result["atomap"]:
        rows.append((label, t_find, f"Atomap ({result['subset']} timed)", atomap[2], atomap[4], "Atomap / ours"))
    else:
        rows.append((label, t_find, "Atomap (not installed)", np.nan, np.nan, "Atomap / ours"))
    return rows


def null_rows(quick: bool) -> list[tuple]:
    """instrument_null with K = 20 against one analysis of the same image (target: at most 10x)."""
    from napari_causal_lattice import build_cells, find_columns
    from napari_causal_lattice.null import instrument_null

    sample = synthetic_perovskite(seed=0, **({"shape_cells": (24, 24)} if quick else {}))
    found = {}

    def analysis():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found["columns"] = find_columns(sample.image, pixel_size=sample.pixel_size)
            found["cells"] = build_cells(found["columns"])
            found["result"] = fit_lingam(found["cells"], n_bootstrap=100, seed=0)
            found["sliding"] = sliding_lingam(found["cells"], window="auto", n_bootstrap=100, seed=0)

    def timed(func) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        func()
        return time.perf_counter() - wall, time.process_time() - cpu

    call = lambda: instrument_null(sample.image, found["columns"], found["cells"], n_images=20, seed=0,  # noqa: E731
                                   result=found["result"], sliding=found["sliding"])
    analysis()
    one = [timed(analysis), timed(analysis)]
    null = timed(call)
    one.append(timed(analysis))  # before and after: a busy machine slows both alike
    t_one, c_one = min(t for t, _ in one), min(c for _, c in one)
    shape = "x".join(map(str, sample.image.shape))
    label = f"instrument_null K = 20 (global + sliding), sample {shape} px"
    reference = "one analysis (columns, cells, fit + sliding, 100 bootstrap)"
    return [(f"{label}, wall", null[0], reference, t_one, null[0] / t_one, "null / analysis (target <= 10)"),
            (f"{label}, CPU s", null[1], f"{reference}, CPU s", c_one, null[1] / c_one, "null / analysis, CPU")]


def _child(args, env) -> tuple[float, float, str]:
    """Run a child process: (wall s, its peak RSS in MB, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed with exit status {proc.returncode}")
    return wall, usage.ru_maxrss / 1024.0, text


def _env(cache: Path, warmup: bool) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    env.pop("NAPARI_CAUSAL_LATTICE_NO_WARMUP", None)
    if not warmup:
        env["NAPARI_CAUSAL_LATTICE_NO_WARMUP"] = "1"
    return env


def _wait_for_warmup(env: dict, timeout: float = 900.0) -> None:
    """Wait until the warmup children (which outlive the process that started them) have stamped every job."""
    deadline = time.monotonic() + timeout
    stamped = [sys.executable, "-c", _STAMPED]
    while subprocess.run(stamped, env=env, capture_output=True, text=True).stdout.strip() != "True":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warmup children did not finish within {timeout:.0f} s")
        time.sleep(1.0)


def _first_results(tmp: Path, repeat: int) -> dict:
    """{label: [run times, ...]}: the first global fit in fresh processes, ``repeat`` times each (new caches)."""
    runs = {"cold, compile on first fit": [], "cold, twins while the children compile": [],
            "warm (kernels cached on disk)": []}
    for r in range(repeat):
        env = _env(tmp / f"nowarmup_{r}", False)
        env["XDG_CACHE_HOME"] = str(tmp / f"stamps_nowarmup_{r}")
        runs["cold, compile on first fit"].append(json.loads(_child([sys.executable, "-c", _FIRST_RESULT], env)[2]))
        env = _env(tmp / f"cache_{r}", True)
        env["XDG_CACHE_HOME"] = str(tmp / f"stamps_{r}")
        runs["cold, twins while the children compile"].append(
            json.loads(_child([sys.executable, "-c", _FIRST_RESULT], env)[2]))
        _wait_for_warmup(env)
        runs["warm (kernels cached on disk)"].append(json.loads(_child([sys.executable, "-c", _FIRST_RESULT], env)[2]))
    return runs


def first_result_and_analyze_rows(quick: bool) -> list[tuple]:
    """Time to the first global fit (cold without/with the background compile, warm), analyze and its memory.

    Wall and CPU of the fitting process (best of the repeats; the CPU of the compiling children is not counted:
    they outlive the process that started them).
    """
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        first = _first_results(tmp, 1 if quick else 3)
        warm = min(t["total"] for t in first["warm (kernels cached on disk)"])
        warm_cpu = min(t["cpu"] for t in first["warm (kernels cached on disk)"])
        cells = first["warm (kernels cached on disk)"][0]["cells"]
        for label, runs in first.items():  # column finding competes with the compiling children for the cores
            total, cpu = min(t["total"] for t in runs), min(t["cpu"] for t in runs)
            columns = min(t["columns"] for t in runs)
            case = f"first global LiNGAM result ({cells} cells), {label} (columns {columns:.1f} s)"
            if label.startswith("cold"):
                rows += [(case, total, "warm", warm, total - warm, "s more than warm"),
                         (f"{case}, CPU s", cpu, "warm, CPU s", warm_cpu, cpu - warm_cpu, "CPU s more than warm")]
            else:
                rows += [(case, total, "warm", warm, 1.0, "this / warm"),
                         (f"{case}, CPU s", cpu, "warm, CPU s", warm_cpu, 1.0, "this / warm")]

        sample = synthetic_perovskite(seed=0)
        image = tmp / "default_sample.npy"
        np.save(image, sample.image)
        command = [sys.executable, "-m", "napari_causal_lattice.cli", "analyze", str(image), "--pixel-size",
                   str(sample.pixel_size), "--overwrite", "--out"]
        caches = [("warm", tmp / "cache_0")] if quick else [("cold", tmp / "cache_c"), ("warm", tmp / "cache_c")]
        runs = {label: _child(command + [str(tmp / f"out_{label}")], _env(cache, True))[:2] for label, cache in caches}
        t_warm, rss = runs["warm"]
        label = f"analyze default sample {sample.image.shape[0]}x{sample.image.shape[1]} px"
        if "cold" in runs:
            rows.append((f"{label}, cold cache", runs["cold"][0], "warm cache", t_warm, runs["cold"][0] - t_warm,
                         "s more than warm"))
        rows.append((f"{label}, warm cache", t_warm, "first result, warm", warm, t_warm / warm, "analyze / first"))
        image_mb = sample.image.size * 8 / 2**20
        rows.append(("analyze peak RSS (MB, not s), warm", rss, "image as float64 (MB)", image_mb, rss / image_mb,
                     "RSS / image"))
    return rows


# ------------------------------------------------------------------------------------------ the table
def _number(value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def format_table(rows: list[tuple], header: str) -> str:
    """One markdown table: case, ours (s), reference, reference (s), ratio, what the ratio is."""
    lines = [header, "", "| case | ours s | reference | reference s | ratio | ratio is |", "|---|---:|---|---:|---:|---|"]
    for case, ours, ref_name, ref, ratio, meaning in rows:
        lines.append(f"| {case} | {_number(ours)} | {ref_name} | {_number(ref)} | **{_number(ratio)}** | {meaning} |")
    return "\n".join(lines)


def write_readme(table: str, path: Path = README) -> None:
    """Replace the table between the two markers in the README with ``table``."""
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path} has no {README_BEGIN!r} ... {README_END!r} markers around the benchmark table")
    start, stop = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    path.write_text(text[:start] + "\n" + table + "\n" + text[stop:])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads (about 3 min)")
    parser.add_argument("--readme", action="store_true", help="also write the table into README.md")
    parser.add_argument("--only", default="", help="comma-separated stages to run (e.g. null_rows); default all")
    args = parser.parse_args(argv)
    stages = (lingam_rows, compare_and_wall_rows, column_rows, null_rows, first_result_and_analyze_rows)
    if args.only:
        stages = tuple(stage for stage in stages if stage.__name__ in args.only.split(","))
    rows = []
    for stage in stages:
        start = time.perf_counter()
        rows += stage(args.quick)
        print(f"{stage.__name__}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    import numba

    header = (f"{'--quick, ' if args.quick else ''}{os.cpu_count()} cores, python {platform.python_version()}, "
              f"numpy {np.__version__}, numba {numba.__version__}")
    table = format_table(rows, header)
    print(table)
    if args.readme:
        write_readme(table)


if __name__ == "__main__":
    main()
