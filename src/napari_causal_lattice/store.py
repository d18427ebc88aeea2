"""The results store: one folder per analysis, saved atomically and read back exactly.

:func:`save_results` stores result objects (columns, cells, global and sliding LiNGAM, PCA, instrument null) in
one folder: ``manifest.json`` (format version, package versions, every object's provenance, the input image) and
``arrays.npz`` (every array, under flattened keys such as ``cells/table/data/Px``), plus ``columns.csv`` /
``cells.csv`` in physical units.  The save is atomic: everything is written into a hidden temporary folder beside
the target and renamed into place at the end, so an interrupted save never leaves a half-written result
(:func:`clean_stale_temp` removes what killed saves left).  The manifest also records the run
(:func:`run_record`: input hash, every parameter that changes a number, package version; :func:`resume_status`
compares it with a new run, :func:`run_changes` says how they differ), each step's outcome (``steps``), a SHA-256
checksum of every file and every stored array, and a checksum of the manifest's own content (names, labels,
parameters), all of which :func:`load_results` verifies: it reads the folder back exactly or raises
:class:`ResultsError` naming the damaged file.  :class:`ResultsLock` keeps two runs from writing into one results
folder at the same time (:class:`ResultsBusy`).
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import os
import shutil
import socket
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .provenance import jsonable, package_versions
from .readers import array_sha256, file_sha256

#: Version of the results folder layout; bump when the layout or a state key changes incompatibly.
FORMAT_VERSION = 1
FORMAT_NAME = "napari-causal-lattice results"
MANIFEST_NAME = "manifest.json"
ARRAYS_NAME = "arrays.npz"

#: Result fields of a results folder, in pipeline order, and the class each one holds.
RESULT_CLASSES = {
    "columns": "napari_causal_lattice.columns:Columns",
    "cells": "napari_causal_lattice.cells:Cells",
    "lingam": "napari_causal_lattice.causal.result:LingamResult",
    "sliding": "napari_causal_lattice.sliding:SlidingResult",
    "pca": "napari_causal_lattice.pca:AdjacencyPCA",
    "null": "napari_causal_lattice.null:InstrumentNull",
}
#: Files and folders a results folder of ours may hold besides those its manifest lists (a damaged manifest
#: leaves only these names to recognise it by).
_OUR_NAMES = (MANIFEST_NAME, ARRAYS_NAME, "columns.csv", "cells.csv", "figures", "report.html")
#: Hidden siblings of a results folder made by an atomic save: ``.<name>.tmp-<host>-<pid>-<hex>`` while it is
#: written, ``.<name>.old-<host>-<pid>-<hex>`` while it replaces earlier results.
_TEMP_KINDS = ("tmp", "old")
#: A temporary folder of another machine (or of a format without a process id) counts as abandoned after this.
STALE_SECONDS = 24 * 3600.0


class ResultsError(ValueError):
    """A results folder cannot be used: not ours, incomplete, damaged or of another format.

    The message names the folder and the file at fault.  It is the only error :func:`load_results` raises for
    anything found on disk (a subclass of ValueError).
    """


@dataclass(frozen=True)
class Results:
    """The result objects of one analysis, as saved by :func:`save_results` (absent ones are None).

    Attributes
    ----------
    columns, cells, lingam, sliding, pca
        ``Columns``, ``Cells``, ``LingamResult``, ``SlidingResult``, ``AdjacencyPCA`` or None.
    null : InstrumentNull or None
        The instrument null the causal results were tested against (:func:`~napari_causal_lattice.null.
        instrument_null`), when one was run.
    image_info : dict or None
        The input image: source path, sha256, shape, pixel size (pm/px), units, notes.
    steps : dict
        Each pipeline step's outcome, step -> ``{"status": "done" | "skipped" | "failed", "reason": str}``
        (empty for results that were not made by the pipeline).
    manifest : dict
        The folder's manifest (format version, package versions, provenance of every object); empty for
        results that were not loaded from disk.
    """

    columns: object = None
    cells: object = None
    lingam: object = None
    sliding: object = None
    pca: object = None
    null: object = None
    image_info: dict | None = None
    steps: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    @property
    def failed_steps(self) -> dict[str, str]:
        """Steps that failed, step -> reason (empty when every step ran or was deliberately skipped)."""
        return {name: str(outcome.get("reason", "")) for name, outcome in self.steps.items()
                if isinstance(outcome, dict) and outcome.get("status") == "failed"}


class _Flattener:
    """Turns a state tree into a JSON tree plus a flat dict of arrays keyed by path."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value, key: str):
        if isinstance(value, dict):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise TypeError(f"state keys must be str; {key} has key {bad[0]!r}")
            return {"__dict__": {k: self.encode(v, f"{key}/{k}") for k, v in value.items()}}
        if isinstance(value, np.ndarray):
            return self._array(value, key)
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if np.isfinite(value) else {"__float__": repr(value)}
        if isinstance(value, (list, tuple)):
            items = [self.encode(v, f"{key}/{n}") for n, v in enumerate(value)]
            return {"__tuple__": items} if isinstance(value, tuple) else items
        raise TypeError(
            f"cannot store {type(value).__name__} at {key!r}: state leaves must be numpy arrays, str, int, float, "
            "bool, None or lists (to_state() of the result class must convert it)"
        )

    def _array(self, value: np.ndarray, key: str):
        if key in self.arrays:
            raise ValueError(f"two state entries flatten to the same key {key!r}")
        if value.dtype.kind == "O":
            flat = value.reshape(-1)
            if not all(isinstance(v, str) for v in flat):
                raise TypeError(f"array {key!r} has object dtype with non-str items; store it as a numeric or str array")
            self.arrays[key] = value.astype(str) if flat.size else np.zeros(value.shape, dtype="<U1")
            return {"__array__": key, "object": True}
        if value.dtype.kind not in "biufcUSMm":
            raise TypeError(f"array {key!r} has unsupported dtype {value.dtype}")
        self.arrays[key] = value
        return {"__array__": key}


