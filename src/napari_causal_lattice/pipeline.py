"""One image through the whole analysis: image -> columns -> cells -> global and sliding LiNGAM -> instrument
null -> PCA -> results folder.

:func:`run_pipeline` runs the steps of :data:`STEPS` in order on one image (its sliding windows optionally on any
executor, e.g. a dask cluster).  Before any heavy work it checks the options and the output folder and lists all
problems at once.  A step that fails (e.g. sliding on a small grid) is recorded with its reason in
``Results.steps`` and the manifest, the steps that need it are skipped, and the steps before it are kept;
:func:`step_summary` and :func:`step_warnings` put those outcomes into words.  :func:`write_outputs` saves the
results with their figures (:mod:`napari_causal_lattice.figures`: PNG, SVG, PDF) in one atomic save.  Many images
(plan, resume, process pool, dask) are :mod:`napari_causal_lattice.batch`'s work.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from .figures import figure_writers
from .lattice import DESCRIPTORS
from .options import AnalysisOptions, flat_problems
from .progress import Cancelled, report
from .readers import LoadedImage, array_sha256, load_image
from .store import RESULT_CLASSES, Results, ResultsLock, check_results_target, run_record, save_results

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
    """Everything wrong with the analysis options of :func:`run_pipeline` /
    :func:`~napari_causal_lattice.batch.analyze_images`, all at once.

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
        The STEM image (a file is read with :func:`~napari_causal_lattice.readers.load_image`).
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
        :class:`~napari_causal_lattice.store.ResultsBusy` when another run is writing into it), or no columns found.
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
        if not _QUIET_WARNINGS.get():  # a batch prints them as lines of its own
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


#: True within :func:`quiet_step_warnings`: the caller reports the steps' warnings itself.
_QUIET_WARNINGS = contextvars.ContextVar("napari_causal_lattice_quiet_step_warnings", default=False)


@contextlib.contextmanager
def quiet_step_warnings():
    """Within it, :func:`run_pipeline` records its steps' warnings in ``Results.steps`` without issuing them; a
    batch reports them itself, as one clean line each."""
    token = _QUIET_WARNINGS.set(True)
    try:
        yield
    finally:
        _QUIET_WARNINGS.reset(token)


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


def write_outputs(out, results: Results, *, image=None, overwrite: bool = False, run: dict | None = None,
                  figure_formats=("png",), dpi: float = 150.0, style: str = "paper") -> Path:
    """Save ``results`` with CSV tables and PNG figures into ``out`` in one atomic save.

    Parameters
    ----------
    out : str or Path
        Results folder (see :func:`~napari_causal_lattice.store.save_results` for the rules).
    results : Results
        From :func:`run_pipeline`.
    image : (H, W) array, optional
        The analysed image, drawn under every map (map figures are skipped without it).
    overwrite : bool
        Replace earlier results in ``out``.
    run : dict, optional
        :func:`~napari_causal_lattice.store.run_record` of the run, for resuming by content.
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


def _describe(exc: BaseException) -> str:
    """An error in one line, for the reason of a failed step or image (its type unless it is a usage error)."""
    if isinstance(exc, (ValueError, TypeError, OSError, ImportError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


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
