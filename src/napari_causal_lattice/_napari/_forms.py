"""Dock forms generated from the options objects (:mod:`napari_causal_lattice.options`).

One form per step: a magicgui ``Container`` whose fields, labels, tooltips, bounds and defaults come from the
step's options class, with the defaults of a whole analysis (:class:`~napari_causal_lattice.options.AnalysisOptions`,
the same as the CLI's ``analyze``).  :func:`form_options` reads the form back into a validated options object, so a
dock runs with exactly the options the command line would.
"""

from __future__ import annotations

import math

from napari_causal_lattice.options import (
    AnalysisOptions,
    CompareOptions,
    LGDOptions,
    StepOptions,
    WallOptions,
    form_fields,
)

__all__ = ["AUTO", "FORM_LABELS", "form_defaults", "option_widgets", "options_form", "form_options"]

#: Spin-box value that reads "auto" for ``window`` (windows are at least 3 cells) and the optional counts.
AUTO = {"window": 2}
#: Short labels of the fields in the docks (the tooltips carry the options' full docs); a field without one is
#: labelled with its name and unit.
FORM_LABELS = {"n_bootstrap": "Bootstraps", "seed": "Seed", "alpha": "Edge alpha", "fdr": "FDR control",
               "min_direction": "Direction share", "drop_deterministic": "leave out deterministic descriptors",
               "spatial": "spatially honest p-values", "spatial_max_lag": "Spatial max lag (cells)",
               "standardize": "standardise", "eiv": "errors-in-variables",
               "independence_alpha": "Independence alpha", "window": "Window (cells)", "stride": "Stride (cells)",
               "min_cells": "Min cells per window",
               "n_images": "Null images", "shuffle_intensities": "shuffle intensities",
               "projection": "Projection", "spacing": "Spacing", "b_brighter": "B columns brighter than A",
               "intensity": "Intensity", "radius": "Fit radius (px)",
               "neighbours": "subtract the neighbours' modelled tails", "scan_correction": "correct the scan-line jitter",
               "faint_threshold": "Faint below (peak / noise)", "contrast": "Contrast",
               "frame": "Polarization frame", "min_quality": "Min fit quality (R^2)",
               "max_sigma": "Max position sigma (cells)", "min_b_distance": "Min B-A distance",
               "max_offset": "Max |P| (cells)", "outlier_threshold": "Outlier threshold (robust sd)",
               "expected_lattice": "Expected lattice (pm)", "lattice_tolerance": "Lattice tolerance",
               "reference": "Reference (grid ranges)", "variants": "fit-model variants (systematic sigma)",
               "n_components": "Components", "use": "Decompose", "significant_only": "significant elements only",
               "shared_order": "one causal order for all images", "confidence": "Confidence level",
               "estimator": "Bin estimator", "bin_width": "Bin width (px)", "max_distance": "Max distance (px)",
               "eps": "eps (doping)", "Lc": "Lc (px)", "r": "r = e2*/e1*"}
#: What the lowest value of an optional number's spin box reads (default "auto": the step chooses it).
_NONE_TEXT = {"expected_lattice": "none", "max_distance": "all"}
#: How choices read in a form (the value stays the option's).
_CHOICE_LABELS = {None: "none", "bh": "BH (Benjamini-Hochberg)", "by": "BY (Benjamini-Yekutieli)"}


#: The forms of steps outside one analysis, with their docks' defaults: the Compare dock seeds its resampling
#: with 0 like an analysis, the Theory dock its wall profile too, and draws the theory for a wall 40 px wide.
_OTHER_STEPS = {"compare": lambda: CompareOptions(seed=0), "wall": lambda: WallOptions(seed=0),
                "lgd": lambda: LGDOptions(Lc=40.0)}


def form_defaults(step: str) -> StepOptions:
    """The options a fresh form of ``step`` shows: those of a whole analysis (:class:`AnalysisOptions`), or for
    ``"compare"``, ``"wall"`` and ``"lgd"`` the Compare and Theory docks' defaults."""
    if step in _OTHER_STEPS:
        return _OTHER_STEPS[step]()
    return getattr(AnalysisOptions(), step)


