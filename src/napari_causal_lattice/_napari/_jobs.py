"""Run a core function in a napari ``thread_worker`` with a progress bar, Cancel and error notifications.

Every dock widget embeds one :class:`JobPanel`.  Expected problems (``ValueError``/``TypeError`` with an
actionable message) become a plain error notification; anything else is relayed with its traceback.  The core function must accept the keyword
arguments ``progress`` and ``cancel`` (see :mod:`napari_causal_lattice.progress`); its return
value is handed to ``on_result`` in the GUI thread, so layers are only touched once the work
finished successfully: a cancelled or failed job leaves every layer as it was.

``on_result`` may be a generator function: each ``yield`` hands the event loop back (the next piece runs in a
later turn, via ``QTimer.singleShot``), so adding several layers never freezes the window for long.  The panel
counts as :attr:`~JobPanel.running` until the last piece ran.  :meth:`JobPanel.drop` (called when the dock
closes) cancels the job and discards any result still to come.

Warnings the job emits (``UserWarning`` and subclasses, e.g. the core's ``DeterministicDescriptorWarning``)
become napari warning notifications, once per message and job, and are handed to ``on_warning`` when given.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from napari.utils.notifications import notification_manager, show_error, show_info, show_warning
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import QApplication, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget
from superqt.utils import create_worker

from ..progress import Cancelled


class _ProgressRelay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    advanced = Signal(int, int)


class JobPanel(QWidget):
    """Progress bar, status line and Cancel button that run one job at a time.

    Attributes
    ----------
    worker : FunctionWorker or None
        The running (or last) worker; tests wait on ``worker.finished``.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker = None
        self._busy = False
        self._pieces = None
        self._dropped = False
        self._cancel = threading.Event()
        self._on_result: Callable[[Any], None] | None = None
        self._on_warning: Callable[[Warning], None] | None = None
        self._warned: set[str] = set()
        self._label = ""
        self._relay = _ProgressRelay()
        self._relay.advanced.connect(self._on_progress)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

    @property
    def running(self) -> bool:
        """True from ``run`` until the worker finished and the last piece of ``on_result`` ran."""
        return self._busy or self._pieces is not None

    def drop(self) -> None:
        """Cancel the running job and discard its result (the dock that owns this panel was closed)."""
        self._dropped = True
        self._pieces = None
        self._cancel.set()

    def run(
        self,
        func: Callable[..., Any],
        *args,
        on_result: Callable[[Any], None],
        on_warning: Callable[[Warning], None] | None = None,
        label: str = "working",
        **kwargs,
    ):
        """Start ``func(*args, progress=..., cancel=..., **kwargs)`` in a worker thread.

        Returns the worker (already started).  ``on_result`` runs in the GUI thread with the
        return value; errors become napari error notifications and leave layers untouched.  ``on_warning``
        runs in the GUI thread with each ``UserWarning`` the job emitted (before ``on_result``), besides the
        warning notification.
        """
        if self._dropped:
            return None
        if self.running:
            show_info("A job is already running in this panel; wait for it or press Cancel.")
            return None
        self._cancel.clear()
        self._on_result, self._on_warning, self._label = on_result, on_warning, label
        self._warned = set()
        relay = self._relay

        def progress(done: int, total: int) -> None:
            relay.advanced.emit(int(done), int(total))

        worker = create_worker(
            func,
            *args,
            progress=progress,
            cancel=self._cancel,
            _start_thread=False,
            _connect={"errored": self._on_error},
            **kwargs,
        )
        # bound methods: Qt drops these connections if the panel is deleted while the job runs
        worker.returned.connect(self._on_returned)
        worker.warned.connect(self._on_warned)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._busy = True
        self.bar.setRange(0, 0)
        self.status.setText(f"{label}...")
        self.cancel_button.setEnabled(True)
        worker.start()
        return worker

    def wait(self, timeout: float = 600.0) -> None:
        """Block a script (not a callback) until the job finished, keeping the GUI alive.

        Raises
        ------
        TimeoutError
            The job ran longer than ``timeout`` seconds (it keeps running; press Cancel to stop it).
        RuntimeError
            The job failed or was cancelled (the status line says why; layers are unchanged).
        """
        app = QApplication.instance()
        start = time.monotonic()
        while self.running:
            app.processEvents()
            time.sleep(0.01)
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"the job did not finish within {timeout:.0f} s; press Cancel to stop it")
        app.processEvents()
        status = self.status.text()
        if "failed" in status or "cancelled" in status:
            raise RuntimeError(status)

    def cancel(self) -> None:
        """Ask the running job to stop at its next checkpoint."""
        self._cancel.set()
        self.status.setText("cancelling...")

    def _on_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))

    def _on_warned(self, args: tuple) -> None:
        """A warning from the job (``warnings.showwarning`` arguments): notify once, hand it to ``on_warning``."""
        message, category = args[0], args[1]
        if self._dropped or not issubclass(category, UserWarning):
            return
        warning = message if isinstance(message, Warning) else category(str(message))
        if str(warning) not in self._warned:
            self._warned.add(str(warning))
            show_warning(f"{self._label}: {warning}")
        if self._on_warning is not None:
            self._on_warning(warning)

    def _on_returned(self, result) -> None:
        if self._dropped:
            return
        try:
            pieces = self._on_result(result)
        except (ValueError, TypeError) as exc:
            self._on_error(exc)
            return
        if pieces is None:
            self.status.setText(f"{self._label}: done")
            return
        self._pieces = pieces
        QTimer.singleShot(0, self._next_piece)

    def _next_piece(self) -> None:
        """Run one piece of a generator ``on_result``, then give the event loop a turn before the next."""
        if self._pieces is None:
            return
        try:
            next(self._pieces)
        except StopIteration:
            self._pieces = None
            self.status.setText(f"{self._label}: done")
            return
        except Exception as exc:  # noqa: BLE001 (relayed: expected ones as notifications, others with traceback)
            self._pieces = None
            self._on_error(exc)
            return
        QTimer.singleShot(0, self._next_piece)

    def _on_error(self, exc: BaseException) -> None:
        if self._dropped:
            return
        label = self._label
        if isinstance(exc, Cancelled):
            self.status.setText(f"{label}: cancelled, nothing changed")
            show_info(f"{label}: cancelled; no layer was changed.")
            return
        message = f"{label} failed: {exc}"
        self.status.setText(message)
        if isinstance(exc, (ValueError, TypeError)):
            show_error(message)
        else:
            notification_manager.receive_error(type(exc), exc, exc.__traceback__)

    def _on_finished(self) -> None:
        self._busy = False
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.cancel_button.setEnabled(False)
