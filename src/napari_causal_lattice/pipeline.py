"""Headless pipeline: image -> columns -> cells -> global and sliding LiNGAM -> PCA -> results folder.

:func:`run_pipeline` runs one image (its sliding windows optionally on any executor, e.g. a dask cluster);
:func:`analyze_images` runs many (serially, in a local process pool, or on a dask.distributed cluster, each
image whole on one worker or split window by window over all of them), skipping images whose results are
already complete, so an interrupted batch resumes where it stopped.  Results folders also hold the figures of
:mod:`napari_causal_lattice.figures` (PNG, SVG, PDF), and a batch gets ``report.html``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .figures import check_figure_options, figure_writers
from .io import LoadedImage, Results, array_sha256, check_results_target, load_image, results_complete, save_results
from .lattice import DESCRIPTORS
from .progress import report
from .report import write_report

#: Share of the progress bar given to each stage (sums to 1000).
_STAGES = {"columns": 150, "cells": 50, "lingam": 100, "sliding": 600, "pca": 20, "save": 80}
#: Modules run_pipeline imports lazily (preloaded once by the local process pool's fork server).
_PIPELINE_MODULES = ("napari_causal_lattice.columns", "napari_causal_lattice.cells", "napari_causal_lattice.causal",
                     "napari_causal_lattice.sliding", "napari_causal_lattice.pca")
#: With a dask scheduler, images of at least this many pixels (4096 x 4096) are not sent whole to one worker:
#: they are analysed on the submitting machine and their sliding windows are spread over the cluster.
SPLIT_PIXELS = 4096 * 4096


class _StageProgress:
    """Maps each stage's own (done, total) onto one 0..1000 bar and honours ``cancel`` between stages."""

    def __init__(self, progress, cancel):
        self.progress = progress
        self.cancel = cancel
        self.offset = 0

    def start(self, stage: str):
        report(self.progress, self.offset, 1000, self.cancel)
        self._width = _STAGES[stage]

    def sub(self, done: int, total: int):
        if self.progress is not None and total > 0:
            self.progress(self.offset + int(self._width * min(done, total) / total), 1000)

    def finish(self):
        self.offset += self._width
        report(self.progress, self.offset, 1000, self.cancel)


def _as_image(image_or_path, pixel_size) -> LoadedImage:
    """A LoadedImage from a path, a LoadedImage, a sample with ``.image``/``.pixel_size``, or a 2D array."""
    if isinstance(image_or_path, (str, Path)):
        loaded = load_image(image_or_path)
    elif isinstance(image_or_path, LoadedImage):
        loaded = image_or_path
        if loaded.data.ndim != 2:
            raise ValueError(f"{loaded.source} holds a stack {loaded.data.shape}; load one plane with "
                             "load_image(path, plane=k)")
    else:
        data = getattr(image_or_path, "image", image_or_path)
        sample_ps = getattr(image_or_path, "pixel_size", None)
        if not isinstance(data, np.ndarray):
            raise TypeError(
                f"run_pipeline needs an image path, a LoadedImage or a 2D array, got {type(image_or_path).__name__}"
            )
        if data.ndim != 2:
            raise ValueError(f"the image must be 2D (rows, columns), got shape {data.shape}; pick one plane first")
        if not np.all(np.isfinite(data)):
            raise ValueError("the image has NaN or infinite pixels; fill or crop them before analysis")
        ps = None if sample_ps is None else float(sample_ps)
        loaded = LoadedImage(
            data=np.asarray(data, dtype=np.float64),
            pixel_size=ps,
            units="px" if ps is None else "pm",
            metadata={"format": "array"},
            source="<array>",
            sha256=array_sha256(data),
        )
    if pixel_size is not None:
        if isinstance(pixel_size, bool) or not np.isfinite(pixel_size) or pixel_size <= 0:
            raise ValueError(f"pixel_size must be a positive number of pm per px, got {pixel_size!r}")
        notes = tuple(n for n in loaded.notes if "no pixel size" not in n)
        if loaded.pixel_size is not None and not np.isclose(loaded.pixel_size, pixel_size):
            notes += (f"the file says {loaded.pixel_size:.4g} pm/px; using the given {float(pixel_size):.4g} pm/px.",)
        loaded = replace(loaded, pixel_size=float(pixel_size), units="pm", notes=notes)
    return loaded


