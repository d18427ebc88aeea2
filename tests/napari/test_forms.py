"""Every dock's parameter form is generated from its step's options class (issue 25): the form shows every form
field of the class with the defaults of a whole analysis (so a new option shows up in its dock without a hand
edit), and a value the options do not allow gives a message in the dock, not a traceback."""

from __future__ import annotations

import pytest

from napari_causal_lattice._napari._forms import form_defaults, form_options
from napari_causal_lattice._napari.causal_widget import NULL_IMAGES, CausalWidget
from napari_causal_lattice._napari.columns_widget import ColumnsWidget
from napari_causal_lattice._napari.compare_widget import CompareWidget
from napari_causal_lattice._napari.descriptors_widget import DescriptorsWidget
from napari_causal_lattice._napari.sliding_widget import SlidingWidget
from napari_causal_lattice._napari.theory_widget import TheoryWidget
from napari_causal_lattice.options import form_fields

#: (dock, attribute holding the form, step of AnalysisOptions or a dock's own step of `form_defaults`)
FORMS = [
    (ColumnsWidget, "params", "columns"),
    (DescriptorsWidget, "params", "cells"),
    (DescriptorsWidget, "mean_p_params", "polarization"),
    (CausalWidget, "options", "lingam"),
    (CausalWidget, "null_form", "null"),
    (SlidingWidget, "params", "sliding"),
    (SlidingWidget, "pca_params", "pca"),
    (CompareWidget, "options", "compare"),
    (TheoryWidget, "lgd_form", "lgd"),
    (TheoryWidget, "wall_form", "wall"),
]
#: Where a dock departs from the analysis defaults on purpose: the instrument null is a button of its own, so the
#: dock proposes 20 images where `analyze` runs none unless asked.
DOCK_DEFAULTS = {("null", "n_images"): NULL_IMAGES}


@pytest.mark.parametrize(("dock", "attribute", "step"), FORMS, ids=[f"{d.__name__}.{a}" for d, a, _ in FORMS])
def test_dock_form_is_the_options_form(make_napari_viewer, qtbot, dock, attribute, step):
    widget = dock(make_napari_viewer())
    qtbot.addWidget(widget)
    form = getattr(widget, attribute)
    defaults = form_defaults(step)
    shown = [w.name for w in form if w.name in type(defaults).specs()]
    assert sorted(shown) == sorted(form_fields(type(defaults)))  # every form field, each once
    expected = defaults.to_dict() | {name: value for (s, name), value in DOCK_DEFAULTS.items() if s == step}
    assert form_options(step, form).to_dict() == expected


def test_auto_fields_read_auto(make_napari_viewer, qtbot):
    widget = SlidingWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    for name in ("window", "stride", "min_cells"):
        assert getattr(widget.params, name).native.text() == "auto", name
    widget.window_spin.setValue(12)
    assert form_options("sliding", widget.params).window == 12
    columns = ColumnsWidget(widget.viewer)
    qtbot.addWidget(columns)
    assert columns.params.spacing.native.text() == columns.params.radius.native.text() == "auto"
    columns.params.spacing.value = 390.0
    assert form_options("columns", columns.params).spacing == 390.0


def test_bad_form_value_is_a_message_in_the_dock(make_napari_viewer, qtbot):
    widget = DescriptorsWidget(make_napari_viewer())
    qtbot.addWidget(widget)
    widget.params.max_sigma.value = 0.0
    widget.guarded(widget.run)()  # what the Build button does
    assert widget.jobs.status.text().startswith("max_sigma must be a positive number")
    assert not widget.jobs.running