def options_form(step: str, first=(), *, labels: dict | None = FORM_LABELS):
    """A magicgui Container of :func:`option_widgets`."""
    from magicgui.widgets import Container

    return Container(widgets=option_widgets(step, first, labels=labels))


def option_widgets(step: str, first=(), *, labels: dict | None = FORM_LABELS) -> list:
    """One magicgui widget per form field of ``step``'s options (``"columns"``, ``"cells"``, ``"polarization"``,
    ``"lingam"``, ``"sliding"``, ``"pca"``, ``"null"``; ``"compare"``, ``"wall"``, ``"lgd"``), defaults as in
    :func:`form_defaults`.

    Every option with ``form=True`` gets a widget, so an option added to the class shows up in its dock; ``first``
    names the ones shown first, the others follow in field order.  ``window`` and optional numbers (``stride``,
    ``min_cells``, ``spacing``, ``radius``) are spin boxes whose lowest value reads "auto"; optional choices (``fdr``)
    offer "none"; optional text (``reference``) is a line edit left empty for None.  ``labels`` maps a field to
    its label (default :data:`FORM_LABELS`).
    """
    from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox

    defaults = form_defaults(step)
    cls = type(defaults)
    specs = cls.specs()
    shown = form_fields(cls)
    unknown = [name for name in first if name not in shown]
    if unknown:
        raise ValueError(f"{cls.__name__} has no form field(s) {unknown}")
    names = [*first, *(name for name in shown if name not in first)]
    widgets = []
    for name in names:
        entry = shown[name]
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
            widget = _auto_spin_box(low, value=low if value in (None, "auto") else int(value), **common)
        elif spec.kind in ("int", "seed"):
            widget = SpinBox(min=entry.get("min", 0), max=min(entry.get("max", 2**31 - 1), 2**31 - 1),
                             value=int(value if value is not None else 0), **common)
        elif spec.kind == "float" and not spec.optional:
            step_size = 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 0.01
            widget = FloatSpinBox(min=entry["min"], max=entry["max"], value=float(value), step=step_size, **common)
        elif spec.kind == "float" and spec.low == 0 and spec.low_open:  # optional positive: 0 reads "auto"
            widget = FloatSpinBox(min=0.0, max=entry["max"], value=float(value or 0.0), step=0.1, **common)
            widget.native.setDecimals(3)
            widget.native.setSpecialValueText(_NONE_TEXT.get(name, "auto"))
        else:
            widget = LineEdit(value="" if value is None else str(value), **common)
        widgets.append(widget)
    return widgets


def _auto_spin_box(low: int, *, value: int, **common):
    """A magicgui spin box of whole numbers whose lowest value ``low`` reads "auto", on a plain QSpinBox (magicgui's
    own SpinBox is a superqt QLargeIntSpinBox, which shows no special-value text)."""
    from magicgui.backends._qtpy.widgets import QBaseRangedWidget
    from magicgui.widgets.bases import RangedWidget
    from qtpy.QtWidgets import QSpinBox

    class _Backend(QBaseRangedWidget):
        def __init__(self, **kwargs):
            super().__init__(QSpinBox, **kwargs)

    widget = RangedWidget(widget_type=_Backend, min=low, max=10**6, value=value, **common)
    widget.native.setSpecialValueText("auto")
    return widget


def form_options(step: str, form, **more) -> StepOptions:
    """The validated options of ``step`` from the widgets of ``form`` (those named after an option of the step;
    a Container of :func:`options_form` or any container holding :func:`option_widgets`) plus ``more``.

    Raises
    ------
    ValueError, TypeError
        A value the options do not allow (the message names the field), shown by the dock as a notification.
    """
    defaults = form_defaults(step)
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
            if value == 0.0 and spec.low == 0 and spec.low_open:
                value = None
        elif spec.kind == "text" and spec.optional:
            value = str(value).strip() or None
        values[name] = value
    values.update(more)
    return type(defaults).resolve(defaults, **values)