def run_pipeline(
    image_or_path,
    *,
    pixel_size: float | None = None,
    out=None,
    window: int = 20,
    n_bootstrap: int = 100,
    seed: int = 0,
    workers: int | None = None,
    n_components: int = 4,
    overwrite: bool = False,
    executor=None,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
) -> Results:
    """Run the whole analysis on one image.

    Parameters
    ----------
    image_or_path : str, Path, LoadedImage, SyntheticSample or (H, W) array
        The STEM image (a file is read with :func:`~napari_causal_lattice.io.load_image`).
    pixel_size : float, optional
        Pixel size in pm/px; overrides the file's calibration (needed for files without one to get pm).
    out : str or Path, optional
        Results folder to write (results, CSV and PNG figures; see :func:`write_outputs`).  It is checked
        before the computation starts, so a folder holding someone else's files fails at once.
    window : int
        Sliding window side in unit cells (stride ``window // 2``, as in the paper).
    n_bootstrap : int
        Bootstrap resamples of the global fit and of every window (0: no probabilities).
    seed : int
        Seed of every random step (bootstrap resampling); the same seed gives the same results.
    workers : int, optional
        Threads that fit the sliding windows in parallel (default: all cores).
    n_components : int
        PCA components of the sliding adjacency (fewer if there are too few fitted windows).
    overwrite : bool
        Replace earlier results in ``out``.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Where the sliding-window fits run (see :func:`~napari_causal_lattice.sliding.sliding_lingam`): e.g. a
        dask cluster, so the windows of one huge image spread over many machines.  Columns, cells, the
        global fit and PCA run here.  Results are bit-identical to a local run.
    progress : callable, optional
        ``progress(done, total)`` over the whole run (total 1000).
    cancel : object with ``is_set()``, optional
        Stops between steps (and between windows) with :class:`~napari_causal_lattice.progress.Cancelled`.

    Returns
    -------
    Results
        Columns, Cells, global LingamResult, SlidingResult, AdjacencyPCA and ``image_info``.
    """
    from .causal import fit_lingam
    from .cells import build_cells
    from .columns import find_columns
    from .pca import adjacency_pca
    from .sliding import sliding_lingam

    image = _as_image(image_or_path, pixel_size)
    if out is not None:
        check_results_target(out, overwrite=overwrite)
    stages = _StageProgress(progress, cancel)
    ps = image.pixel_size

    stages.start("columns")
    columns = find_columns(image.data, pixel_size=ps, progress=stages.sub, cancel=cancel)
    stages.finish()

    stages.start("cells")
    cells = build_cells(columns, pixel_size=ps)
    stages.finish()

    stages.start("lingam")
    lingam = fit_lingam(cells.table, names=list(DESCRIPTORS), n_bootstrap=n_bootstrap, seed=seed,
                        units=cells.units, progress=stages.sub, cancel=cancel)
    stages.finish()

    stages.start("sliding")
    sliding = sliding_lingam(cells, window=window, n_bootstrap=n_bootstrap, seed=seed, workers=workers,
                             executor=executor, progress=stages.sub, cancel=cancel)
    stages.finish()

    stages.start("pca")
    fitted = int(np.count_nonzero(sliding.fitted))
    k = min(int(n_components), fitted - 1, len(DESCRIPTORS) ** 2)
    if k < 1:
        raise ValueError(
            f"only {fitted} of the {sliding.fitted.size} sliding windows could be fitted (window {window} cells); "
            "use a smaller --window or a larger image"
        )
    pca = adjacency_pca(sliding, n_components=k)
    stages.finish()

    results = Results(columns=columns, cells=cells, lingam=lingam, sliding=sliding, pca=pca, image_info=image.info)
    stages.start("save")
    if out is not None:
        write_outputs(out, results, image=image.data, overwrite=overwrite)
    stages.finish()
    return results


# ----------------------------------------------------------------------------------------------- figures


def write_outputs(out, results: Results, *, image=None, overwrite: bool = False, figure_formats=("png",),
                  dpi: float = 150.0, style: str = "paper") -> Path:
    """Save ``results`` with CSV tables and PNG figures into ``out`` in one atomic save.

    Parameters
    ----------
    out : str or Path
        Results folder (see :func:`~napari_causal_lattice.io.save_results` for the rules).
    results : Results
        From :func:`run_pipeline`.
    image : (H, W) array, optional
        The analysed image, drawn under every map (map figures are skipped without it).
    overwrite : bool
        Replace earlier results in ``out``.
    figure_formats, dpi, style
        Figure files and their look (see :func:`~napari_causal_lattice.figures.figure_writers`).

    Returns
    -------
    Path
        The results folder.
    """
    return save_results(
        out,
        columns=results.columns,
        cells=results.cells,
        lingam=results.lingam,
        sliding=results.sliding,
        pca=results.pca,
        image_info=results.image_info,
        overwrite=overwrite,
        extra=figure_writers(results, image, formats=figure_formats, dpi=dpi, style=style),
    )