def _decode_tree(node, arrays):
    if isinstance(node, list):
        return [_decode_tree(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__dict__" in node:
        return {k: _decode_tree(v, arrays) for k, v in node["__dict__"].items()}
    if "__array__" in node:
        arr = arrays[node["__array__"]]
        return arr.astype(object) if node.get("object") else arr
    if "__float__" in node:
        return float(node["__float__"])
    if "__tuple__" in node:
        return tuple(_decode_tree(v, arrays) for v in node["__tuple__"])
    raise ValueError(f"unknown entry in the results manifest: {sorted(node)}")


def _class_path(obj) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def columns_frame(columns):
    """Atom columns as a DataFrame with positions in px and, when the pixel size is known, in pm.

    Parameters
    ----------
    columns : Columns
        Result of ``find_columns``.

    Returns
    -------
    pandas.DataFrame
        One row per column: ``y [px]``, ``x [px]``, (``y [pm]``, ``x [pm]``), ``sublattice``, ``intensity``,
        ``width [px]`` (``width [pm]``), ``quality``.
    """
    import pandas as pd

    pos = np.asarray(columns.positions, dtype=float)
    ps = columns.pixel_size
    frame = {"y [px]": pos[:, 0], "x [px]": pos[:, 1]}
    if ps is not None:
        frame.update({"y [pm]": pos[:, 0] * ps, "x [pm]": pos[:, 1] * ps})
    frame["sublattice"] = np.asarray(columns.sublattice)
    frame["intensity"] = np.asarray(columns.intensity)
    frame["width [px]"] = np.asarray(columns.width, dtype=float)
    if ps is not None:
        frame["width [pm]"] = np.asarray(columns.width, dtype=float) * ps
    frame["quality"] = np.asarray(columns.quality)
    return pd.DataFrame(frame)


def _is_ours(folder: Path, manifest) -> tuple[bool, list[str]]:
    """Whether ``folder`` (non-empty) holds only files of ours; also the names of foreign files.

    With a readable ``manifest`` the files it lists are ours; without one (damaged or missing), only the names a
    results folder of this package holds (:data:`_OUR_NAMES`) are.
    """
    entries = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    if manifest is not None:
        listed = set(_listed_files(manifest)) | {MANIFEST_NAME}
        listed |= {parent.as_posix() for name in listed for parent in Path(name).parents if parent != Path(".")}
        foreign = [e for e in entries if e not in listed]
    else:
        foreign = [e for e in entries if e.split("/")[0] not in _OUR_NAMES or
                   ("/" in e and e.split("/")[0] != "figures")]
    return not foreign, foreign


def _listed_files(manifest: dict) -> list[str]:
    files = manifest.get("files")
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, str) and f and not Path(f).is_absolute() and ".." not in Path(f).parts]


