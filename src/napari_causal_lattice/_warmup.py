"""Compile the causal engine's numba kernels in separate processes as soon as the CLI or the plugin starts.

The first fit after installation needs the DirectLiNGAM kernels compiled (about 15 s of CPU; numba then
caches them on disk, and later processes load them in well under a second).  Loading an image, finding the
columns and building the cells do not need them, so :func:`start_warmup` compiles them meanwhile in child
processes (one per independent kernel group, so they compile side by side on a multi-core machine, never
share the GIL with column finding, and at nice 10 yield the core to it).  While they compile, the engine runs
small fits (a global fit and its bootstrap chunks) on the kernels' Python twins
(:mod:`napari_causal_lattice.causal._twins`, see :func:`kernels_compiling`) instead of waiting; larger batches
wait for the children (:func:`wait_for_kernels`) and then load the kernels from the cache they wrote.  The
children are not stopped when the process that started them exits: they finish filling the cache, so the
next process finds the kernels compiled.

The note on stderr ("compiling the causal kernels, once ...") appears only when kernels are really compiled
and someone waits for them: not when the children load them from the cache, not while fits run on the twins,
and not in a run that never fits (``analyze`` skipping complete results).  Without the warmup
(``NAPARI_CAUSAL_LATTICE_NO_WARMUP=1``, worker processes, plain library use) the engine compiles on first use and
prints the same note when it does.

Once a child has the kernels in the cache it leaves a stamp in this package's user cache folder
(:func:`user_cache_dir`), keyed by the kernel sources, python, numba and the cache location, so later processes
start no child at all.  Should numba's cache be deleted behind a stamp's back, the first fit compiles in its
own process (with the note).

Where numba's cache lives is numba's choice: next to the package (``__pycache__``) when that folder is
writable, otherwise a user cache folder (``~/.cache/numba`` on Linux, the platform's equivalent elsewhere),
so a read-only installation still compiles only once; ``NUMBA_CACHE_DIR`` overrides both.

Importing this module is cheap: numpy and numba load only in the children and in the engine.  The children run
:mod:`napari_causal_lattice._compile_kernels`, which imports the engine (the engine imports this module).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["ENV_DISABLE", "NOTE", "Warmup", "start_warmup", "wait_for_kernels", "kernels_compiling",
           "install_compile_note", "user_cache_dir"]

#: Environment variable that turns the background compilation off (any value but "" or "0").
ENV_DISABLE = "NAPARI_CAUSAL_LATTICE_NO_WARMUP"

#: The one line printed on stderr while a process waits for (or does) a real compilation.
NOTE = (
    "napari-causal-lattice: compiling the causal kernels, once after installing (seconds on an idle machine, "
    "longer on a busy one; later runs load them from the disk cache)"
)

#: Kernel groups compiled by one child process each (independent kernels: no shared helpers), about equal in CPU.
JOBS = ("order,pvalues,lagsums", "prune,hsic")

#: Source files of the kernels: a change to either means a new compilation.
_KERNEL_SOURCES = ("causal/engine.py", "causal/confidence.py", "causal/toolbox.py")

_COMPILING = "compiling"
_DONE = "done"


def user_cache_dir() -> Path:
    """This package's per-user cache folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, the usual elsewhere)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "napari-causal-lattice" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "napari-causal-lattice"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "napari-causal-lattice"


def _stamp(job: str) -> Path:
    """File a child writes once it has compiled (or loaded) ``job``'s kernels for this source, python and numba.

    Its presence lets later processes skip the children (each would spend about a second importing numba just
    to find the kernels cached).  The key covers what invalidates numba's cache (kernel sources, python,
    numba, host) and where that cache is (``NUMBA_CACHE_DIR``, the package folder).
    """
    from hashlib import sha256
    from importlib import metadata

    root = Path(__file__).resolve().parent
    key = sha256()
    for name in _KERNEL_SOURCES:
        key.update((root / name).read_bytes())
    try:
        numba_version = metadata.version("numba")
    except metadata.PackageNotFoundError:
        numba_version = "?"
    import platform

    machine = (sys.platform, platform.machine(), platform.node())  # numba's cache is per CPU: per host here
    for part in (sys.version, numba_version, *machine, os.environ.get("NUMBA_CACHE_DIR", ""), str(root), job):
        key.update(part.encode())
    return user_cache_dir() / "kernels" / key.hexdigest()[:32]


