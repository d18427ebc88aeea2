"""Where independent units of work run: in this thread, on local threads, or on any executor (a dask cluster).

One loop for the sliding windows' chunks of fits and the instrument null's images: units are submitted as slots
free up (at most ``in_flight`` unfinished at a time), progress is reported as they finish, and on cancel nothing
more is submitted, what is pending is cancelled and :class:`~napari_causal_lattice.progress.Cancelled` is raised.
Results never depend on where the units ran.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from typing import Callable, Iterable

from .progress import report

__all__ = ["as_executor", "run_units"]


def as_executor(executor):
    """A concurrent.futures-style executor from ``executor`` (a distributed.Client becomes its executor)."""
    if executor is None or isinstance(executor, Executor):
        return executor
    if callable(getattr(executor, "get_executor", None)):  # distributed.Client
        return executor.get_executor(pure=False)
    raise TypeError(
        f"executor must be a concurrent.futures.Executor (e.g. ProcessPoolExecutor(), or "
        f"distributed.Client(address).get_executor()) or a distributed.Client, got {type(executor).__name__}"
    )


def run_units(keys: Iterable, call: Callable, store: Callable, *, total: int, workers: int = 1, executor=None,
              in_flight: int | None = None, progress=None, cancel=None) -> None:
    """Run ``call(key)`` -> ``(function, args, kwargs)`` for every key and hand each result to ``store``.

    Parameters
    ----------
    keys : iterable
        One key per unit of work, in submission order.
    call : callable
        ``call(key)`` gives the unit: a picklable module-level function with its arguments.
    store : callable
        ``store(key, result)`` keeps a finished unit's result and returns how many units of ``total`` it was.
    total : int
        What ``progress(done, total)`` counts to.
    workers : int
        Without ``executor``: 1 runs every unit in this thread, more on that many local threads.
    executor : concurrent.futures.Executor or distributed.Client, optional
        Run the units there (it is not shut down).
    in_flight : int, optional
        With ``executor``: the most units submitted and unfinished at a time (default all).
    progress, cancel
        See :mod:`napari_causal_lattice.progress`; checked as units finish.
    """
    keys = list(keys)
    done = 0
    report(progress, done, total, cancel)
    executor = as_executor(executor)
    if executor is None and (workers == 1 or len(keys) == 1):
        for key in keys:
            function, args, kwargs = call(key)
            done += store(key, function(*args, **kwargs))
            report(progress, done, total, cancel)
        return
    own = executor is None
    pool = ThreadPoolExecutor(max_workers=min(workers, len(keys))) if own else executor
    limit = len(keys) if own or in_flight is None else in_flight
    queue = iter(keys)
    pending: dict = {}
    try:
        while True:
            while len(pending) < limit and (key := next(queue, None)) is not None:
                function, args, kwargs = call(key)
                pending[pool.submit(function, *args, **kwargs)] = key
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done += store(pending.pop(future), future.result())
            report(progress, done, total, cancel)
    finally:
        for future in pending:
            future.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