# ----------------------------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class BatchItem:
    """Outcome of one image of a batch: ``status`` is "done", "skipped" (complete results) or "failed"."""

    image: str
    out: str
    status: str
    message: str = ""
    seconds: float = 0.0


def output_folders(paths, out) -> list[Path]:
    """One results subfolder of ``out`` per image, named after the file (disambiguated when names clash)."""
    out = Path(out)
    stems = [Path(p).stem for p in paths]
    names = []
    for p, stem in zip(paths, stems):
        name = stem if stems.count(stem) == 1 else f"{stem}_{Path(p).suffix.lstrip('.').lower()}"
        while name in names:
            name += "_"
        names.append(name)
    return [out / n for n in names]


def _compute(job: dict):
    """Run the pipeline on one loaded image (runs in a worker process or on a dask worker)."""
    start = time.perf_counter()
    try:
        results = run_pipeline(job["image"], window=job["window"], n_bootstrap=job["n_bootstrap"],
                               seed=job["seed"], workers=job["workers"])
    except Exception as exc:  # noqa: BLE001 - reported per image; the batch goes on
        return None, _describe(exc), time.perf_counter() - start
    return results, "", time.perf_counter() - start


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, TypeError, OSError, ImportError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TextProgress:
    """Plain-text progress bar on a stream (stderr): redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label = ""
        self._last = -1

    def begin(self, label: str):
        self.label = label
        self._last = -1

    def __call__(self, done: int, total: int):
        frac = 0.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
        pct = int(100 * frac)
        if self.tty:
            filled = int(self.width * frac)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {pct:3d}%")
            self.stream.flush()
        elif pct // 10 != self._last // 10:
            self.stream.write(f"{self.label} {pct:3d}%\n")
            self.stream.flush()
        self._last = pct

    def line(self, text: str):
        self.stream.write(("\r" if self.tty else "") + text + "\n")
        self.stream.flush()


def analyze_images(
    paths,
    *,
    out,
    window: int = 20,
    n_bootstrap: int = 100,
    seed: int = 0,
    pixel_size: float | None = None,
    workers: int | None = None,
    scheduler=None,
    split_pixels: int = SPLIT_PIXELS,
    overwrite: bool = False,
    stream=None,
    figure_formats=("png",),
    dpi: float = 150.0,
    style: str = "paper",
) -> list[BatchItem]:
    """Analyse several images into ``out/<image name>/`` folders; resumable.

    Parameters
    ----------
    paths : sequence of str or Path
        Image files.
    out : str or Path
        Parent folder; one results subfolder per image.
    window, n_bootstrap, seed, pixel_size
        As in :func:`run_pipeline` (the same seed for every image).
    workers : int, optional
        Local workers: several images run in a pool of this many processes; a single image (or the serial
        path) fits its windows in this many threads.
    scheduler : str or distributed.Client, optional
        Address of a dask.distributed scheduler (``tcp://host:8786``) or a Client.  Each image runs in one of
        two ways (results are bit-identical either way):

        - whole on one worker (the image is read here and sent; results come back and are written here);
        - split: when it is the only image to compute, or has at least ``split_pixels`` pixels, it is
          analysed here (columns, cells, global fit, PCA) while its sliding-window fits, the bulk of the
          work, are spread over all the cluster's workers.

        Whole-image tasks are submitted first, then split images run one after another.
    split_pixels : int
        Pixel count from which an image is split over the cluster (default :data:`SPLIT_PIXELS`, 4096 x 4096).
    overwrite : bool
        Recompute images whose results are complete (default: skip them).
    stream : text stream, optional
        Where progress goes (default stderr).
    figure_formats, dpi, style
        Figure files of each image and their look (see :func:`~napari_causal_lattice.figures.figure_writers`).
        The batch also gets ``out/report.html`` (:func:`~napari_causal_lattice.report.write_report`).

    Returns
    -------
    list of BatchItem
        One per image, in input order.
    """
    bar = TextProgress(stream)
    check_figure_options(figure_formats, dpi, style)
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no images given; pass one or more image files")
    if isinstance(split_pixels, bool) or not isinstance(split_pixels, (int, np.integer)) or split_pixels < 1:
        raise ValueError(f"split_pixels must be a positive whole number of pixels, got {split_pixels!r}")
    folders = output_folders(paths, out)
    items: dict[int, BatchItem] = {}
    jobs: dict[int, dict] = {}
    images: dict[int, LoadedImage] = {}
    n = len(paths)
    for k, (path, folder) in enumerate(zip(paths, folders)):
        if not overwrite and results_complete(folder):
            items[k] = BatchItem(path, str(folder), "skipped", "results complete")
            bar.line(f"[{k + 1}/{n}] {Path(path).name}: skipped (results complete in {folder})")
            continue
        try:
            check_results_target(folder, overwrite=True)
            images[k] = _as_image(path, pixel_size)
        except (ValueError, TypeError, OSError, ImportError) as exc:
            items[k] = BatchItem(path, str(folder), "failed", _describe(exc))
            bar.line(f"[{k + 1}/{n}] {Path(path).name}: FAILED: {_describe(exc)}")
            continue
        for note in images[k].notes:
            bar.line(f"[{k + 1}/{n}] {Path(path).name}: note: {note}")
        jobs[k] = {"image": images[k], "window": window, "n_bootstrap": n_bootstrap, "seed": seed, "workers": 1}

    def finish(k, results, message, seconds):
        path, folder = paths[k], folders[k]
        if results is not None:
            start = time.perf_counter()
            try:
                write_outputs(folder, results, image=images[k].data, overwrite=True, figure_formats=figure_formats,
                              dpi=dpi, style=style)
            except (ValueError, TypeError, OSError) as exc:
                results, message = None, _describe(exc)
            seconds += time.perf_counter() - start
        status = "done" if results is not None else "failed"
        items[k] = BatchItem(path, str(folder), status, message, seconds)
        text = f"done in {seconds:.1f} s -> {folder}" if status == "done" else f"FAILED: {message}"
        bar.line(f"[{k + 1}/{n}] {Path(path).name}: {text}")

    def run_here(k, executor=None):
        if executor is not None:
            bar.line(f"[{k + 1}/{n}] {Path(paths[k]).name}: analysed here, its sliding windows on the cluster")
        bar.begin(f"[{k + 1}/{n}] {Path(paths[k]).name}")
        start = time.perf_counter()
        try:
            results = run_pipeline(jobs[k]["image"], window=window, n_bootstrap=n_bootstrap, seed=seed,
                                   workers=None if executor is not None else workers, executor=executor,
                                   progress=bar)
            message = ""
        except Exception as exc:  # noqa: BLE001 - reported per image; the batch goes on
            results, message = None, _describe(exc)
        finish(k, results, message, time.perf_counter() - start)

    if scheduler is not None and jobs:
        split = [k for k in jobs if len(jobs) == 1 or images[k].data.size >= split_pixels]
        _run_on_dask(jobs, scheduler, finish, bar, split=split, run_here=run_here)
    elif workers and workers > 1 and len(jobs) > 1:
        _run_in_pool(jobs, workers, finish, bar)
    else:
        for k in jobs:
            run_here(k)
    batch = [items[k] for k in range(n)]
    bar.line(f"report: {write_report(out, batch)}")
    return batch


def _run_in_pool(jobs: dict, workers: int, finish, bar):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    bar.line(f"running {len(jobs)} images on {min(workers, len(jobs))} local worker processes")
    # forkserver: children fork from one clean server that imported the pipeline once (no threads inherited)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, *_PIPELINE_MODULES])
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = {pool.submit(_compute, job): k for k, job in jobs.items()}
        for future in as_completed(futures):
            finish(futures[future], *future.result())


def _run_on_dask(jobs: dict, scheduler, finish, bar, *, split, run_here):
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ImportError(
            "--scheduler needs dask.distributed: pip install 'napari-causal-lattice[dask]'"
        ) from exc
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler, timeout="20s") if own else scheduler
    except OSError as exc:
        raise OSError(f"cannot reach the dask scheduler at {scheduler} ({exc}); is it running and reachable?") from exc
    try:
        address = client.scheduler.address
        whole = {k: job for k, job in jobs.items() if k not in split}
        if whole:
            bar.line(f"running {len(whole)} images on the dask cluster at {address}")
        futures = {client.submit(_compute, job, pure=False, key=f"ncl-image-{k}-{id(job)}"): k
                   for k, job in whole.items()}
        if split:
            executor = client.get_executor(pure=False)
            for k in split:
                run_here(k, executor)
        for future in as_completed(futures):
            finish(futures[future], *future.result())
    finally:
        if own:
            client.close()
