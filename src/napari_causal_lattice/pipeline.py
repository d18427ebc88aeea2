"""Headless pipeline: image -> columns -> cells -> global and sliding LiNGAM -> PCA -> results folder.

:func:`run_pipeline` runs one image (its sliding windows optionally on any executor, e.g. a dask cluster);
:func:`analyze_images` runs many (serially, in a local process pool, or on a dask.distributed cluster, each
image whole on one worker or split window by window over all of them).  Before any heavy work it checks every
input, the output folder and the parameters and lists all problems at once.  It resumes by content: an image
whose folder holds intact results of the same run (same input bytes, parameters and version) is skipped, one
whose results are incomplete is recomputed, and one whose results came from another run is only replaced with
``overwrite``.  A step that fails (e.g. sliding on a small grid) is recorded with its reason in
``Results.steps`` and the manifest; the steps before it are kept and saved.  Results folders also hold the
figures of :mod:`napari_causal_lattice.figures` (PNG, SVG, PDF), and a batch gets ``report.html``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import shutil
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .figures import check_figure_options, figure_writers
from .io import (
    IMAGE_EXTENSIONS,
    MANIFEST_NAME,
    RESULT_CLASSES,
    LoadedImage,
    Results,
    array_sha256,
    check_results_target,
    clean_stale_temp,
    ResultsBusy,
    ResultsLock,
    file_sha256,
    load_image,
    load_results,
    resume_status,
    run_record,
    save_results,
)
from .lattice import DESCRIPTORS
from .options import AnalysisOptions, flat_problems
from .provenance import jsonable
from .progress import Cancelled, report
from .report import write_report

#: Share of the progress bar given to each stage (sums to 1000).
_STAGES = {"columns": 150, "cells": 30, "polarization": 20, "lingam": 100, "sliding": 450, "null": 150, "pca": 20,
           "save": 80}
#: The steps of one analysis, in order, each with the steps whose results it needs.
STEPS = {"columns": (), "cells": ("columns",), "polarization": ("cells",), "lingam": ("cells",),
         "sliding": ("cells",), "null": ("lingam",), "pca": ("sliding",)}
#: Steps a run may leave out by its options (the instrument null runs only with ``n_images > 0``).
OPTIONAL_STEPS = ("null",)
#: Fitted sliding windows the PCA step needs; with fewer it is skipped (with the reason), not failed.
MIN_PCA_WINDOWS = 3
#: Modules run_pipeline imports lazily (preloaded once by the local process pool's fork server).
_PIPELINE_MODULES = ("napari_causal_lattice.columns", "napari_causal_lattice.cells", "napari_causal_lattice.causal",
                     "napari_causal_lattice.sliding", "napari_causal_lattice.pca")
#: With a dask scheduler, images of at least this many pixels (4096 x 4096) are not sent whole to one worker:
#: they are analysed on the submitting machine and their sliding windows are spread over the cluster.
SPLIT_PIXELS = 4096 * 4096
#: Disk space a results folder needs, estimated from its image file: this much plus the file's size.
_RESULT_BYTES_BASE = 8 * 2**20


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


def parameter_problems(*, workers=None, **analysis) -> list[str]:
    """Everything wrong with the analysis options of :func:`run_pipeline` / :func:`analyze_images`, all at once.

    ``analysis`` are flat :class:`~napari_causal_lattice.options.AnalysisOptions` keywords (``window``,
    ``n_bootstrap``, ``seed``, ``projection``, ``alpha``...).

    Returns
    -------
    list of str
        One message per bad parameter, in the project's words (empty when all are valid).
    """
    return [text for _, text in _typed_problems(workers, analysis)]


def _typed_problems(workers, analysis: dict) -> list[tuple[type, str]]:
    known = AnalysisOptions.flat_specs()
    problems = [(TypeError, f"unknown analysis option {name!r}; known: {', '.join(known)}") for name in analysis
                if name not in known]
    problems += flat_problems({k: v for k, v in analysis.items() if k in known})
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        problems.append((ValueError, f"workers must be a whole number >= 1, got {workers!r}"))
    return problems


def _check_options_type(options) -> None:
    if options is not None and not isinstance(options, AnalysisOptions):
        raise TypeError(f"options must be an AnalysisOptions, got {type(options).__name__}")


def _analysis_options(options, analysis: dict, workers=None, *, more_problems=()) -> AnalysisOptions:
    """The AnalysisOptions of a run: ``options`` (or the defaults) with the flat keywords ``analysis`` applied;
    every problem (with ``more_problems``) raised at once as one ValueError."""
    _check_options_type(options)
    problems = [*_typed_problems(workers, analysis), *((ValueError, p) for p in more_problems)]
    if len(problems) == 1:  # one problem: its own kind (TypeError for a wrong type), as every function does
        raise problems[0][0](problems[0][1])
    _refuse([text for _, text in problems], "cannot run the analysis")
    return AnalysisOptions.from_flat(options, **analysis)


def _refuse(problems: list[str], what: str, *, listed: bool = False) -> None:
    """Raise one ValueError naming every problem (a single one plainly unless ``listed``)."""
    if len(problems) == 1 and not listed:
        raise ValueError(problems[0])
    if problems:
        count = f"{len(problems)} problems" if len(problems) > 1 else "1 problem"
        raise ValueError(f"{what}: {count}:\n" + "\n".join(f"  - {p}" for p in problems))


def _as_image(image_or_path, pixel_size, *, plane=None, scale_unit=None) -> LoadedImage:
    """A LoadedImage from a path, a LoadedImage, a sample with ``.image``/``.pixel_size``, or a 2D array."""
    if isinstance(image_or_path, (str, Path)):
        loaded = load_image(image_or_path, plane=plane, scale_unit=scale_unit)
    elif isinstance(image_or_path, LoadedImage):
        loaded = image_or_path
        if loaded.data.ndim != 2:
            raise ValueError(f"{loaded.source} holds a stack {loaded.data.shape}; load one plane with "
                             "load_image(path, plane=k) (CLI: --plane K)")
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
    options: AnalysisOptions | None = None,
    out=None,
    workers: int | None = None,
    overwrite: bool = False,
    executor=None,
    progress: Callable[[int, int], None] | None = None,
    cancel=None,
    **analysis,
) -> Results:
    """Run the whole analysis on one image.

    Parameters
    ----------
    image_or_path : str, Path, LoadedImage, SyntheticSample or (H, W) array
        The STEM image (a file is read with :func:`~napari_causal_lattice.io.load_image`).
    options : AnalysisOptions, optional
        The options of every step (:mod:`napari_causal_lattice.options`); default :class:`AnalysisOptions()`, the
        same defaults as the CLI's ``analyze`` and the docks.
    **analysis
        Any option of any step by name, replacing that field of ``options`` in every step that has it, e.g.
        ``window=12`` (sliding), ``n_bootstrap=50`` and ``seed=1`` (global and sliding fits), ``projection``,
        ``spacing`` (columns), ``min_quality`` (cells), ``alpha``, ``fdr``, ``min_direction``,
        ``drop_deterministic``, ``backend``, ``eiv`` (causal), ``n_components`` (PCA), ``pixel_size``
        (pm/px, overrides the file's calibration), ``plane`` and ``scale_unit`` (reading a file).  See
        ``AnalysisOptions.flat_specs()`` for every name with its unit, bounds and doc.  Near-deterministic
        descriptors (Vol = a b sin alpha) do not raise a warning here: the note is recorded once per image as
        the ``note`` of the step that found it.
    out : str or Path, optional
        Results folder to write (results, CSV and PNG figures; see :func:`write_outputs`).  It is checked
        before the computation starts, so a folder holding someone else's files fails at once.
    workers : int, optional
        Threads that fit the sliding windows in parallel (default: all cores).
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
        Columns, Cells, global LingamResult, SlidingResult, AdjacencyPCA, ``image_info`` and ``steps`` (each
        step's outcome; besides ``status`` and ``reason``, ``steps["cells"]["flags"]`` holds the count of
        flagged cells by reason, ``steps["sliding"]["window"]`` the window side used (cells; the number
        ``window="auto"`` chose), and a step may carry a ``note``, e.g. near-deterministic descriptors, and
        ``warnings``: every warning the step raised, e.g. an implausible calibration; after the run each
        warning that is not a note is issued once as a ``UserWarning`` naming its step).  A step that fails after the columns were found does not raise: it is recorded as
        ``{"status": "failed", "reason": ...}``, the steps that need it as ``"skipped"``, and what was
        computed is returned (and saved); check ``results.failed_steps``.

    Raises
    ------
    ValueError, TypeError
        Bad parameters (all listed at once), an unreadable image, a refused ``out`` folder (also
        :class:`~napari_causal_lattice.io.ResultsBusy` when another run is writing into it), or no columns found.
    """
    out_problem = None if out is None else _writable_problem(Path(out).expanduser().absolute())
    options = _analysis_options(options, analysis, workers, more_problems=[out_problem] if out_problem else [])
    load = options.load
    image = _as_image(image_or_path, load.pixel_size, plane=load.plane, scale_unit=load.scale_unit)
    if out is None:
        lock = contextlib.nullcontext()
    else:
        Path(out).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
        lock = ResultsLock(out)  # held until the results are saved: a second run on ``out`` is refused
    with lock:
        if out is not None:
            check_results_target(out, overwrite=overwrite)
        stages = _StageProgress(progress, cancel)
        objects, steps = _run_steps(image, options, stages, workers=workers, executor=executor, cancel=cancel)
        results = Results(**{k: v for k, v in objects.items() if k in RESULT_CLASSES}, image_info=image.info,
                          steps=steps)
        if not _IN_BATCH.get():  # a batch prints them as lines of its own
            for text in _step_warning_texts(steps):
                warnings.warn(text, UserWarning, stacklevel=2)
        stages.start("save")
        if out is not None:
            write_outputs(out, results, image=image.data, overwrite=overwrite,
                          run=run_record(input_sha256=image.sha256, params=options.identity()))
        stages.finish()
    return results


def _run_steps(image: LoadedImage, options: AnalysisOptions, stages: _StageProgress, *, workers, executor, cancel):
    """Run every step in order; (result objects, step outcomes).  Only a failure of the first step raises."""
    from .causal import fit_lingam
    from .cells import build_cells
    from .columns import find_columns
    from .pca import adjacency_pca
    from .sliding import sliding_lingam

    ps = image.pixel_size

    def pca(sliding):
        fitted = int(np.count_nonzero(sliding.fitted))
        if fitted < MIN_PCA_WINDOWS:
            raise _CannotRun(
                f"only {fitted} of the {sliding.fitted.size} sliding windows could be fitted (window "
                f"{sliding.window} cells); PCA needs at least {MIN_PCA_WINDOWS}: use a smaller window "
                "(--window), a smaller --min-cells or a larger image"
            )
        k = min(int(options.pca.n_components), fitted - 1, len(DESCRIPTORS) ** 2)
        return adjacency_pca(sliding, options=replace(options.pca, n_components=k))

    run = {
        "columns": lambda: find_columns(image.data, pixel_size=ps, options=options.columns, progress=stages.sub,
                                        cancel=cancel),
        "cells": lambda: build_cells(objects["columns"], pixel_size=ps, options=options.cells),
        "polarization": lambda: _polarization(image, objects, options.polarization),
        "lingam": lambda: fit_lingam(objects["cells"].table, variables=list(DESCRIPTORS), options=options.lingam,
                                     units=objects["cells"].units, progress=stages.sub, cancel=cancel),
        "sliding": lambda: sliding_lingam(objects["cells"], options=options.sliding, workers=workers,
                                          executor=executor, progress=stages.sub, cancel=cancel),
        "null": lambda: _instrument_null(image, objects, options, stages, workers=workers, executor=executor,
                                         cancel=cancel),
        "pca": lambda: pca(objects["sliding"]),
    }
    objects: dict = {}
    steps: dict = {}
    noted: set = set()
    for name, needs in STEPS.items():
        stages.start(name)
        if name == "null" and options.null.n_images == 0:  # no instrument null asked for: not a step of this run
            stages.finish()
            continue
        missing = [n for n in needs if n not in objects]
        if missing:
            steps[name] = {"status": "skipped", "reason": f"needs {missing[0]}, which {steps[missing[0]]['status']}"}
        else:
            try:
                objects[name], notes, caught = _noting_warnings(run[name], noted)
                steps[name] = {"status": "done", "reason": "", **_step_facts(name, objects[name], objects),
                               **({"note": " ".join(notes)} if notes else {}),
                               **({"warnings": caught} if caught else {})}
            except Cancelled:
                raise
            except _CannotRun as exc:  # this input does not allow the step: skipped with the reason, not failed
                steps[name] = {"status": "skipped", "reason": str(exc)}
            except Exception as exc:  # noqa: BLE001 - recorded with its reason; what was computed is kept
                if name == "columns":
                    raise
                steps[name] = {"status": "failed", "reason": _describe(exc)}
        stages.finish()
    return objects, steps


#: True while a batch runs an image: the batch reports the steps' warnings itself (one clean line each).
_IN_BATCH = contextvars.ContextVar("napari_causal_lattice_in_batch", default=False)


def _step_warning_texts(steps: dict) -> list[str]:
    """The steps' recorded warnings that are not notes (the notes are shown with the results), for Python
    callers of :func:`run_pipeline`, which get them as warnings after the run."""
    notes = {" ".join(str(s.get("note", "")).split()) for s in steps.values() if isinstance(s, dict)}
    return [f"{name}: {text}" for name, s in steps.items() if isinstance(s, dict)
            for text in s.get("warnings", []) if text not in notes]


class _CannotRun(Exception):
    """A step that this input does not allow (e.g. PCA of fewer than 3 windows): recorded as skipped."""


def _noting_warnings(call, noted: set):
    """``(call(), notes, warnings)``: every warning the step raises is recorded instead of shown.

    A :class:`DeterministicDescriptorWarning` becomes a note once per kind (``noted`` holds the kinds already
    noted for this image); ``warnings`` lists each distinct warning message of the step (notes included), for
    the manifest, ``--json``, report.html and one clean line on stderr.
    """
    from .causal import DeterministicDescriptorWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = call()
    notes, messages = [], []
    for w in caught:
        text = " ".join(str(w.message).split())
        if issubclass(w.category, DeterministicDescriptorWarning):
            if w.category in noted:
                continue
            noted.add(w.category)
            notes.append(str(w.message))
        if text not in messages and text not in noted:
            noted.add(text)
            messages.append(text)
    return value, notes, messages


def _polarization(image: LoadedImage, objects: dict, options) -> dict:
    """The mean polarization of the cells (with the fit-model variants and the reference region of ``options``);
    with a reference, ``objects["cells"]`` becomes the referenced cells (maps and figures show the referenced P).

    Returns the step's facts: mean P, its statistical and systematic sigma (pm, per component), the reference.
    """
    from .cells import mean_polarization, referenced_polarization

    cells, columns = objects["cells"], objects["columns"]
    variants = None if options.variants else {}
    mean = mean_polarization(cells, variants, image=image.data, columns=columns, reference=options.reference,
                             warn_sigma=options.warn_sigma)
    if options.reference is not None:
        objects["cells"] = referenced_polarization(cells, options.reference)
    return {"mean": [round(float(v), 4) for v in mean.mean], "sigma_stat": [round(float(v), 4) for v in
                                                                              mean.sigma_stat],
            "sigma_sys": [round(float(v), 4) for v in mean.sigma_sys], "n_cells": int(mean.n_cells),
            "reference": options.reference, "n_reference": int(mean.n_reference), "unit": cells.units.get("Px", ""),
            "variants": list(mean.variants)}


def _instrument_null(image: LoadedImage, objects: dict, options: AnalysisOptions, stages, *, workers, executor,
                     cancel):
    """The instrument null of this image, and the global and sliding results tested against it (replacing
    ``objects["lingam"]`` and ``objects["sliding"]``: an edge is significant only when it beats both)."""
    from .null import instrument_null

    lingam, sliding = objects["lingam"], objects.get("sliding")
    null = instrument_null(image.data, objects["columns"], objects["cells"], n_images=options.null.n_images,
                           seed=int(options.lingam.seed or 0), shuffle_intensities=options.null.shuffle_intensities,
                           smooth_degree=options.null.smooth_degree, result=lingam, sliding=sliding,
                           workers=workers, executor=executor, progress=stages.sub, cancel=cancel)
    objects["lingam"] = null.apply(lingam)
    if sliding is not None:
        objects["sliding"] = null.apply_sliding(sliding)
    return null


def _step_facts(name: str, value, objects: dict) -> dict:
    """What the results record about a finished step besides its status: the atom columns found with the line
    jitter and the faint columns, the cells and the flagged cells by reason, the mean polarization, the sliding
    window used (cells), the edges the instrument null explains."""
    if name == "columns":
        facts = {"count": int(len(value.positions))}
        if value.scan is not None:
            facts["jitter"] = {"rms_px": round(float(value.scan.rms_px), 4),
                               "rms_pm": None if value.scan.rms_pm is None else round(float(value.scan.rms_pm), 3),
                               "corrected": bool(value.scan.applied)}
        if value.faint is not None:
            facts["faint"] = int(np.count_nonzero(value.faint))
        return facts
    if name == "cells":
        return {"count": int(len(value.table)), "flags": value.flag_counts()}
    if name == "polarization":
        return value
    if name == "sliding":
        return {"window": int(value.window)}
    if name == "null":
        lingam = objects["lingam"]
        instrument = getattr(lingam, "instrument", None)
        return {"n_images": int(value.n_images),
                "instrument_edges": [] if instrument is None else [
                    f"{lingam.names[i]} <- {lingam.names[j]}" for i, j in zip(*np.nonzero(instrument))]}
    return {}


def step_warnings(steps: dict) -> list[str]:
    """Every warning of a run, in step order: the steps' warnings and each skipped step with its reason.

    A step skipped only because a step it needs failed is not repeated (the failure is reported).
    """
    found = []
    for name, s in steps.items():
        if not isinstance(s, dict):
            continue
        found += [w for w in s.get("warnings", []) if w not in found]
        if s.get("status") == "skipped" and not str(s.get("reason", "")).startswith("needs "):
            found.append(f"{name} skipped: {s.get('reason', '')}")
    return found


def step_summary(steps: dict) -> str:
    """One line of the facts in ``steps``: columns and cells found, window used, flagged cells by reason (empty
    when none).  Warnings and notes are not in it: see :func:`step_warnings`."""
    parts = []
    for step, what in (("columns", "columns"), ("cells", "cells")):
        count = (steps.get(step) or {}).get("count")
        if count is not None:
            parts.append(f"{count} {what}")
    jitter = (steps.get("columns") or {}).get("jitter")
    if jitter is not None:
        done = "corrected" if jitter["corrected"] else "not corrected"
        parts.append(f"line jitter {jitter['rms_px']:.2f} px rms ({done})")
    faint = (steps.get("columns") or {}).get("faint")
    if faint:
        parts.append(f"{faint} faint columns")
    window = (steps.get("sliding") or {}).get("window")
    if window is not None:
        parts.append(f"window {window} cells")
    polar = steps.get("polarization") or {}
    if "mean" in polar:
        sigma = np.hypot(polar["sigma_stat"], polar["sigma_sys"])
        ref = f" (referenced to {polar['reference']})" if polar.get("reference") else " (no reference)"
        parts.append(f"mean P ({polar['mean'][0]:+.2f}, {polar['mean'][1]:+.2f}) +- ({sigma[0]:.2f}, "
                     f"{sigma[1]:.2f}) {polar.get('unit', '')}{ref}")
    instrument = (steps.get("null") or {}).get("instrument_edges")
    if instrument is not None:
        parts.append(f"{len(instrument)} edges the instrument explains")
    flags = (steps.get("cells") or {}).get("flags")
    if flags is not None:
        total = sum(flags.values())
        detail = ", ".join(f"{n} {reason}" for reason, n in flags.items())
        parts.append(f"{total} flagged cells" + (f" ({detail})" if detail else ""))
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------- figures


def write_outputs(out, results: Results, *, image=None, overwrite: bool = False, run: dict | None = None,
                  figure_formats=("png",), dpi: float = 150.0, style: str = "paper") -> Path:
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
    run : dict, optional
        :func:`~napari_causal_lattice.io.run_record` of the run, for resuming by content.
    figure_formats, dpi, style
        Figure files and their look (see :func:`~napari_causal_lattice.figures.figure_writers`).

    Returns
    -------
    Path
        The results folder (its manifest also records ``results.steps``).
    """
    return save_results(
        out,
        columns=results.columns,
        cells=results.cells,
        lingam=results.lingam,
        sliding=results.sliding,
        pca=results.pca,
        null=results.null,
        image_info=results.image_info,
        run=run,
        steps=results.steps,
        overwrite=overwrite,
        extra=figure_writers(results, image, formats=figure_formats, dpi=dpi, style=style),
    )


# ----------------------------------------------------------------------------------------------- batches


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
        every ``warnings`` of the run (:func:`step_warnings`), and the ``image_notes`` of reading the image (no
        pixel size, plane chosen, unit assumed...)."""
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, TypeError, OSError, ImportError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


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


def _compute(job: dict):
    """Load one image and run the pipeline on it (in this process, a worker process or on a dask worker).

    With ``job["folder"]`` the results are written there and not returned (a local worker process shares the
    disk); otherwise they are returned for the caller to write.  Returns (results or None, steps, message,
    seconds); ``message`` is the error when nothing could be computed.
    """
    start = time.perf_counter()
    try:
        image, load = job["image"], job["options"].load
        if not isinstance(image, LoadedImage):
            image = _as_image(image, load.pixel_size, plane=load.plane, scale_unit=load.scale_unit)
        token = _IN_BATCH.set(True)
        try:
            results = run_pipeline(image, options=job["options"], workers=job["workers"],
                                   executor=job.get("executor"), progress=job.get("progress"))
        finally:
            _IN_BATCH.reset(token)
        if job.get("folder") is not None:
            write_outputs(job["folder"], results, image=image.data, overwrite=True,
                          run={**job["run"], "input_sha256": image.sha256}, **job["figure_options"])
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


def _writable_problem(folder: Path) -> str | None:
    """Why nothing can be written under ``folder`` (existing or not), or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"--out {folder}: {existing} is a file, not a folder"
    probe = existing / f".ncl-write-test-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return f"--out {folder}: cannot write in {existing} ({reason}); choose a folder you can write to"
    return None


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
    replacing our own files).  With ``locks`` (a list) each image's :class:`~napari_causal_lattice.io.ResultsLock`
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
        source = Path(path).expanduser()
        if not source.is_file():
            problems.append(f"{path}: no such image file" if not source.exists()
                            else f"{path} is a folder, not an image file")
            continue
        if source.suffix.lower() not in IMAGE_EXTENSIONS:
            problems.append(f"{path}: unsupported file type {source.suffix or '(none)'}; supported: "
                            f"{', '.join(IMAGE_EXTENSIONS)}")
            continue
        if locks is not None and out_problem is None:
            try:
                folder.parent.mkdir(parents=True, exist_ok=True)
                locks.append(ResultsLock(folder).acquire())
            except ResultsBusy as exc:
                problems.append(str(exc))
                continue
        if out_problem is None and folder.parent.is_dir():
            clean_stale_temp(folder)
        try:
            with open(source, "rb") as fh:
                fh.read(1)
            sha = file_sha256(source) if folder.exists() else None
        except OSError as exc:
            problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
            continue
        run = run_record(input_sha256=sha or "", params=params)
        if figures is not None:
            run["figures"] = figures
        status, detail = resume_status(folder, run) if sha is not None else ("absent", "")
        if status in ("foreign", "file"):
            problems.append(f"{folder} already holds files that are not napari-causal-lattice results ({detail}); "
                            "choose another --out. Nothing was written." if status == "foreign" else detail)
            continue
        if status == "complete" and not overwrite:
            manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
            steps = manifest.get("steps") if isinstance(manifest.get("steps"), dict) else {}
            if figures is not None and (manifest.get("run") or {}).get("figures") != figures:
                redraw[k] = run
            else:
                skipped[k] = BatchItem(str(path), str(folder), "skipped", "results complete", steps=steps,
                                       image_notes=_image_notes(manifest))
            continue
        if status in ("changed", "damaged") and not overwrite:
            what = "results of another run" if status == "changed" else "a damaged manifest"
            problems.append(f"{folder} holds {what} ({detail}); pass --overwrite (overwrite=True) to replace "
                            "them, or choose another --out")
            continue
        if status == "incomplete":
            notes[k] = f"earlier results are incomplete ({detail}); recomputing"
        runs[k] = run
        needed += _RESULT_BYTES_BASE + source.stat().st_size
    if out_problem is None and runs:
        problems += _space_problem(Path(out).expanduser().absolute(), needed)
    _refuse(problems, "cannot start the batch (nothing was computed)", listed=True)
    return _Plan(folders=folders, runs=runs, skipped=skipped, notes=notes, redraw=redraw)


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
        The options of every step, as in :func:`run_pipeline` (the same for every image).
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