def _write_stamp(job: str) -> None:
    try:
        path = _stamp(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{job}\n")
    except OSError:  # a read-only home: the children simply run every time
        pass


def _child_command(job: str) -> list[str]:
    return [sys.executable, "-m", "napari_causal_lattice._compile_kernels", job]


def _child_env() -> dict:
    """The parent's environment, with this copy of the package first on the path (same source, same cache)."""
    env = {k: v for k, v in os.environ.items() if k != ENV_DISABLE}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


class Warmup:
    """Child processes that compile the kernels, started once per process; waited for by the first fit.

    Parameters
    ----------
    jobs : sequence of str
        One child process per entry (kernel groups, see ``JOBS``).
    command : callable, optional
        ``command(job) -> argv`` of a child (default: ``python -m napari_causal_lattice._compile_kernels job``).  A child
        prints ``compiling`` on stdout when it starts a real compilation and ``done`` when it has finished.
    stamps : bool
        Skip the jobs whose stamp file says their kernels are already in the disk cache (see ``_stamp``).
    """

    def __init__(self, jobs=JOBS, *, command=_child_command, stamps: bool = False):
        self._jobs = tuple(jobs)
        self._command = command
        self._stamps = stamps
        self._lock = threading.Lock()
        self._children: list[tuple[str, subprocess.Popen, threading.Thread]] = []
        self.compiling = threading.Event()  # a child reported a real compilation
        self.started: float | None = None
        self.seconds: float | None = None
        self.failed: list[str] = []  # jobs whose child did not finish cleanly (the engine compiles them itself)
        self._noted = False

    @property
    def running(self) -> bool:
        """True while a child process is still at work."""
        return any(proc.poll() is None for _, proc, _ in self._children)

    def start(self) -> bool:
        """Start the child processes unless they already run or the warmup is disabled.

        Returns
        -------
        bool
            True if the children run or ran in this process (or their stamps say the kernels are cached), False
            if disabled by ``NAPARI_CAUSAL_LATTICE_NO_WARMUP`` or if no child could be started.
        """
        if os.environ.get(ENV_DISABLE, "") not in ("", "0") or getattr(sys, "frozen", False):
            return False
        with self._lock:
            if self.started is not None:
                return bool(self._children) or not self.failed
            self.started = time.perf_counter()
            env = _child_env()
            for job in self._jobs:
                if self._stamps and _stamp_exists(job):
                    continue
                try:
                    proc = subprocess.Popen(self._command(job), env=env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
                except OSError:
                    self.failed.append(job)
                    continue
                reader = threading.Thread(target=self._read, args=(proc,), daemon=True,
                                          name=f"napari-causal-lattice-warmup-{job}")
                reader.start()
                self._children.append((job, proc, reader))
        return bool(self._children) or not self.failed

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            if line.strip() == _COMPILING:
                self.compiling.set()

    def wait(self, timeout: float | None = 600.0, *, stream=None) -> bool:
        """Wait for the children; print the note once if they are compiling (not merely loading the cache).

        Parameters
        ----------
        timeout : float or None
            Longest wait in s (then the caller compiles in its own process instead).
        stream : file, optional
            Where the note goes (default: ``sys.stderr``).

        Returns
        -------
        bool
            True when every child has finished (or none was started).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for _, proc, reader in self._children:
            while proc.poll() is None:
                if self.compiling.is_set():  # someone waits for a real compilation: say so, once
                    self._note(stream)
                if deadline is not None and time.monotonic() > deadline:
                    return False
                try:
                    proc.wait(0.1)
                except subprocess.TimeoutExpired:
                    pass
            reader.join(1.0)
        with self._lock:
            if self.seconds is None and self.started is not None:
                self.seconds = time.perf_counter() - self.started
                self.failed += [job for job, proc, _ in self._children if proc.returncode != 0]
        return True

    def busy_compiling(self, timeout: float = 600.0) -> bool:
        """Wait until every child has finished or one reports a real compilation; True in the second case.

        Children that merely load the kernels from the disk cache finish within about a second, so they are
        waited for; a compilation takes seconds of CPU, which a small fit does not wait for (it runs on the
        kernels' Python twins, :mod:`napari_causal_lattice.causal._twins`).
        """
        deadline = time.monotonic() + timeout
        while self.running:
            if self.compiling.is_set():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return False

    def _note(self, stream) -> None:
        with self._lock:
            if self._noted:
                return
            self._noted = True
        print(NOTE, file=stream or sys.stderr, flush=True)

    def stop(self) -> None:
        """End the children that are still running.

        Not called at exit: a child outlives a short process (a script whose one fit ran on the twins) and
        finishes filling the disk cache and writing its stamp, so the next process finds the kernels compiled.
        """
        for _, proc, _ in self._children:
            if proc.poll() is None:
                proc.terminate()
        for _, proc, _ in self._children:
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()


def _stamp_exists(job: str) -> bool:
    try:
        return _stamp(job).is_file()
    except OSError:
        return False


_KERNELS = Warmup(stamps=True)
_READY = threading.Event()


def start_warmup() -> bool:
    """Compile the causal kernels in child processes, once per process (see the module notes).

    Returns
    -------
    bool
        False when disabled by the environment variable ``NAPARI_CAUSAL_LATTICE_NO_WARMUP`` (or when no child
        process could be started).
    """
    return _KERNELS.start()


def wait_for_kernels(*, stream=None) -> None:
    """Called by the engine before its first kernel call: wait for the warmup children, if any run.

    Cheap after the first call.  Prints the note only if the children are really compiling.
    """
    if _READY.is_set():
        return
    if _KERNELS.started is not None:
        _KERNELS.wait(stream=stream)
    _READY.set()


def kernels_compiling() -> bool:
    """True while this process's warmup children are compiling the kernels (not merely loading them).

    Children that load the kernels from the cache are waited for.  The engine asks this before a small fit: while
    the kernels compile it answers with their Python twins instead of waiting (no note, since nobody waits).
    """
    if _READY.is_set() or _KERNELS.started is None:
        return False
    return _KERNELS.busy_compiling()


def install_compile_note(action=None) -> None:
    """Print the note (or run ``action()``) when this process starts compiling one of the package's kernels.

    Loading kernels from the disk cache is not a compilation (numba raises no compile event for it).
    """
    from numba.core import event

    act = action or (lambda: _KERNELS._note(None))

    class _FirstCompile(event.Listener):
        fired = False

        def on_start(self, ev) -> None:
            dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if not self.fired and module.startswith("napari_causal_lattice"):
                self.fired = True
                act()

        def on_end(self, ev) -> None:
            pass

    event.register("numba:compile", _FirstCompile())
