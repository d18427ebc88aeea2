"""Compile the causal engine's numba kernels in the background as soon as the CLI or the plugin starts.

The first fit after installation compiles the DirectLiNGAM kernels (about 20 s on a laptop, longer on a busy
machine); numba caches them on disk, so later processes load them in about 1 s.  Loading an image, finding
the columns and building the cells do not need the kernels, so compiling them in a daemon thread meanwhile
takes the compilation off the user's path: the first fit finds the kernels ready, or waits only for the rest
of the compilation (numba's compiler lock makes it wait instead of compiling a second time).

Set the environment variable ``NAPARI_CAUSAL_LATTICE_NO_WARMUP=1`` to compile on first use instead.
Importing this module is cheap: numpy and numba load inside the background thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["ENV_DISABLE", "Warmup", "start_warmup"]

#: Environment variable that turns the background compilation off (any value but "" or "0").
ENV_DISABLE = "NAPARI_CAUSAL_LATTICE_NO_WARMUP"

_NOTE = (
    "napari-causal-lattice: compiling the causal kernels, once, about {seconds:.0f} s (in the background; "
    "they are cached on disk for later runs)"
)


def _compile_kernels() -> None:
    """Compile (or load from the disk cache) the engine kernel for the array types every fit uses."""
    import numpy as np

    from .causal.engine import direct_lingam_batch

    tiny = np.random.default_rng(0).standard_normal((1, 16, 3))
    direct_lingam_batch(tiny, workers=1)


class Warmup:
    """One background compilation per process, announced once if it is not a quick cache load.

    Parameters
    ----------
    compile : callable, optional
        Work to run in the background thread (default: compile the causal kernels).
    expected_seconds : float
        Compile time quoted in the note on stderr, in s.
    """

    def __init__(self, compile=_compile_kernels, *, expected_seconds: float = 20.0):
        self._compile = compile
        self._expected = float(expected_seconds)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()
        self.seconds: float | None = None
        self.error: BaseException | None = None

    def start(self, *, announce: bool = True, notice_after: float = 2.0, stream=None) -> bool:
        """Start the background compilation unless it already runs or is disabled.

        Parameters
        ----------
        announce : bool
            Print the note on ``stream`` if the work is still running after ``notice_after`` s (a cold
            cache: loading cached kernels takes about 1 s).
        notice_after : float
            Delay before the note, in s.
        stream : file, optional
            Where the note goes (default: ``sys.stderr`` at the time of the note).

        Returns
        -------
        bool
            True if the compilation runs or ran in this process, False if it is disabled by
            ``NAPARI_CAUSAL_LATTICE_NO_WARMUP``.
        """
        if os.environ.get(ENV_DISABLE, "") not in ("", "0"):
            return False
        with self._lock:
            if self._thread is not None:
                return True
            self._thread = threading.Thread(target=self._run, name="napari-causal-lattice-warmup", daemon=True)
            self._thread.start()
        if announce:
            timer = threading.Timer(notice_after, self._announce, args=(stream,))
            timer.daemon = True
            timer.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background work has finished (True) or ``timeout`` s passed (False)."""
        return self.done.wait(timeout)

    def _run(self) -> None:
        start = time.perf_counter()
        try:
            self._compile()
        except Exception as exc:  # kept for inspection: the first real fit compiles again and raises it
            self.error = exc
        self.seconds = time.perf_counter() - start
        self.done.set()

    def _announce(self, stream) -> None:
        if not self.done.is_set():
            print(_NOTE.format(seconds=self._expected), file=stream or sys.stderr, flush=True)


_KERNELS = Warmup()


def start_warmup(*, announce: bool = True) -> bool:
    """Compile the causal kernels in a background daemon thread, once per process (see the module notes).

    Returns
    -------
    bool
        False when disabled by the environment variable ``NAPARI_CAUSAL_LATTICE_NO_WARMUP``.
    """
    return _KERNELS.start(announce=announce)
