"""Progress reporting and cancellation for long computations (no Qt here).

Long core functions take two optional keyword arguments:

``progress``
    a callable ``progress(done, total)`` called between units of work;
``cancel``
    any object with an ``is_set()`` method (e.g. :class:`threading.Event`); when it
    returns True the function stops between units of work and raises :class:`Cancelled`,
    leaving its inputs untouched and returning nothing half-made.
"""

from __future__ import annotations

from typing import Callable, Protocol


class Cancelled(Exception):
    """Raised by a long computation when its ``cancel`` flag was set."""


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


ProgressCallback = Callable[[int, int], None]


def check_cancel(cancel: CancelFlag | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is set."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled by the user; nothing was changed")


def report(progress: ProgressCallback | None, done: int, total: int, cancel: CancelFlag | None = None) -> None:
    """Report progress and honour a cancel request in one call."""
    if progress is not None:
        progress(int(done), int(total))
    check_cancel(cancel)
