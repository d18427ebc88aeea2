"""Dock forms generated from the options objects (:mod:`napari_causal_lattice.options`).

One form per step: a magicgui ``Container`` whose fields, labels, tooltips, bounds and defaults come from the
step's options class, with the defaults of a whole analysis (:class:`~napari_causal_lattice.options.AnalysisOptions`,
the same as the CLI's ``analyze``).  :func:`form_options` reads the form back into a validated options object, so a
dock runs with exactly the options the command line would.
"""

from __future__ import annotations

import math

from napari_causal_lattice.options import AnalysisOptions, StepOptions, form_fields

__all__ = ["AUTO", "FORM_LABELS", "option_widgets", "options_form", "form_options"]

#: Spin-box value that reads "auto" for ``window`` (windows are at least 3 cells) and the optional counts.
AUTO = {"window": 2}
#: Short labels of the fields in the docks (the tooltips carry the options' full docs).
FORM_LABELS = {"n_bootstrap": "Bootstraps", "seed": "Seed", "alpha": "Edge alpha", "fdr": "FDR control",
               "min_direction": "Direction share", "drop_deterministic": "leave out deterministic descriptors",
               "spatial": "spatially honest p-values", "standardize": "standardise", "eiv": "errors-in-variables",
               "n_images": "Null images", "shuffle_intensities": "shuffle intensities"}
#: How choices read in a form (the value stays the option's).
_CHOICE_LABELS = {None: "none", "bh": "BH (Benjamini-Hochberg)", "by": "BY (Benjamini-Yekutieli)"}


def _defaults(step: str) -> StepOptions:
    return getattr(AnalysisOptions(), step)


def options_form(step: str, names=None, *, labels: dict | None = None):
    """A magicgui Container of :func:`option_widgets`."""
    from magicgui.widgets import Container

    return Container(widgets=option_widgets(step, names, labels=labels))


def option_widgets(step: str, names=None, *, labels: dict | None = None) -> list:
    """One magicgui widget per option of ``step`` (``"columns"``, ``"cells"``, ``"lingam"``, ``"sliding"``,
    ``"pca"``, ``"null"``), defaults as in a whole analysis; ``names`` picks and orders them.

    ``window`` and optional whole numbers (``stride``, ``min_cells``) are spin boxes whose lowest value reads
    "auto"; optional choices (``fdr``) offer "none".  ``labels`` overrides a field's label.
    """
    from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox

    defaults = _defaults(step)
    cls = type(defaults)
    specs = cls.specs()
    widgets = []
    for name, entry in form_fields(cls, names).items():
        spec = specs[name]
        value = getattr(defaults, name)
        label = (labels or {}).get(name, entry["label"])
        common = {"name": name, "label": label, "tooltip": entry["tooltip"]}
        if spec.kind == "bool":
            widget = CheckBox(value=bool(value), text=label, **{k: v for k, v in common.items() if k != "label"})
            widget.label = ""
        elif spec.kind == "choice":
            choices = [(_CHOICE_LABELS.get(c, str(c)), c) for c in entry["choices"]]
            widget = ComboBox(choices=choices, value=value, **common)
        elif spec.kind == "window" or (spec.kind == "int" and spec.optional):
            low = AUTO.get(name, int(spec.low or 0) - 1)
            widget = SpinBox(min=low, max=10**6, value=low if value in (None, "auto") else int(value), **common)
            widget.native.setSpecialValueText("auto")
        elif spec.kind in ("int", "seed"):
            widget = SpinBox(min=entry.get("min", 0), max=min(entry.get("max", 2**31 - 1), 2**31 - 1),
                             value=int(value if value is not None else 0), **common)
        elif spec.kind == "float" and not spec.optional:
            step_size = 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 0.01
            widget = FloatSpinBox(min=entry["min"], max=entry["max"], value=float(value), step=step_size, **common)
        else:
            widget = LineEdit(value="" if value is None else str(value), **common)
        widgets.append(widget)
    return widgets


def form_options(step: str, form, **more) -> StepOptions:
    """The validated options of ``step`` from the widgets of ``form`` (those named after an option of the step;
    a Container of :func:`options_form` or any container holding :func:`option_widgets`) plus ``more``.

    Raises
    ------
    ValueError, TypeError
        A value the options do not allow (the message names the field), shown by the dock as a notification.
    """
    defaults = _defaults(step)
    specs = type(defaults).specs()
    values = {}
    for widget in form:
        name = widget.name
        if name not in specs:
            continue
        spec = specs[name]
        value = widget.value
        if spec.kind == "window" or (spec.kind == "int" and spec.optional):
            auto = AUTO.get(name, int(spec.low or 0) - 1)
            value = ("auto" if spec.kind == "window" else None) if value == auto else int(value)
        elif spec.kind == "float" and spec.optional:
            try:
                value = float(value) if str(value).strip() else None
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not a number; type a number in {spec.unit or 'the field'}, or "
                                 "leave it empty for the automatic value") from None
        values[name] = value
    values.update(more)
    return type(defaults).resolve(defaults, **values)
