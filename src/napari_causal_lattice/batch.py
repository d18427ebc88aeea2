"""Many images: plan the batch, run it (serially, in a local process pool or on a dask.distributed cluster), and
report it.

:func:`analyze_images` analyses each image with :func:`~napari_causal_lattice.pipeline.run_pipeline` into its own
results folder.  :func:`plan_batch` checks every input, the output folder and the parameters before any heavy work
and lists all problems at once.  A batch resumes by content: an image whose folder holds intact results of the same
run (same input bytes, parameters and version) is skipped, one whose results are incomplete is recomputed, and one
whose results came from another run is only replaced with ``overwrite``.  Each image is one :class:`_Job` (plain,
picklable data) that :func:`_compute` carries out here, in a worker process or on a dask worker (whole, or split
window by window over the cluster); the batch gets ``report.html``.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .figures import check_figure_options
from .options import AnalysisOptions
from .pipeline import (
    _as_image,
    _check_options_type,
    _describe,
    _refuse,
    _writable_problem,
    parameter_problems,
    quiet_step_warnings,
    run_pipeline,
    step_summary,
    step_warnings,
    write_outputs,
)
from .provenance import jsonable
from .readers import IMAGE_EXTENSIONS, LoadedImage, file_sha256
from .report import write_report
from .store import MANIFEST_NAME, ResultsBusy, ResultsLock, clean_stale_temp, load_results, resume_status, run_record

#: Modules run_pipeline imports lazily (preloaded once by the local process pool's fork server).
_PIPELINE_MODULES = ("napari_causal_lattice.columns", "napari_causal_lattice.cells", "napari_causal_lattice.causal",
                     "napari_causal_lattice.sliding", "napari_causal_lattice.pca")
#: With a dask scheduler, images of at least this many pixels (4096 x 4096) are not sent whole to one worker:
#: they are analysed on the submitting machine and their sliding windows are spread over the cluster.
SPLIT_PIXELS = 4096 * 4096
#: Disk space a results folder needs, estimated from its image file: this much plus the file's size.
_RESULT_BYTES_BASE = 8 * 2**20


@dataclass(frozen=True)
class BatchItem:
    """Outcome of one image of a batch.

    ``status`` is "done" (every step ran), "partial" (a step failed; the steps before it are saved),
    "skipped" (intact results of the same run were already there) or "failed" (nothing saved); ``steps`` holds
    each step's outcome (as in ``Results.steps``; from the earlier run for a skipped image).
    """

    image: str
    out: str
    status: str
    message: str = ""
    seconds: float = 0.0
    steps: dict = field(default_factory=dict)
    image_notes: tuple = ()

    @property
    def ok(self) -> bool:
        """True when every step of this image succeeded (now or in the earlier run it skipped to)."""
        failed = any(isinstance(s, dict) and s.get("status") == "failed" for s in self.steps.values())
        return self.status in ("done", "skipped") and not failed

    @property
    def counts(self) -> dict:
        """Atom columns and unit cells found (None where the step did not run)."""
        return {what: (self.steps.get(what) or {}).get("count") for what in ("columns", "cells")}

    def as_dict(self) -> dict:
        """JSON-able form (``--json`` output): besides the steps, the atom ``columns`` and unit ``cells`` found,
        the sliding ``window`` used (cells), the flagged cells by reason (``flags``), the steps' ``notes`` and
        every ``warnings`` of the run (:func:`~napari_causal_lattice.pipeline.step_warnings`), and the
        ``image_notes`` of reading the image (no pixel size, plane chosen, unit assumed...)."""
        return {"image": self.image, "out": self.out, "status": self.status, "message": self.message,
                "seconds": round(self.seconds, 3), **self.counts,
                "window": (self.steps.get("sliding") or {}).get("window"),
                "flags": (self.steps.get("cells") or {}).get("flags"),
                "notes": [s["note"] for s in self.steps.values() if isinstance(s, dict) and s.get("note")],
                "warnings": step_warnings(self.steps), "image_notes": list(self.image_notes), "steps": self.steps}


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


#: Advice of column finding to give the lattice spacing, which a batch (and the CLI) cannot pass on.
_SPACING_ADVICE = re.compile(r"(give|set) the (A-A |lattice )?spacing( to the A-A distance)? explicitly")


def _batch_advice(message: str) -> str:
    """``message`` with advice a batch cannot follow (giving the spacing) made concrete for it."""
    return _SPACING_ADVICE.sub(
        "give the A-A spacing explicitly, which a batch cannot pass on: run find_columns(image, spacing=...) on "
        "this image from Python", message)


def _failed_steps_text(steps: dict) -> str:
    return "; ".join(f"{name} failed: {s.get('reason', '')}" for name, s in steps.items()
                     if isinstance(s, dict) and s.get("status") == "failed")


@dataclass(frozen=True)
class _Job:
    """One image's analysis as a unit of work for :func:`_compute`: plain data, picklable (for a worker process or
    a dask worker) while ``executor`` and ``progress`` are None.

    ``image`` is a path (read where the job runs) or a LoadedImage; ``run`` the image's run record without the
    input hash (added once the image is read).  With ``folder`` the results are written there and not returned (a
    local worker process shares the disk).  ``workers``, ``executor`` and ``progress`` go to
    :func:`~napari_causal_lattice.pipeline.run_pipeline`.
    """

    image: object
    options: AnalysisOptions
    run: dict
    figure_options: dict
    workers: int | None = 1
    folder: str | None = None
    executor: object = None
    progress: object = None


def _compute(job: _Job):
    """Load one image and run the pipeline on it (in this process, a worker process or on a dask worker).

    Returns (results or None, steps, message, seconds); results are None when they were written to
    ``job.folder``, and ``message`` is the error when nothing could be computed.
    """
    start = time.perf_counter()
    try:
        image, load = job.image, job.options.load
        if not isinstance(image, LoadedImage):
            image = _as_image(image, load.pixel_size, plane=load.plane, scale_unit=load.scale_unit)
        with quiet_step_warnings():
            results = run_pipeline(image, options=job.options, workers=job.workers, executor=job.executor,
                                   progress=job.progress)
        if job.folder is not None:
            write_outputs(job.folder, results, image=image.data, overwrite=True,
                          run={**job.run, "input_sha256": image.sha256}, **job.figure_options)
            return None, results.steps, "", time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - reported per image; the batch goes on
        return None, {}, _batch_advice(_describe(exc)), time.perf_counter() - start
    return results, results.steps, "", time.perf_counter() - start


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


@dataclass(frozen=True)
class _Plan:
    """What a batch will do with each image, decided before any heavy work."""

    folders: list
    runs: dict  # k -> run record of the images to compute
    skipped: dict  # k -> BatchItem of the images whose results are complete
    notes: dict  # k -> note about an image (e.g. why its old results are recomputed)
    redraw: dict = field(default_factory=dict)  # k -> run record: results complete, figure options changed


def plan_batch(paths, out, options: AnalysisOptions | None, *, overwrite: bool = False, problems=(),
               figures: dict | None = None, locks: list | None = None) -> _Plan:
    """Check everything a batch needs before computing, and decide what to do with each image.

    ``options`` are the (validated) options of the run; those that change a number (``options.identity()``)
    with the input's hash make each image's run record (None when ``problems`` already lists what is wrong with
    them: then the other checks still run, so that every problem is listed at once).  Checks that every input
    exists and is readable in a supported format, that ``out`` is writable with room for the results,
    and each image's results folder (complete results of the same run are skipped, or only get their figures
    redrawn when ``figures`` (formats, dpi, style) differ from the recorded ones; incomplete ones recomputed;
    results of another run, a damaged manifest or foreign files are problems unless ``overwrite`` allows
    replacing our own files).  With ``locks`` (a list) each image's :class:`~napari_causal_lattice.store.ResultsLock`
    is taken and appended to it, and a folder in use by another run is a problem; the caller releases them.
    Temporary folders left by killed saves are removed.

    Returns
    -------
    _Plan
        Per image: the run record to compute, or the BatchItem of a skip; notes to show.

    Raises
    ------
    ValueError
        Listing every problem at once; nothing was computed or written.
    """
    params = options.identity() if options is not None else {}
    problems = list(problems)
    folders = output_folders(paths, out)
    out_problem = _writable_problem(Path(out).expanduser().absolute())
    problems += [out_problem] if out_problem else []
    runs, skipped, notes, redraw, needed = {}, {}, {}, {}, 0
    figures = None if figures is None else jsonable(dict(figures))
    for k, (path, folder) in enumerate(zip(paths, folders)):
        decision, value, note = _plan_image(path, folder, params, figures, overwrite=overwrite, locks=locks,
                                            out_ok=out_problem is None)
        if decision == "problem":
            problems.append(value)
        elif decision == "skip":
            skipped[k] = value
        elif decision == "redraw":
            redraw[k] = value
        else:
            runs[k] = value
            if note:
                notes[k] = note
            needed += _RESULT_BYTES_BASE + Path(path).expanduser().stat().st_size
    if out_problem is None and runs:
        problems += _space_problem(Path(out).expanduser().absolute(), needed)
    _refuse(problems, "cannot start the batch (nothing was computed)", listed=True)
    return _Plan(folders=folders, runs=runs, skipped=skipped, notes=notes, redraw=redraw)


def _plan_image(path, folder: Path, params: dict, figures: dict | None, *, overwrite: bool, locks: list | None,
                out_ok: bool) -> tuple:
    """What a batch does with one image, as ``(decision, value, note)``: ``("problem", message, "")``,
    ``("skip", BatchItem, "")``, ``("redraw", run record, "")`` or ``("run", run record, note)``.

    With ``out_ok`` (the output folder is writable) its lock is taken into ``locks`` (when given) and the
    temporary folders of killed saves are removed.
    """
    source = Path(path).expanduser()
    if not source.is_file():
        return "problem", (f"{path}: no such image file" if not source.exists()
                           else f"{path} is a folder, not an image file"), ""
    if source.suffix.lower() not in IMAGE_EXTENSIONS:
        return "problem", (f"{path}: unsupported file type {source.suffix or '(none)'}; supported: "
                           f"{', '.join(IMAGE_EXTENSIONS)}"), ""
    if locks is not None and out_ok:
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            locks.append(ResultsLock(folder).acquire())
        except ResultsBusy as exc:
            return "problem", str(exc), ""
    if out_ok and folder.parent.is_dir():
        clean_stale_temp(folder)
    try:
        with open(source, "rb") as fh:
            fh.read(1)
        sha = file_sha256(source) if folder.exists() else None
    except OSError as exc:
        return "problem", f"{path}: cannot be read ({exc.strerror or exc})", ""
    run = run_record(input_sha256=sha or "", params=params)
    if figures is not None:
        run["figures"] = figures
    status, detail = resume_status(folder, run) if sha is not None else ("absent", "")
    if status in ("foreign", "file"):
        return "problem", (f"{folder} already holds files that are not napari-causal-lattice results ({detail}); "
                           "choose another --out. Nothing was written." if status == "foreign" else detail), ""
    if status == "complete" and not overwrite:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        if figures is not None and (manifest.get("run") or {}).get("figures") != figures:
            return "redraw", run, ""
        steps = manifest.get("steps") if isinstance(manifest.get("steps"), dict) else {}
        return "skip", BatchItem(str(path), str(folder), "skipped", "results complete", steps=steps,
                                 image_notes=_image_notes(manifest)), ""
    if status in ("changed", "damaged") and not overwrite:
        what = "results of another run" if status == "changed" else "a damaged manifest"
        return "problem", (f"{folder} holds {what} ({detail}); pass --overwrite (overwrite=True) to replace them, "
                           "or choose another --out"), ""
    note = f"earlier results are incomplete ({detail}); recomputing" if status == "incomplete" else ""
    return "run", run, note


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _image_notes(manifest: dict) -> tuple:
    """The notes of reading the image, as recorded in a results manifest."""
    notes = (manifest.get("image") or {}).get("notes") if isinstance(manifest.get("image"), dict) else None
    return tuple(str(n) for n in notes) if isinstance(notes, list) else ()


def _space_problem(out: Path, needed: int) -> list[str]:
    existing = out
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        return [f"--out {out}: about {needed / 2**20:.0f} MB are needed for the results but only "
                f"{free / 2**20:.0f} MB are free; free some space or choose another folder"]
    return []


def analyze_images(
    paths,
    *,
    out,
    options: AnalysisOptions | None = None,
    workers: int | None = None,
    scheduler=None,
    split_pixels: int = SPLIT_PIXELS,
    overwrite: bool = False,
    stream=None,
    figure_formats=("png",),
    dpi: float = 150.0,
    style: str = "paper",
    **analysis,
) -> list[BatchItem]:
    """Analyse several images into ``out/<image name>/`` folders; resumable.

    Parameters
    ----------
    paths : sequence of str or Path
        Image files.
    out : str or Path
        Parent folder; one results subfolder per image.
    options, **analysis
        The options of every step, as in :func:`~napari_causal_lattice.pipeline.run_pipeline` (the same for
        every image).
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
        Recompute images whose results are complete, and replace results of another run (default: skip the
        first and refuse the second).
    stream : text stream, optional
        Where progress goes (default stderr).
    figure_formats, dpi, style
        Figure files of each image and their look (see :func:`~napari_causal_lattice.figures.figure_writers`).
        The batch also gets ``out/report.html`` (:func:`~napari_causal_lattice.report.write_report`).

    Returns
    -------
    list of BatchItem
        One per image, in input order.

    Raises
    ------
    ValueError
        Before anything is computed, listing every problem found by :func:`plan_batch`.
    """
    bar = TextProgress(stream)
    check_figure_options(figure_formats, dpi, style)
    figure_options = {"figure_formats": tuple(figure_formats), "dpi": dpi, "style": style}
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no images given; pass one or more image files")
    if isinstance(split_pixels, bool) or not isinstance(split_pixels, (int, np.integer)) or split_pixels < 1:
        raise ValueError(f"split_pixels must be a positive whole number of pixels, got {split_pixels!r}")
    _check_options_type(options)
    problems = parameter_problems(workers=workers, **analysis)
    options = None if problems else AnalysisOptions.from_flat(options, **analysis)
    if isinstance(scheduler, str):
        _refuse([p for p in [scheduler_problem(scheduler)] if p], "cannot start the batch (nothing was computed)")
    locks: list = []
    created = _missing_folders(Path(out).expanduser().absolute())
    try:
        plan = plan_batch(paths, out, options, overwrite=overwrite, problems=problems, locks=locks,
                          figures={"formats": list(figure_formats), "dpi": dpi, "style": style})
        return _run_batch(plan, paths, out, options, figure_options, bar, workers=workers, scheduler=scheduler,
                          split_pixels=split_pixels)
    finally:
        for lock in locks:
            lock.release()
        for folder in created:  # a refused batch leaves no folder behind (its locks were taken in it)
            try:
                folder.rmdir()
            except OSError:
                break


def scheduler_problem(address: str, *, timeout: float = 1.0) -> str | None:
    """Why the dask scheduler at ``address`` cannot be reached (a TCP connection attempt of at most
    ``timeout`` seconds), or None.  Only ``tcp://host:port`` and ``host:port`` addresses are probed; others
    (``inproc://``, ``tls://``, ...) are left to dask."""
    from urllib.parse import urlsplit

    text = address if "://" in address else f"tcp://{address}"
    parts = urlsplit(text)
    if parts.scheme != "tcp":
        return None
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        return f"--scheduler {address}: expected an address like tcp://host:8786"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
            f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else exc.strerror or str(exc))
        return (f"cannot reach the dask scheduler at {address} ({reason}); start it (dask scheduler) or check "
                "the address and that this machine can reach it")


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


