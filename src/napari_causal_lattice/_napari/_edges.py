"""What the docks say about the calibrated edge decision (``docs/confidence.md``): criterion, link types, colours.

Shared by the Causal discovery and Sliding LiNGAM docks so both state the criterion in the same words.
"""

from __future__ import annotations

from html import escape

from ..causal.confidence import DEFAULT_ALPHA, LINK_TYPES

#: FDR choice shown in the forms -> ``fdr=`` argument of ``fit_lingam`` / ``sliding_lingam``.
FDR_CHOICES = {"none": None, "BH": "bh", "BY": "by"}

#: Colour of each link-type code (:data:`LINK_TYPES`): none is transparent, the others are Okabe-Ito colours
#: that stay apart for colour-blind readers.
LINK_COLORS = ("transparent", "#E69F00", "#56B4E9", "#CC79A7")

__all__ = ["DEFAULT_ALPHA", "FDR_CHOICES", "LINK_COLORS", "LINK_TYPES", "criterion_text", "decision_fields",
           "link_legend_html", "link_names"]


def decision_fields(scope: str) -> list:
    """The magicgui fields ``alpha`` and ``fdr`` of the edge decision, for a form over ``scope``.

    Parameters
    ----------
    scope : str
        What the false discovery rate is controlled over, e.g. ``"the p(p-1) edges"``.
    """
    from magicgui.widgets import ComboBox, FloatSpinBox

    return [
        FloatSpinBox(name="alpha", label="Edge alpha", min=0.001, max=0.5, step=0.001, value=DEFAULT_ALPHA,
                     tooltip="Level of the order t-test that decides whether an edge is there (the FDR level with "
                             "BH/BY); see docs/confidence.md"),
        ComboBox(name="fdr", label="FDR control", choices=list(FDR_CHOICES), value="none",
                 tooltip=f"Control the false discovery rate over {scope}: Benjamini-Hochberg, or "
                         "Benjamini-Yekutieli (any dependence between the tests)"),
    ]


def criterion_text(params: dict) -> str:
    """The edge criterion of a fit from its parameters, e.g. ``"order t-test, alpha 0.01, BH"``.

    Parameters
    ----------
    params : dict
        ``LingamResult.params`` or ``SlidingResult.provenance["params"]`` (keys ``alpha``, ``fdr``).
    """
    alpha = params.get("alpha")
    if alpha is None:
        return "no calibrated edge test (result from an older version)"
    fdr = params.get("fdr")
    return f"order t-test, alpha {alpha:g}" + (f", {str(fdr).upper()}" if fdr else "")


def link_names(a: str, b: str) -> tuple[str, str, str, str]:
    """The four link types of the pair ``(a, b)`` in words: none, ``a <- b``, ``b <- a``, ``a <-> b``."""
    return ("none", f"{a} <- {b}", f"{b} <- {a}", f"{a} <-> {b}")


def link_legend_html(a: str, b: str) -> str:
    """A one-line HTML legend of the link-type map of ``(a, b)``: a coloured square per type."""
    names = link_names(a, b)
    entries = [f"<span style='color:{LINK_COLORS[k]}'>&#9632;</span> {escape(names[k])}" for k in (1, 2, 3)]
    return "Link type: " + " &nbsp; ".join(entries) + " &nbsp; (none: transparent)"
