"""The descriptor registry: every fact about the 8 unit-cell descriptors, once.

Name, physical kind (so the unit follows from the pixel size and the intensity unit), whether it is signed (maps
centre their colour scale on 0), a short label for plots and widgets, and what it means for each supported
projection.  Figures, widgets, the report and the causal layer read these facts from here.

Examples
--------
>>> DESCRIPTOR_FACTS["Px"].signed, unit_of("Vol", pixel_size=12.0)
(True, 'pm^2')
>>> meaning("Px", "[110]").startswith("polarization along the long edge")
True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Descriptor", "DESCRIPTOR_FACTS", "DESCRIPTORS", "SIGNED", "meaning", "unit_of", "units_of"]


@dataclass(frozen=True)
class Descriptor:
    """One unit-cell descriptor.

    Attributes
    ----------
    name : str
        Column name in the cell table (e.g. ``"Px"``).
    kind : {"intensity", "length", "angle", "area"}
        What it measures; the unit follows (counts or the image's intensity unit, pm or px, deg, pm^2 or px^2).
    signed : bool
        Takes both signs around a physical zero (colour maps centred on 0).
    label : str
        Short text for axes, legends and tooltips.
    meanings : dict
        Projection (``"[001]"``, ``"[110]"``) -> what it means in that projection.
    """

    name: str
    kind: str
    signed: bool
    label: str
    meanings: dict

    def unit(self, length_unit: str = "pm", intensity_unit: str = "counts") -> str:
        """The unit for lengths in ``length_unit`` and intensities in ``intensity_unit``."""
        return {"intensity": intensity_unit, "length": length_unit, "angle": "deg",
                "area": f"{length_unit}^2"}[self.kind]


def _same(text: str) -> dict:
    return {"[001]": text, "[110]": text}


_FACTS = (
    Descriptor("I14", "intensity", False, "A-corner intensity",
               _same("total intensity of the 4 A-site corner columns")),
    Descriptor("I5", "intensity", False, "B intensity", _same("intensity of the B-site column")),
    Descriptor("a", "length", False, "lattice parameter a",
               {"[001]": "mean A-A edge length along lattice vector 1",
                "[110]": "mean A-A edge length along lattice vector 1, the long edge a (the B column's edge)"}),
    Descriptor("b", "length", False, "lattice parameter b",
               {"[001]": "mean A-A edge length along lattice vector 2",
                "[110]": "mean A-A edge length along lattice vector 2, the short edge a / sqrt 2"}),
    Descriptor("alpha", "angle", False, "cell angle", _same("angle between the two lattice edges")),
    Descriptor("Vol", "area", False, "projected cell area", _same("projected unit-cell area a * b * |sin(alpha)|")),
    Descriptor("Px", "length", True, "polarization Px",
               {"[001]": "polarization: B offset from the centroid of its 4 A corners, along lattice vector 1",
                "[110]": "polarization along the long edge: B offset from the mid-point of the two A columns of "
                         "its edge, along lattice vector 1"}),
    Descriptor("Py", "length", True, "polarization Py",
               {"[001]": "polarization: B offset from the centroid of its 4 A corners, perpendicular to lattice "
                         "vector 1",
                "[110]": "polarization across the long edge: B offset from the mid-point of the two A columns of "
                         "its edge, perpendicular to lattice vector 1"}),
)

#: Name -> :class:`Descriptor`, in the paper's order.
DESCRIPTOR_FACTS: dict[str, Descriptor] = {d.name: d for d in _FACTS}
#: The 8 unit-cell descriptors of the paper, in the paper's order.
DESCRIPTORS: tuple[str, ...] = tuple(DESCRIPTOR_FACTS)
#: Descriptors with a physical zero, shown on colour scales centred on 0.
SIGNED: tuple[str, ...] = tuple(d.name for d in _FACTS if d.signed)


def meaning(name: str, projection: str = "[001]") -> str:
    """What descriptor ``name`` means in ``projection`` (a Motif's name)."""
    try:
        facts = DESCRIPTOR_FACTS[name]
    except KeyError:
        raise ValueError(f"unknown descriptor {name!r}; the descriptors are {', '.join(DESCRIPTORS)}") from None
    return facts.meanings.get(projection, facts.meanings["[001]"])


def unit_of(name: str, *, pixel_size: float | None, intensity_unit: str = "counts") -> str:
    """Unit of descriptor ``name`` (lengths in pm with a pixel size in pm/px, else px)."""
    return DESCRIPTOR_FACTS[name].unit("px" if pixel_size is None else "pm", intensity_unit)


def units_of(pixel_size: float | None, intensity_unit: str = "counts") -> dict[str, str]:
    """Descriptor name -> unit, for all 8 descriptors."""
    return {name: unit_of(name, pixel_size=pixel_size, intensity_unit=intensity_unit) for name in DESCRIPTORS}