def _run_batch(plan: _Plan, paths, out, options: AnalysisOptions, figure_options, bar, *, workers, scheduler,
               split_pixels) -> list[BatchItem]:
    """Carry out a checked plan: report the skips, redraw figures, compute the rest, write report.html."""
    n = len(paths)
    items: dict[int, BatchItem] = dict(plan.skipped)
    for k, item in plan.skipped.items():
        earlier = _failed_steps_text(item.steps)
        bar.line(f"[{k + 1}/{n}] {Path(paths[k]).name}: skipped (results complete in {item.out}"
                 + (f"; earlier run: {earlier})" if earlier else ")"))
    for k, note in plan.notes.items():
        bar.line(f"[{k + 1}/{n}] {Path(paths[k]).name}: note: {note}")

    def job(k, image, folder=None):
        return {"image": image, "options": options, "workers": 1, "folder": folder, "run": plan.runs[k],
                "figure_options": figure_options}

    def load(k):
        try:
            load_options = options.load
            image = _as_image(paths[k], load_options.pixel_size, plane=load_options.plane,
                              scale_unit=load_options.scale_unit)
        except (ValueError, TypeError, OSError, ImportError) as exc:
            finish(k, None, {}, _describe(exc), 0.0)
            return None
        for note in image.notes:
            bar.line(f"[{k + 1}/{n}] {Path(paths[k]).name}: note: {note}")
        return image

    def finish(k, results, steps, message, seconds, image=None):
        path, folder = paths[k], plan.folders[k]
        if results is not None:
            start = time.perf_counter()
            try:
                write_outputs(folder, results, image=image.data, overwrite=True,
                              run={**plan.runs[k], "input_sha256": image.sha256}, **figure_options)
            except (ValueError, TypeError, OSError) as exc:
                steps, message = {}, _describe(exc)
            seconds += time.perf_counter() - start
        failed = _failed_steps_text(steps)
        status = "failed" if not steps else "partial" if failed else "done"
        message = message or failed
        manifest = _read_json(folder / MANIFEST_NAME) if status != "failed" else {}
        items[k] = BatchItem(path, str(folder), status, message, seconds, steps, _image_notes(manifest))
        text = {"done": f"done in {seconds:.1f} s -> {folder}",
                "partial": f"PARTIAL in {seconds:.1f} s -> {folder} ({message})",
                "failed": f"FAILED: {message}"}[status]
        facts = step_summary(steps)
        bar.line(f"[{k + 1}/{n}] {Path(path).name}: {text}" + (f"; {facts}" if facts else ""))
        for warning in step_warnings(steps):
            bar.line(f"[{k + 1}/{n}] {Path(path).name}: warning: {warning}")

    def run_here(k, executor=None, image=None):
        image = load(k) if image is None else image
        if image is None:
            return
        if executor is not None:
            bar.line(f"[{k + 1}/{n}] {Path(paths[k]).name}: analysed here, its sliding windows on the cluster")
        bar.begin(f"[{k + 1}/{n}] {Path(paths[k]).name}")
        task = {**job(k, image), "workers": None if executor is not None else workers, "executor": executor,
                "progress": bar}
        results, steps, message, seconds = _compute(task)
        finish(k, results, steps, message, seconds, image)

    def redraw(k):
        start = time.perf_counter()
        image = load(k)
        if image is None:
            return
        folder = plan.folders[k]
        try:
            results = load_results(folder)
            write_outputs(folder, results, image=image.data, overwrite=True,
                          run={**plan.redraw[k], "input_sha256": image.sha256}, **figure_options)
        except (ValueError, TypeError, OSError) as exc:
            finish(k, None, {}, f"could not redraw the figures: {_describe(exc)}", time.perf_counter() - start)
            return
        seconds = time.perf_counter() - start
        items[k] = BatchItem(paths[k], str(folder), "done", "figures redrawn from the saved results", seconds,
                             results.steps, _image_notes(results.manifest))
        look = f"{'/'.join(figure_options['figure_formats'])}, {figure_options['dpi']} dpi, {figure_options['style']}"
        bar.line(f"[{k + 1}/{n}] {Path(paths[k]).name}: results complete; figures redrawn ({look}) from the saved "
                 f"results in {seconds:.1f} s -> {folder}")

    for k in plan.redraw:
        redraw(k)
    todo = list(plan.runs)
    if scheduler is not None and todo:
        _run_on_dask(todo, paths, scheduler, job, load, finish, bar, split_pixels=split_pixels, run_here=run_here)
    elif workers and workers > 1 and len(todo) > 1:
        _run_in_pool({k: job(k, paths[k], str(plan.folders[k])) for k in todo}, workers, finish, bar)
    else:
        for k in todo:
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


def _run_on_dask(todo: list, paths, scheduler, job, load, finish, bar, *, split_pixels, run_here):
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
            image = load(k) if len(todo) > 1 else None
            if len(todo) == 1 or (image is not None and image.data.size >= split_pixels):
                split[k] = image
            elif image is not None:
                images[k] = image
        if images:
            bar.line(f"running {len(images)} images on the dask cluster at {address}")
        futures = {client.submit(_compute, job(k, image), pure=False, key=f"ncl-image-{k}-{id(image)}"): k
                   for k, image in images.items()}
        if split:
            executor = client.get_executor(pure=False)
            for k, image in split.items():
                run_here(k, executor, image)
        for future in as_completed(futures):
            k = futures[future]
            finish(k, *future.result(), images[k])
    finally:
        if own:
            client.close()
