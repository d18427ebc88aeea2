"""What every dock widget of the plugin shares: a scrollable body, a size that fits, error notifications and
a clean shutdown when the dock closes.

napari closes a plugin dock by taking the widget out of its dock (``setParent(None)``) without deleting it,
so Qt's ``destroyed`` never fires; :class:`DockWidget` watches that parent change instead and then
disconnects every viewer event and mouse callback it registered and drops the results of running jobs.
"""

from __future__ import annotations

from typing import Any, Callable

from napari.utils.notifications import show_error
from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

#: Dock size: fits beside the canvas on a 1280 x 1024 screen; the body scrolls when it is taller.
DOCK_WIDTH = 420
DOCK_MIN_HEIGHT = 240
DOCK_HINT_HEIGHT = 620


#: Characters a layer picker shows before eliding: long layer names must not widen the dock.
COMBO_CHARS = 5
#: Widest a number box may ask to be (px): a large range must not widen the dock.
SPIN_MAX_WIDTH = 130


def fit_narrow(widget: QWidget) -> None:
    """Let every combo box and spin box under ``widget`` shrink, so the dock fits :data:`DOCK_WIDTH`.

    Combo boxes size to :data:`COMBO_CHARS` characters instead of their longest entry (the list still shows the
    whole names); spin boxes are capped at :data:`SPIN_MAX_WIDTH` px; form rows that are too wide put the field
    under its label.
    """
    for combo in widget.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(COMBO_CHARS)
        combo.setSizePolicy(QSizePolicy.Policy.Expanding, combo.sizePolicy().verticalPolicy())
    for spin in widget.findChildren(QAbstractSpinBox):
        spin.setMaximumWidth(SPIN_MAX_WIDTH)
    for form in widget.findChildren(QFormLayout):
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)


def track_docking(widget, event) -> None:
    """Call ``widget.close_dock()`` when napari takes ``widget`` out of its dock.

    napari only reparents a removed dock's widget (Qt's ``destroyed`` never fires), so a ParentChange to no
    parent after having been docked is the close signal.
    """
    if event.type() == QEvent.Type.ParentChange:
        if widget.parent() is not None:
            widget._docked = True
        elif widget._docked:
            widget.close_dock()


class DockWidget(QWidget):
    """Base class of the plugin's dock widgets.

    Subclasses add their controls to :attr:`body_layout` (inside a scroll area), register viewer events with
    :meth:`listen` / :meth:`listen_layers` and mouse callbacks with :meth:`add_mouse_callback`, and connect
    buttons through :meth:`guarded` so that a ``ValueError``/``TypeError`` becomes a napari notification.

    Attributes
    ----------
    viewer : napari.Viewer
    body_layout : QVBoxLayout
        Layout of the scrollable body.
    closed : bool
        True once the dock was closed (:meth:`close_dock`); nothing is added to the viewer after that.
    """

    #: Name used in notifications ("Descriptors: pick the image layer").
    title = ""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.closed = False
        self._docked = False
        self._connections: list[tuple[Any, Callable]] = []
        self._mouse_callbacks: list[Callable] = []
        body = QWidget()
        self.body_layout = QVBoxLayout(body)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setWidget(body)
        self.scroll_area = scroll
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.setMinimumSize(DOCK_WIDTH - 80, DOCK_MIN_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(DOCK_WIDTH, DOCK_HINT_HEIGHT)

    # ----------------------------------------------------------------- connections
    def listen(self, emitter, callback: Callable) -> None:
        """Connect ``callback`` to a napari event emitter until the dock closes."""
        emitter.connect(callback)
        self._connections.append((emitter, callback))

    def listen_layers(self, callback: Callable) -> None:
        """Call ``callback`` whenever layers are added, removed or reordered."""
        self.listen(self.viewer.layers.events.inserted, callback)
        self.listen(self.viewer.layers.events.removed, callback)
        self.listen(self.viewer.layers.events.moved, callback)

    def add_mouse_callback(self, callback: Callable) -> None:
        """Append a canvas mouse-drag callback that is removed when the dock closes."""
        self.viewer.mouse_drag_callbacks.append(callback)
        self._mouse_callbacks.append(callback)

    def guarded(self, action: Callable[[], Any]) -> Callable[..., None]:
        """Slot for a button: runs ``action()``; a ValueError/TypeError becomes an error notification."""

        def slot(*_args) -> None:
            try:
                action()
            except (ValueError, TypeError) as exc:
                self.notify_error(exc)

        return slot

    def notify_error(self, exc: BaseException) -> None:
        """Show ``exc`` as a napari error notification and in the job panel's status line."""
        message = f"{self.title}: {exc}" if self.title else str(exc)
        jobs = getattr(self, "jobs", None)
        if jobs is not None:
            jobs.status.setText(str(exc))
        show_error(message)

    # ----------------------------------------------------------------- own layers
    def keep_layers_check(self) -> QCheckBox:
        """The check box "keep the layers of earlier runs" (off: a re-run replaces this step's own layers, like
        stardist-napari's reusable output layer); stored as :attr:`keep_layers`."""
        self.keep_layers = QCheckBox("keep the layers of earlier runs")
        self.keep_layers.setToolTip("Off: running again gives the layers this step added before the new result. "
                                    "On: they stay, and the new ones get a suffix.")
        return self.keep_layers

    def recycle_own_layers(self, layers, usable: Callable | None = None) -> list:
        """Sort ``layers`` (this step's output of an earlier run) for a re-run: each one still in the viewer (and
        ``usable(layer)``, when given) is returned to be refreshed in place
        (:func:`~napari_causal_lattice._napari.layers.update_layer`; a removal blocks the GUI thread about a
        second), the others are removed.  With "keep the layers of earlier runs" ticked all of them stay and none
        is returned.  Returns a list parallel to ``layers``, None where a layer is not recycled."""
        layers = list(layers)
        keep = getattr(self, "keep_layers", None)
        if keep is not None and keep.isChecked():
            return [None] * len(layers)
        recycled = []
        for layer in layers:
            present = layer is not None and layer in self.viewer.layers
            reuse = present and (usable is None or usable(layer))
            if present and not reuse:
                self.viewer.layers.remove(layer)
            recycled.append(layer if reuse else None)
        return recycled

    # ----------------------------------------------------------------- lifecycle
    def event(self, event) -> bool:
        track_docking(self, event)
        if event.type() == QEvent.Type.Polish:
            fit_narrow(self)
        return super().event(event)

    def close_dock(self) -> None:
        """Disconnect from the viewer and drop running jobs' results (called when napari closes the dock)."""
        if self.closed:
            return
        self.closed = True
        for emitter, callback in self._connections:
            emitter.disconnect(callback)
        self._connections.clear()
        for callback in self._mouse_callbacks:
            if callback in self.viewer.mouse_drag_callbacks:
                self.viewer.mouse_drag_callbacks.remove(callback)
        self._mouse_callbacks.clear()
        jobs = getattr(self, "jobs", None)
        if jobs is not None:
            jobs.drop()