class _BatchRun:
    """A checked plan being carried out on this machine: reads images, runs jobs here, writes and reports each
    image's outcome into ``items`` (k -> BatchItem).  The pool and the dask paths hand it what their workers
    return; only :class:`_Job` and :func:`_compute` travel to the workers."""

    def __init__(self, plan: _Plan, paths, options: AnalysisOptions, figure_options: dict, bar, *, workers):
        self.plan = plan
        self.paths = paths
        self.options = options
        self.figure_options = figure_options
        self.bar = bar
        self.workers = workers
        self.items: dict[int, BatchItem] = dict(plan.skipped)

    def label(self, k: int) -> str:
        """``[k/n] name`` of image k, the start of each of its lines."""
        return f"[{k + 1}/{len(self.paths)}] {Path(self.paths[k]).name}"

    def report_plan(self) -> None:
        """One line per image skipped (results complete) and per note of the plan."""
        for k, item in self.plan.skipped.items():
            earlier = _failed_steps_text(item.steps)
            self.bar.line(f"{self.label(k)}: skipped (results complete in {item.out}"
                          + (f"; earlier run: {earlier})" if earlier else ")"))
        for k, note in self.plan.notes.items():
            self.bar.line(f"{self.label(k)}: note: {note}")

    def job(self, k: int, image, folder: str | None = None) -> _Job:
        """The job of image k (``image`` a path or a LoadedImage) with one thread for its windows."""
        return _Job(image=image, options=self.options, run=self.plan.runs[k], figure_options=self.figure_options,
                    workers=1, folder=folder)

    def load(self, k: int) -> LoadedImage | None:
        """Image k read here with its notes shown; None (and the image recorded as failed) when it cannot be."""
        try:
            load = self.options.load
            image = _as_image(self.paths[k], load.pixel_size, plane=load.plane, scale_unit=load.scale_unit)
        except (ValueError, TypeError, OSError, ImportError) as exc:
            self.finish(k, None, {}, _describe(exc), 0.0)
            return None
        for note in image.notes:
            self.bar.line(f"{self.label(k)}: note: {note}")
        return image

    def finish(self, k: int, results, steps: dict, message: str, seconds: float, image=None) -> None:
        """Record (and write, when ``results`` came back) the outcome of image k, with its lines."""
        path, folder = self.paths[k], self.plan.folders[k]
        if results is not None:
            start = time.perf_counter()
            try:
                write_outputs(folder, results, image=image.data, overwrite=True,
                              run={**self.plan.runs[k], "input_sha256": image.sha256}, **self.figure_options)
            except (ValueError, TypeError, OSError) as exc:
                steps, message = {}, _describe(exc)
            seconds += time.perf_counter() - start
        failed = _failed_steps_text(steps)
        status = "failed" if not steps else "partial" if failed else "done"
        message = message or failed
        manifest = _read_json(folder / MANIFEST_NAME) if status != "failed" else {}
        self.items[k] = BatchItem(path, str(folder), status, message, seconds, steps, _image_notes(manifest))
        text = {"done": f"done in {seconds:.1f} s -> {folder}",
                "partial": f"PARTIAL in {seconds:.1f} s -> {folder} ({message})",
                "failed": f"FAILED: {message}"}[status]
        facts = step_summary(steps)
        self.bar.line(f"{self.label(k)}: {text}" + (f"; {facts}" if facts else ""))
        for warning in step_warnings(steps):
            self.bar.line(f"{self.label(k)}: warning: {warning}")

    def run_here(self, k: int, executor=None, image=None) -> None:
        """Analyse image k in this process (its sliding windows on ``executor`` when given) with a progress bar."""
        image = self.load(k) if image is None else image
        if image is None:
            return
        if executor is not None:
            self.bar.line(f"{self.label(k)}: analysed here, its sliding windows on the cluster")
        self.bar.begin(self.label(k))
        job = replace(self.job(k, image), workers=None if executor is not None else self.workers, executor=executor,
                      progress=self.bar)
        self.finish(k, *_compute(job), image)

    def redraw(self, k: int) -> None:
        """Redraw the figures of image k from its saved results (complete; only the figure options changed)."""
        start = time.perf_counter()
        image = self.load(k)
        if image is None:
            return
        folder = self.plan.folders[k]
        try:
            results = load_results(folder)
            write_outputs(folder, results, image=image.data, overwrite=True,
                          run={**self.plan.redraw[k], "input_sha256": image.sha256}, **self.figure_options)
        except (ValueError, TypeError, OSError) as exc:
            self.finish(k, None, {}, f"could not redraw the figures: {_describe(exc)}", time.perf_counter() - start)
            return
        seconds = time.perf_counter() - start
        self.items[k] = BatchItem(self.paths[k], str(folder), "done", "figures redrawn from the saved results",
                                  seconds, results.steps, _image_notes(results.manifest))
        options = self.figure_options
        look = f"{'/'.join(options['figure_formats'])}, {options['dpi']} dpi, {options['style']}"
        self.bar.line(f"{self.label(k)}: results complete; figures redrawn ({look}) from the saved results in "
                      f"{seconds:.1f} s -> {folder}")


