"""The child process of :mod:`napari_causal_lattice._warmup`: ``python -m napari_causal_lattice._compile_kernels
JOB`` compiles (or loads from numba's disk cache) one group of causal kernels and reports on stdout
(``compiling`` when a real compilation starts, ``done`` at the end).

It is a module of its own because it imports the causal engine, which imports ``_warmup``: so imports run one
way (``_compile_kernels`` -> ``causal`` -> ``_warmup``).  The engine is imported only after the note is installed,
so that the first compilation is reported as ``compiling``.
"""

from __future__ import annotations

import os
import sys

from ._warmup import _COMPILING, _DONE, _write_stamp, install_compile_note


def _compile_job(job: str) -> None:
    """Compile (or load from the disk cache) the kernels of one job, for the argument types every fit uses."""
    import numpy as np

    for name in job.split(","):
        if name == "pvalues":
            from .causal.confidence import order_pvalues_from_covariance

            order_pvalues_from_covariance(np.eye(3)[None], 16, np.array([[0, 1, 2]]))
        elif name == "lagsums":
            from .causal.confidence import spatial_inflation

            grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij"), axis=-1).reshape(1, 16, 2)
            spatial_inflation(np.random.default_rng(0).standard_normal((1, 16, 3)), np.array([[0, 1, 2]]), grid)
        elif name == "hsic":
            from .causal.toolbox import error_independence_pvalues

            error_independence_pvalues(np.random.default_rng(0).standard_normal((16, 3)), np.zeros((3, 3)))
        else:
            from .causal.engine import compile_stage

            compile_stage(name)


def _say(word: str) -> None:
    """Report to the parent on stdout; the parent may have exited meanwhile (the child then carries on)."""
    try:
        print(word, flush=True)
    except OSError:
        pass


def _main(argv) -> int:
    """Child process: compile the jobs named in ``argv[0]``, reporting on stdout.

    At a lower priority (nice 10 where the platform has it): the parent's own work (column finding, the first
    fits on the kernels' Python twins) goes first when both want the same core.
    """
    if hasattr(os, "nice"):
        os.nice(10)
    install_compile_note(lambda: _say(_COMPILING))
    _compile_job(argv[0])
    _write_stamp(argv[0])
    _say(_DONE)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