def _read_manifest(folder: Path) -> dict:
    """The manifest of ``folder``; :class:`ResultsError` when it is missing, damaged or not ours."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ResultsError(f"{folder} is not a napari-causal-lattice results folder (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ResultsError(f"{path} is damaged (not readable JSON: {exc}); the results are damaged") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ResultsError(f"{folder} is not a napari-causal-lattice results folder ({MANIFEST_NAME} is not ours)")
    return manifest


def _read_manifest_quiet(folder: Path):
    try:
        return _read_manifest(folder)
    except ResultsError:
        return None


def manifest_checksum(manifest: Mapping) -> str:
    """SHA-256 (hex) of a manifest's content: every entry but the checksum itself, as canonical JSON.

    It covers what the numbers mean (result names, variable and sublattice labels, units, parameters, run,
    steps, provenance) and the checksums of the files and arrays, so an edit anywhere in ``manifest.json`` is
    found by :func:`load_results`.
    """
    content = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, allow_nan=False).encode("utf-8")).hexdigest()


def _damage(folder: Path, manifest: dict, *, skip=()) -> str | None:
    """What is wrong with the files of a results folder (missing, changed), or None when all are intact.

    Files named in ``skip`` are not checked here (``load_results`` checks ``arrays.npz`` array by array).
    """
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"it is in results format {manifest.get('format_version')!r}, not {FORMAT_VERSION}"
    recorded = manifest.get("manifest_sha256")
    if recorded is not None:
        try:
            edited = recorded != manifest_checksum(manifest)
        except (TypeError, ValueError):
            edited = True
        if edited:
            return (f"{MANIFEST_NAME} was edited after it was saved (its content checksum differs): names, labels "
                    "or parameters may no longer match the numbers")
    checksums = manifest.get("checksums")
    checksums = checksums if isinstance(checksums, dict) else {}
    for name in _listed_files(manifest):
        if name in skip:
            continue
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        expected = checksums.get(name)
        if isinstance(expected, str) and file_sha256(path) != expected:
            return f"{name} is damaged (its checksum differs from the one recorded when it was saved)"
    return None


def results_complete(path) -> bool:
    """True when ``path`` holds a complete, intact results folder of the current format.

    Every file the manifest lists must be present with the checksum recorded at save time.
    """
    folder = Path(path)
    manifest = _read_manifest_quiet(folder) if folder.is_dir() else None
    return manifest is not None and _damage(folder, manifest) is None


def run_record(*, input_sha256: str, params: Mapping) -> dict:
    """What identifies a run for resuming: the input's hash, the parameters that change a number, the version.

    Parameters
    ----------
    input_sha256 : str
        SHA-256 of the input image file (or of the array).
    params : mapping
        Every parameter that changes a result (JSON-able values).

    Returns
    -------
    dict
        ``{"input_sha256", "params", "version"}``, stored as ``manifest["run"]``.
    """
    return {"input_sha256": input_sha256, "params": jsonable(dict(params)),
            "version": package_versions()["napari-causal-lattice"]}


def _leaves(params: dict) -> dict:
    """{option: value} of run parameters that may be grouped by step ({step: {option: value}}); an option shared
    by several steps (e.g. ``seed``) appears once."""
    out = {}
    for key, value in params.items():
        out.update(value if isinstance(value, dict) else {key: value})
    return out


def run_changes(old, new: dict) -> list[str]:
    """How run record ``new`` differs from ``old`` (one phrase per difference; empty when they match)."""
    if not isinstance(old, dict):
        return ["the earlier results record no run (an older version wrote them)"]
    changes = []
    if old.get("input_sha256") != new["input_sha256"]:
        changes.append("the image differs (another file content under the same name)")
    old_params = _leaves(old.get("params") if isinstance(old.get("params"), dict) else {})
    new_params = _leaves(new["params"])
    for key in sorted(set(old_params) | set(new_params)):
        before, after = old_params.get(key, "unset"), new_params.get(key, "unset")
        if before != after:
            changes.append(f"{key} {before!r} -> {after!r}")
    if old.get("version") != new["version"]:
        changes.append(f"napari-causal-lattice {old.get('version')} -> {new['version']}")
    return changes


def resume_status(path, run: dict) -> tuple[str, str]:
    """Whether a run can reuse, must recompute, or must not touch the results folder ``path``.

    Parameters
    ----------
    path : str or Path
        Results folder of one image.
    run : dict
        :func:`run_record` of the new run.

    Returns
    -------
    (status, detail)
        ``"absent"`` (no folder or an empty one), ``"complete"`` (intact results of the same run: reuse),
        ``"incomplete"`` (ours, a file missing or damaged: recompute), ``"changed"`` (intact results of another
        run: ``detail`` names what changed; recompute only with overwrite), ``"damaged"`` (our files with an
        unreadable manifest: overwrite only with overwrite), ``"foreign"`` (files that are not ours: never
        touch) or ``"file"`` (a file, not a folder).
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        return "absent", ""
    if not folder.is_dir():
        return "file", f"{folder} is a file, not a folder"
    if not any(folder.iterdir()):
        return "absent", ""
    manifest = _read_manifest_quiet(folder)
    ours, foreign = _is_ours(folder, manifest)
    if not ours:
        return "foreign", ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
    if manifest is None:
        try:
            _read_manifest(folder)
        except ResultsError as exc:
            return "damaged", str(exc)
    damage = _damage(folder, manifest)
    if damage is not None:
        return "incomplete", damage
    changes = run_changes(manifest.get("run"), run)
    if changes:
        return "changed", "; ".join(changes)
    return "complete", ""