def _run_batch(plan: _Plan, paths, out, options: AnalysisOptions, figure_options, bar, *, workers, scheduler,
               split_pixels) -> list[BatchItem]:
    """Carry out a checked plan: report the skips, redraw figures, compute the rest, write report.html."""
    batch = _BatchRun(plan, paths, options, figure_options, bar, workers=workers)
    batch.report_plan()
    for k in plan.redraw:
        batch.redraw(k)
    todo = list(plan.runs)
    if scheduler is not None and todo:
        _run_on_dask(batch, todo, scheduler, split_pixels=split_pixels)
    elif workers and workers > 1 and len(todo) > 1:
        _run_in_pool(batch, todo, workers)
    else:
        for k in todo:
            batch.run_here(k)
    items = [batch.items[k] for k in range(len(paths))]
    bar.line(f"report: {write_report(out, items)}")
    return items


def _run_in_pool(batch: _BatchRun, todo: list, workers: int) -> None:
    """Images ``todo`` in a pool of local worker processes, each writing its own results folder."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    jobs = {k: batch.job(k, batch.paths[k], str(batch.plan.folders[k])) for k in todo}
    batch.bar.line(f"running {len(jobs)} images on {min(workers, len(jobs))} local worker processes")
    # forkserver: children fork from one clean server that imported the pipeline once (no threads inherited)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, *_PIPELINE_MODULES])
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = {pool.submit(_compute, job): k for k, job in jobs.items()}
        for future in as_completed(futures):
            batch.finish(futures[future], *future.result())


def _run_on_dask(batch: _BatchRun, todo: list, scheduler, *, split_pixels: int) -> None:
    """Images ``todo`` on a dask.distributed cluster: small ones whole on a worker each, the only image or large
    ones (``split_pixels``) here with their sliding windows spread over the cluster."""
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
        images, split = {}, {}
        for k in todo:
            image = batch.load(k) if len(todo) > 1 else None
            if len(todo) == 1 or (image is not None and image.data.size >= split_pixels):
                split[k] = image
            elif image is not None:
                images[k] = image
        if images:
            batch.bar.line(f"running {len(images)} images on the dask cluster at {address}")
        futures = {client.submit(_compute, batch.job(k, image), pure=False, key=f"ncl-image-{k}-{id(image)}"): k
                   for k, image in images.items()}
        if split:
            executor = client.get_executor(pure=False)
            for k, image in split.items():
                batch.run_here(k, executor, image)
        for future in as_completed(futures):
            k = futures[future]
            batch.finish(k, *future.result(), images[k])
    finally:
        if own:
            client.close()
