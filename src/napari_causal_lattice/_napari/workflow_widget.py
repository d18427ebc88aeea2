"""The "Workflow" dock widget: the six steps as tabs of one dock, so the whole analysis fits one screen."""

from __future__ import annotations

from qtpy.QtCore import QSize
from qtpy.QtWidgets import QTabWidget

from ._dock import DOCK_HINT_HEIGHT, DOCK_WIDTH, track_docking
from .causal_widget import CausalWidget
from .columns_widget import ColumnsWidget
from .compare_widget import CompareWidget
from .descriptors_widget import DescriptorsWidget
from .sliding_widget import SlidingWidget
from .theory_widget import TheoryWidget

#: Tab label and widget class of each step, in workflow order.
STEPS = (
    ("Columns", ColumnsWidget),
    ("Descriptors", DescriptorsWidget),
    ("Causal", CausalWidget),
    ("Sliding", SlidingWidget),
    ("Theory", TheoryWidget),
    ("Compare", CompareWidget),
)


class WorkflowWidget(QTabWidget):
    """All six steps in one dock, one tab each (each tab scrolls on its own).

    Attributes
    ----------
    steps : dict
        Tab label -> the step's dock widget (e.g. ``steps["Sliding"]``).
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._docked = False
        self.steps = {}
        for label, widget_class in STEPS:
            widget = widget_class(napari_viewer)
            self.steps[label] = widget
            self.addTab(widget, label)
        self.setUsesScrollButtons(True)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        return QSize(DOCK_WIDTH, DOCK_HINT_HEIGHT)

    def event(self, event) -> bool:
        track_docking(self, event)
        return super().event(event)

    def close_dock(self) -> None:
        """Close every step (disconnect from the viewer, drop running jobs)."""
        for widget in self.steps.values():
            widget.close_dock()