def _temp_name(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _abandoned(path: Path, prefix: str) -> bool:
    """Whether a temporary sibling (``prefix`` + ``<host>-<pid>-<hex>``) was left by a run that no longer exists."""
    host, _, pid = path.name[len(prefix):].rpartition("-")[0].rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:  # the process exists but belongs to someone else
            return False
        return False
    try:
        return time.time() - path.stat().st_mtime > STALE_SECONDS
    except OSError:
        return False


def clean_stale_temp(path) -> list[Path]:
    """Remove the temporary folders that killed saves left beside results folder ``path``.

    A save that was killed while replacing earlier results (after moving them aside, before moving the new ones
    in) left the earlier results in a ``.old-`` folder; they are moved back when ``path`` is missing.

    Returns
    -------
    list of Path
        The folders removed (or restored).
    """
    target = Path(path).expanduser().absolute()
    if not target.parent.is_dir():
        return []
    cleaned = []
    for kind in _TEMP_KINDS:
        prefix = f".{target.name}.{kind}-"
        for temp in sorted(target.parent.glob(f"{_glob_escape(prefix)}*")):
            if not temp.is_dir() or not _abandoned(temp, prefix):
                continue
            if kind == "old" and not target.exists() and _read_manifest_quiet(temp) is not None:
                os.replace(temp, target)
            else:
                shutil.rmtree(temp, ignore_errors=True)
            cleaned.append(temp)
    return cleaned


def _glob_escape(name: str) -> str:
    """``name`` with glob wildcards escaped (results folders may have brackets in their names)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def check_results_target(path, *, overwrite: bool = False) -> Path:
    """Check that results may be written to ``path`` (call it before a long computation).

    Temporary folders left by killed saves of ``path`` are removed first (:func:`clean_stale_temp`).

    Returns the absolute folder path.  Raises ValueError when ``path`` is a file, holds files that are not
    results of this package, or holds results (or our files with a damaged manifest) and ``overwrite`` is False.
    """
    target = Path(path).expanduser().absolute()
    clean_stale_temp(target)
    if target.exists():
        if not target.is_dir():
            raise ValueError(f"{target} is a file, not a folder; choose a folder name for the results")
        if not any(target.iterdir()):
            return target
        manifest = _read_manifest_quiet(target)
        ours, foreign = _is_ours(target, manifest)
        if not ours:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise ValueError(
                f"{target} already holds files that are not napari-causal-lattice results ({shown}); "
                "choose a new or empty folder. Nothing was written."
            )
        if not overwrite:
            if manifest is None:
                raise ValueError(
                    f"{target / MANIFEST_NAME} is damaged or missing, but the folder holds only "
                    "napari-causal-lattice result files; pass overwrite=True (CLI: --overwrite) to replace them"
                )
            raise ValueError(f"{target} already holds results; pass overwrite=True (CLI: --overwrite) to replace them")
    return target


class ResultsBusy(ValueError):
    """A results folder is in use by another run (its lock is held); the message names the holder."""


class ResultsLock:
    """The lock of one results folder: at most one run computes into a folder at a time.

    The lock is a hidden file ``.<name>.lock`` beside the folder, locked with the operating system's advisory
    file lock (released by the system when the holding process ends, even when it is killed) and removed on
    release.  It holds who has it (host, process id, start time), for the message a second run gets.

    Parameters
    ----------
    path : str or Path
        The results folder (it need not exist; its parent must).
    """

    def __init__(self, path):
        self.target = Path(path).expanduser().absolute()
        self.path = self.target.parent / f".{self.target.name}.lock"
        self._fh = None

    def acquire(self) -> "ResultsLock":
        """Take the lock, or raise :class:`ResultsBusy` at once when another run holds it."""
        while self._fh is None:
            fh = open(self.path, "a+", encoding="utf-8")
            if not _try_lock(fh):
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise ResultsBusy(
                    f"{self.target} is in use by another run ({holder}); wait until it has finished, or choose "
                    "another --out. Nothing was written."
                )
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:  # the holder released (and removed) it between our open and lock
                same = False
            if not same:
                fh.close()
                continue
            fh.seek(0)
            fh.truncate()
            fh.write(f"process {os.getpid()} on {socket.gethostname()}, started "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
            fh.flush()
            self._fh = fh
        return self

    def release(self) -> None:
        """Give the lock up (and remove its file); does nothing when it is not held."""
        if self._fh is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        self._fh.close()
        self._fh = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _try_lock(fh) -> bool:
    """Lock an open file exclusively without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    return True


def _write_error(target: Path, exc: OSError) -> OSError:
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EROFS: "the file system is read-only",
    }.get(exc.errno, exc.strerror or str(exc))
    advice = "free some space or choose" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "choose"
    return OSError(
        exc.errno,
        f"could not save results to {target}: {reason}. Nothing was written and existing results are "
        f"unchanged; {advice} another folder (--out).",
    )


