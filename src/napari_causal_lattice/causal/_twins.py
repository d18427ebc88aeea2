"""Python twins of the numba kernels: the first fits run on them while the warmup children still compile.

With an empty kernel cache, :mod:`napari_causal_lattice._warmup` compiles the kernels in child processes (about
15-20 s of CPU).  Rather than wait, a small fit (the first global fit of a session) runs each kernel's own
Python function (``kernel.py_func``: the same statements, the same algorithm), with its calls to the other
kernels bound to their Python functions too, and the few sample loops replaced by NumPy versions of the same
formulas (``replacements``).  Once the children have finished, every call uses the compiled kernels again.

Numbers: the kernels without ``fastmath`` give the same floating-point operations in the same order, so their
twins give bit-identical answers on the same inputs (``_order_tstats``, ``_lag_sums``, the pruning of a given
covariance).  The causal-order kernels use ``fastmath`` (numba re-orders their sums for the CPU's vector
instructions, so not even two CPUs agree bit for bit) and the HSIC sums use numpy's ``exp``: their twins agree
to rounding (about 1e-15 relative; ``tests/test_kernel_twins.py``): the same causal order, the same pruned edges,
coefficients and p-values within 1e-12.  A first run on the twins therefore differs from later runs in the last
digits only.
"""

from __future__ import annotations

import types

from numba.core.dispatcher import Dispatcher

from .. import _warmup

__all__ = ["MAX_DATASETS", "python_twins", "compiling"]

#: Largest batch answered by the twins while the kernels compile: a global fit (one dataset, about 0.1 s of CPU for
#: 2,300 cells and 8 variables) and its bootstrap chunks; larger batches (a sliding run's windows) wait for the
#: compiled kernels, which is then quicker.
MAX_DATASETS = 64


def python_twins(namespace: dict, replacements: dict) -> dict:
    """A copy of a module's namespace in which every numba kernel is its plain Python function.

    Parameters
    ----------
    namespace : dict
        The module's globals (``globals()`` of the module that defines the kernels).
    replacements : dict
        Names to bind to other functions in the twins (NumPy versions of sample loops, intrinsics).

    Returns
    -------
    dict
        Name -> function; the twins call each other (and ``replacements``) instead of the compiled kernels.
    """
    twins = dict(namespace)
    for name, value in namespace.items():
        if isinstance(value, Dispatcher):
            func = value.py_func
            twins[name] = types.FunctionType(func.__code__, twins, func.__name__, func.__defaults__,
                                             func.__closure__)
    twins.update(replacements)
    return twins


def compiling(n_datasets: int = 1, *, allowed: bool = True) -> bool:
    """True if a call on ``n_datasets`` datasets should run on the twins: the warmup children are compiling.

    Otherwise waits for the children that merely load the kernels (see ``_warmup.kernels_compiling``) and
    returns False.  Batches of more than :data:`MAX_DATASETS` datasets, and calls the caller does not allow on
    the twins (``allowed=False``, e.g. beyond a budget), always wait for the compiled kernels.
    """
    if allowed and n_datasets <= MAX_DATASETS and _warmup.kernels_compiling():
        return True
    _warmup.wait_for_kernels()
    return False