def save_results(
    path,
    *,
    columns=None,
    cells=None,
    lingam=None,
    sliding=None,
    pca=None,
    null=None,
    image_info: dict | None = None,
    run: dict | None = None,
    steps: Mapping[str, Mapping] | None = None,
    overwrite: bool = False,
    extra: Mapping[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Save result objects to one folder, atomically.

    Parameters
    ----------
    path : str or Path
        Target folder.  It must not exist, be empty, or (with ``overwrite=True``) hold an earlier results
        folder of this package.  A folder holding any other file is refused: nothing of yours is overwritten.
    columns, cells, lingam, sliding, pca, null : result objects, optional
        ``Columns``, ``Cells``, ``LingamResult``, ``SlidingResult``, ``AdjacencyPCA``, ``InstrumentNull``; each
        must provide ``to_state()`` and a ``provenance`` dict.
    image_info : dict, optional
        The input image (e.g. ``LoadedImage.info``: source, sha256, shape, pixel size).
    run : dict, optional
        :func:`run_record` of the run (input hash, parameters, version), compared by :func:`resume_status`.
    steps : mapping, optional
        Each step's outcome, step -> ``{"status": "done" | "skipped" | "failed", "reason": str}``.
    overwrite : bool
        Replace an existing results folder of this package.
    extra : mapping, optional
        More files written inside the same atomic save: relative name (e.g. ``"figures/pca.png"``) -> function
        ``write(path)`` that writes that file.

    Returns
    -------
    Path
        The results folder.

    Raises
    ------
    ValueError
        Nothing to save, or the target holds files that are not ours, or results exist and ``overwrite`` is False.
    OSError
        Disk full, permission denied...: the message says what happened; nothing was written.
    """
    objects = {"columns": columns, "cells": cells, "lingam": lingam, "sliding": sliding, "pca": pca, "null": null}
    if all(v is None for v in objects.values()) and image_info is None:
        raise ValueError("nothing to save: pass at least one result (columns=, cells=, lingam=, sliding=, pca=)")
    target = check_results_target(path, overwrite=overwrite)

    flat = _Flattener()
    contents = _encode_contents(objects, flat)
    writers = _file_writers(columns, cells, extra)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "versions": package_versions(),
        "image": jsonable(image_info),
        "run": jsonable(run),
        "steps": jsonable(dict(steps or {})),
        "files": [ARRAYS_NAME, *writers],
        "contents": contents,
        "array_checksums": {key: array_sha256(value) for key, value in flat.arrays.items()},
    }
    _write_atomically(target, flat.arrays, writers, manifest)
    return target


def _encode_contents(objects: dict, flat: _Flattener) -> dict:
    """The manifest's ``contents``: per result its class, its state (arrays moved into ``flat``) and provenance."""
    contents = {}
    for name, obj in objects.items():
        if obj is None:
            continue
        if not hasattr(obj, "to_state"):
            raise TypeError(f"{name}={type(obj).__name__} cannot be saved: it has no to_state() method")
        contents[name] = {
            "class": _class_path(obj),
            "state": flat.encode(obj.to_state(), name),
            "provenance": jsonable(getattr(obj, "provenance", None)),
        }
    return contents


def _file_writers(columns, cells, extra) -> dict:
    """Relative file name -> ``write(path)`` of every file besides the arrays and the manifest: the CSV tables and
    the ``extra`` files (figures)."""
    csv_writers = {}
    if columns is not None:
        csv_writers["columns.csv"] = lambda p: columns_frame(columns).to_csv(p, index=False)
    if cells is not None:
        csv_writers["cells.csv"] = cells.to_csv  # i, j, y/x in px and pm, "Px [pm]", ...
    writers = {**csv_writers, **dict(extra or {})}
    for rel in writers:
        if Path(rel).is_absolute() or ".." in Path(rel).parts or rel in (MANIFEST_NAME, ARRAYS_NAME):
            raise ValueError(f"extra file name {rel!r} must be a relative path inside the results folder")
    return writers


def _write_atomically(target: Path, arrays: dict, writers: dict, manifest: dict) -> None:
    """Write ``arrays.npz``, the ``writers``' files and the manifest (with their checksums) into a hidden temporary
    folder beside ``target`` and swap it into place; on any failure nothing is left and ``target`` is unchanged."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    tmp = _temp_name(target, "tmp")
    try:
        tmp.mkdir()
        with open(tmp / ARRAYS_NAME, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        for rel, write in writers.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            write(tmp / rel)
        missing = [rel for rel in writers if not (tmp / rel).is_file()]
        if missing:
            raise ValueError(f"extra writers did not create {missing}")
        manifest["checksums"] = {rel: file_sha256(tmp / rel) for rel in manifest["files"]}
        manifest = json.loads(json.dumps(manifest, allow_nan=False))
        manifest["manifest_sha256"] = manifest_checksum(manifest)
        text = json.dumps(manifest, indent=1, allow_nan=False)
        with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        _swap_into_place(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(target, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    old = _temp_name(target, "old")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_results(path, *, classes: Mapping[str, type] | None = None) -> Results:
    """Load a results folder written by :func:`save_results`, verifying everything it recorded.

    Checked before anything is rebuilt: the manifest's own content checksum (names, labels, parameters, run,
    steps; manifests written before it existed have none), the SHA-256 of every file the manifest lists
    (``arrays.npz``, the CSV tables, the figures) and of every stored array.

    Parameters
    ----------
    path : str or Path
        The results folder.
    classes : mapping, optional
        Field name -> class whose ``from_state`` rebuilds it, to override the classes recorded in the manifest
        (only classes of this package are imported from a manifest).

    Returns
    -------
    Results

    Raises
    ------
    ResultsError
        (a ValueError) Not a results folder, incomplete (a listed file missing), damaged (the manifest edited, a
        file or an array whose checksum differs from the recorded one, a manifest entry that does not fit) or
        written in another format version; the message names the file at fault.
    """
    folder = Path(path).expanduser()
    manifest = _read_manifest(folder)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        versions = manifest.get("versions") if isinstance(manifest.get("versions"), dict) else {}
        written_by = versions.get("napari-causal-lattice", "an unknown version")
        raise ResultsError(
            f"{folder} was written in results format {version} (napari-causal-lattice {written_by}); this version "
            f"reads format {FORMAT_VERSION}. Re-run the analysis, or load it with napari-causal-lattice {written_by}."
        )
    damage = _damage(folder, manifest, skip=(ARRAYS_NAME,))
    if damage is not None:
        raise ResultsError(f"{folder}: {damage}; the results are damaged: re-run the analysis")
    arrays = _read_arrays(folder, manifest)
    contents = manifest.get("contents", {})
    if not isinstance(contents, dict):
        raise ResultsError(f"{folder / MANIFEST_NAME} is damaged: 'contents' is not a table of results")
    classes = dict(classes or {})
    loaded = {}
    for name, entry in contents.items():
        if name not in RESULT_CLASSES:
            raise ResultsError(f"{folder / MANIFEST_NAME} lists an unknown result {name!r}")
        if not isinstance(entry, dict) or "state" not in entry:
            raise ResultsError(f"{folder / MANIFEST_NAME} is damaged: the entry of {name!r} has no state")
        loaded[name] = _rebuild(folder, name, entry, classes.get(name), arrays)
    image, steps = manifest.get("image"), manifest.get("steps")
    return Results(**loaded, image_info=image if isinstance(image, dict) else None,
                   steps=steps if isinstance(steps, dict) else {}, manifest=manifest)


def _read_arrays(folder: Path, manifest: dict) -> dict:
    """Every array of ``arrays.npz``, each checked against its recorded checksum."""
    path = folder / ARRAYS_NAME
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise ResultsError(f"{path} is missing; the results are incomplete: re-run the analysis") from exc
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
            NotImplementedError, RuntimeError) as exc:
        raise ResultsError(f"cannot read {path} ({type(exc).__name__}: {exc}); the results are damaged") from exc
    except (AttributeError, TypeError) as exc:  # np.load read a plain .npy array, not an .npz archive
        raise ResultsError(f"{path} is not an .npz archive; the results are damaged") from exc
    checksums = manifest.get("array_checksums")
    if isinstance(checksums, dict):
        for key, expected in checksums.items():
            if key not in arrays:
                raise ResultsError(f"{path} lacks the array {key!r}; the results are damaged")
            if array_sha256(arrays[key]) != expected:
                raise ResultsError(f"array {key!r} in {path} differs from the one saved (checksum); the results "
                                   "are damaged")
    return arrays


def _rebuild(folder: Path, name: str, entry: dict, cls, arrays: dict):
    """One result object from its manifest entry; any failure is damage in our words."""
    if cls is None:
        recorded = entry.get("class") or RESULT_CLASSES[name]
        if not isinstance(recorded, str) or not recorded.startswith("napari_causal_lattice."):
            raise ResultsError(
                f"{name} in {folder} was saved from class {recorded}, outside this package; pass "
                f"classes={{'{name}': {str(recorded).rpartition(':')[2]}}} to load it"
            )
        if recorded not in RESULT_CLASSES.values():
            raise ResultsError(f"{folder / MANIFEST_NAME} names {recorded} for {name}, which is not a result class "
                               f"of this package; the results are damaged")
        cls = _import_class(recorded)
    try:
        return cls.from_state(_decode_tree(entry["state"], arrays))
    except Exception as exc:  # noqa: BLE001 - whatever a damaged state makes from_state raise, the file is at fault
        raise ResultsError(
            f"cannot rebuild {name} from {folder} ({type(exc).__name__}: {exc}); the results are damaged"
        ) from exc
