"""One definition per parameter: a frozen, validated options object per pipeline step.

Each step of the pipeline has one options class (:class:`ColumnsOptions`, :class:`CellsOptions`,
:class:`CausalOptions`, :class:`SlidingOptions`, :class:`PCAOptions`, :class:`NullOptions`; and outside one
analysis :class:`CompareOptions`, :class:`WallOptions`, :class:`LGDOptions`) whose fields carry the default, the
unit, the bounds and a one-line doc.  Everything else is generated from them:

- the core functions take ``options=`` (keywords still work and override it; :func:`takes_options`);
- :func:`pipeline_parameters` / :class:`AnalysisOptions` give the pipeline's parameters, its provenance and its
  resume key;
- :func:`add_cli_arguments` gives the ``analyze`` flags, with help texts from the same docs;
- :func:`form_fields` gives the magicgui forms of the docks.

Adding an option therefore means adding one field to one class and using it in the step's code.

Errors follow one rule everywhere: a value of the wrong type is a :class:`TypeError`, a value of the right type
outside its range or choices a :class:`ValueError`; both name the option, the allowed values and its doc.

Examples
--------
>>> SlidingOptions(window=12).window
12
>>> SlidingOptions(window=2)
Traceback (most recent call last):
...
ValueError: window must be 'auto' or a whole number >= 3, got 2 (sliding window side in unit cells; stride = window // 2)
>>> CausalOptions().alpha == SlidingOptions().alpha
True
"""

from __future__ import annotations

import argparse
import functools
import inspect
import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable

import numpy as np

from ._warn import warn
from .lattice import PLAUSIBLE_SPACING_PM

__all__ = [
    "StepOptions",
    "ColumnsOptions",
    "CellsOptions",
    "CausalOptions",
    "SlidingOptions",
    "PCAOptions",
    "NullOptions",
    "LoadOptions",
    "CompareOptions",
    "WallOptions",
    "LGDOptions",
    "AnalysisOptions",
    "OptionSpec",
    "PROJECTIONS",
    "check_seed",
    "option_problems",
    "takes_options",
    "add_cli_arguments",
    "form_fields",
]

#: Crystal projections the column finder knows (``"auto"``: found from the image).
PROJECTIONS = ("auto", "[001]", "[110]")
#: FDR procedures of the edge test.
FDR_METHODS = ("bh", "by")

_KINDS = ("int", "float", "bool", "choice", "seed", "window", "text", "length_unit", "any")


@dataclass(frozen=True)
class OptionSpec:
    """What one option is: its kind, bounds, unit and doc (from a field's metadata)."""

    name: str
    kind: str
    default: Any
    doc: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    optional: bool = False
    cli: str | None = None
    form: bool = True
    identity: bool = True

    def range_text(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"

    def problem(self, value) -> tuple[type, str] | None:
        """(exception type, message) when ``value`` is not allowed, else None."""
        if value is None and self.optional:
            return None
        check = _CHECKS[self.kind]
        found = check(self, value)
        if found is None:
            return None
        kind, text = found
        return kind, f"{text} ({self.doc})"

    def help(self) -> str:
        unit = f" [{self.unit}]" if self.unit else ""
        default = "none" if self.default is None else self.default
        return f"{self.doc}{unit}; default {default}"


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _bounds_problem(spec: OptionSpec, value, what: str):
    too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
    too_high = spec.high is not None and (value >= spec.high if spec.high_open else value > spec.high)
    if not (too_low or too_high):
        return None
    if spec.high is None and spec.low == 0 and spec.low_open:
        return ValueError, f"{spec.name} must be a positive {what.split()[-1]}{' of ' + spec.unit if spec.unit else ''}, " \
                           f"got {value!r}"
    if spec.high is None:
        text = f"{'more than' if spec.low_open else 'at least'} {spec.low:g}"
    elif spec.low is None:
        text = f"{'less than' if spec.high_open else 'at most'} {spec.high:g}"
    elif spec.low_open and spec.high_open:
        text = f"between {spec.low:g} and {spec.high:g} (both excluded)"
    else:
        text = f"between {spec.low:g} and {spec.high:g}"
    return ValueError, f"{spec.name} must be {text}, got {value!r}"


def _check_int(spec, value):
    if not _is_int(value):
        return TypeError, f"{spec.name} must be a whole number, got {value!r}"
    return _bounds_problem(spec, value, "a whole number")


def _check_float(spec, value):
    if not _is_real(value):
        return TypeError, f"{spec.name} must be a number, got {value!r}"
    if not math.isfinite(float(value)):
        return ValueError, f"{spec.name} must be finite, got {value!r}"
    return _bounds_problem(spec, float(value), "a number")


def _check_bool(spec, value):
    if not isinstance(value, (bool, np.bool_)):
        return TypeError, f"{spec.name} must be True or False, got {value!r}"
    return None


def _check_choice(spec, value):
    if value not in spec.choices:
        allowed = ", ".join(repr(c) for c in spec.choices) + (" or None" if spec.optional else "")
        return ValueError, f"{spec.name} must be one of {allowed}, got {value!r}"
    return None


def _check_seed(spec, value):
    if isinstance(value, np.random.Generator):
        return TypeError, (f"{spec.name} must be a whole number >= 0 or None, not a numpy Generator (a Generator "
                           "cannot be stored with the result to repeat it); pass e.g. int(rng.integers(2**32))")
    if not _is_int(value):
        return TypeError, f"{spec.name} must be a whole number >= 0 or None, got {value!r}"
    if value < 0:
        return ValueError, f"{spec.name} must be a whole number >= 0 or None, got {value!r}"
    return None


def _check_window(spec, value):
    if value == "auto" or (_is_int(value) and value >= 3):
        return None
    kind = TypeError if not (isinstance(value, str) or _is_int(value)) else ValueError
    return kind, f"{spec.name} must be 'auto' or a whole number >= 3, got {value!r}"


def _check_text(spec, value):
    if not isinstance(value, str):
        return TypeError, f"{spec.name} must be text, got {value!r}"
    return None


def _check_length_unit(spec, value):
    from .readers import check_scale_unit

    try:
        check_scale_unit(value)
    except ValueError as exc:
        return ValueError, str(exc)
    return None


_CHECKS: dict[str, Callable] = {
    "int": _check_int, "float": _check_float, "bool": _check_bool, "choice": _check_choice, "seed": _check_seed,
    "window": _check_window, "text": _check_text, "length_unit": _check_length_unit, "any": lambda spec, value: None,
}


def option(default, doc: str, *, kind: str, unit: str = "", low=None, high=None, low_open: bool = False,
           high_open: bool = False, choices=(), optional: bool = False, cli: str | None = None, form: bool = True,
           identity: bool = True):
    """A dataclass field of an options class, with its spec in the metadata.

    ``cli`` is the flag of ``napari-causal-lattice analyze`` (None: not a flag), ``form`` whether the dock form
    shows it, ``identity`` whether it changes a number of the results (then it is part of the resume key).
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    meta = {"kind": kind, "doc": doc, "unit": unit, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "choices": tuple(choices), "optional": optional, "cli": cli, "form": form,
            "identity": identity}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class StepOptions:
    """Base of the per-step options: validation on creation, specs, plain-dict round trip."""

    def __post_init__(self):
        problems = option_problems(self)
        if problems:
            kind, text = problems[0]
            raise kind(text)

    @classmethod
    def specs(cls) -> dict[str, OptionSpec]:
        """Field name -> :class:`OptionSpec`, in field order."""
        return _specs(cls)

    def to_dict(self) -> dict:
        """Plain dict of every option (for provenance and the resume key)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def identity(self) -> dict:
        """The options that change a number of the results (the resume key's part of this step)."""
        specs = self.specs()
        return {name: value for name, value in self.to_dict().items() if specs[name].identity}

    @classmethod
    def from_dict(cls, values: dict):
        """The options from a plain dict (unknown keys are a ValueError)."""
        unknown = sorted(set(values) - set(cls.specs()))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; known: {', '.join(cls.specs())}")
        return cls(**values)

    @classmethod
    def resolve(cls, options=None, **keywords):
        """``options`` (or the defaults) with ``keywords`` replacing single fields; validated."""
        if options is None:
            return cls(**keywords)
        if not isinstance(options, cls):
            raise TypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
        return replace(options, **keywords) if keywords else options


@functools.lru_cache(maxsize=None)
def _specs(cls) -> dict[str, OptionSpec]:
    out = {}
    for f in fields(cls):
        if not f.metadata:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        out[f.name] = OptionSpec(name=f.name, default=default, **f.metadata)
    return out


def option_problems(options) -> list[tuple[type, str]]:
    """Every (exception type, message) for the fields of ``options`` that are not allowed, in field order."""
    out = []
    for name, spec in options.specs().items():
        found = spec.problem(getattr(options, name))
        if found is not None:
            out.append(found)
    return out


def check_seed(seed, name: str = "seed"):
    """The one seed policy: a whole number >= 0, or None for a fresh seed that the result records.

    Returns the seed to use and record (None becomes a drawn whole number).  A numpy Generator or a float is a
    TypeError, a negative number a ValueError.
    """
    spec = OptionSpec(name=name, kind="seed", default=None, doc="seed of the random resampling", optional=True)
    found = spec.problem(seed)
    if found is not None:
        kind, text = found
        raise kind(text)
    return int(np.random.SeedSequence().entropy % (2**63)) if seed is None else int(seed)


# --- the steps ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnsOptions(StepOptions):
    """Options of :func:`~napari_causal_lattice.columns.find_columns`."""

    projection: str = option("auto", "crystal projection of the image ('auto': found from the image)",
                             kind="choice", choices=PROJECTIONS, cli="--projection")
    spacing: float | None = option(None, "approximate A-A spacing; restricts the lattice search to 0.3-1.6x of it "
                                   "(default: found automatically)", kind="float", unit="pm (px without a pixel size)",
                                   low=0.0, low_open=True, optional=True, cli="--spacing")
    b_brighter: bool = option(False, "B columns are brighter than A (swap the A/B classification)", kind="bool",
                              cli="--b-brighter")
    intensity: str = option("gaussian", "column intensity: volume of the fitted Gaussian, or the disk sum",
                            kind="choice", choices=("gaussian", "disk"), cli="--intensity")
    radius: float | None = option(None, "fit-patch radius (default: half the A-B nearest-neighbour distance)",
                                  kind="float", unit="px", low=0.0, low_open=True, optional=True, cli="--radius")
    neighbours: bool = option(True, "refine each column with its neighbours' modelled contributions (core and "
                              "probe tail) removed, so positions do not depend on the neighbours' intensities",
                              kind="bool", cli="--neighbours")
    scan_correction: bool = option(True, "estimate the scan-line jitter and correct it before the final fit (off: "
                                   "estimated and reported only)", kind="bool", cli="--scan-correction")
    faint_threshold: float = option(3.0, "detectability (column peak over the local noise) below which a column is "
                                    "'faint' and its cells are flagged", kind="float", low=0.0,
                                    cli="--faint-threshold")
    contrast: str = option("auto", "column contrast: 'auto' (refuse dark columns), 'bright' (HAADF/ADF) or 'dark' "
                           "(ABF/BF: the inverted image is analysed)", kind="choice", choices=("auto", "bright", "dark"),
                           cli="--contrast")
    plausible_spacing: tuple = option(PLAUSIBLE_SPACING_PM, "plausible range of the shorter A-A spacing (a "
                                      "warning names the likely unit mistake outside it)", kind="any", unit="pm",
                                      form=False, identity=False)


@dataclass(frozen=True)
class CellsOptions(StepOptions):
    """Options of :func:`~napari_causal_lattice.cells.build_cells` (quality gates of each cell)."""

    frame: str = option("lattice", "frame of Px, Py: the lattice vectors or the image axes", kind="choice",
                        choices=("lattice", "image"), cli="--frame")
    min_quality: float = option(0.3, "lowest fit R^2 of a cell's 5 columns (else flag 'fit')", kind="float",
                                low=0.0, high=1.0, cli="--min-quality")
    max_sigma: float = option(0.05, "largest position sigma of a cell's columns, as a fraction of the shorter "
                              "lattice spacing (else flag 'fit')", kind="float", unit="cells", low=0.0,
                              low_open=True, cli="--max-sigma")
    min_b_distance: float = option(0.5, "closest a B column may come to an A column, as a fraction of the nominal "
                                   "A-B distance (else flag 'b_near_a')", kind="float", low=0.0, high=1.0,
                                   cli="--min-b-distance")
    max_offset: float = option(0.25, "largest |P| as a fraction of the shorter cell edge (else flag "
                               "'b_off_lattice')", kind="float", unit="cells", low=0.0, low_open=True, high=0.5,
                               cli="--max-offset")
    outlier_threshold: float = option(6.0, "robust standard deviations from the median of the grid neighbours "
                                      "above which a cell is flagged 'outlier'", kind="float", low=0.0,
                                      low_open=True, cli="--outlier-threshold")
    expected_lattice: float | None = option(None, "the lattice parameter you expect (e.g. the substrate's); a "
                                            "measured one further than lattice_tolerance from it warns that the "
                                            "pixel size may be off", kind="float", unit="pm", low=0.0,
                                            low_open=True, optional=True, cli="--expected-lattice")
    lattice_tolerance: float = option(0.05, "relative difference from expected_lattice that warns", kind="float",
                                      low=0.0, low_open=True, high=1.0, cli="--lattice-tolerance")


@dataclass(frozen=True)
class _EdgeTest(StepOptions):
    """The causal fit and its calibrated edge test, shared by the global and the sliding fits."""

    n_bootstrap: int = option(0, "bootstrap resamples for edge probabilities (0 = none)", kind="int", low=0,
                              cli="--bootstrap")
    seed: int | None = option(None, "random seed of the resampling (the same seed gives the same results; None draws "
                              "one and records it)", kind="seed", optional=True, cli="--seed")
    standardize: bool = option(True, "fit z-scored variables (coefficients in standard deviations)", kind="bool",
                               cli="--standardize")
    alpha: float = option(0.01, "level of the calibrated edge test", kind="float", low=0.0, low_open=True, high=0.5,
                          cli="--alpha")
    fdr: str | None = option(None, "false-discovery-rate control over all edges (and windows)", kind="choice",
                             choices=FDR_METHODS, optional=True, cli="--fdr")
    min_direction: float = option(0.75, "bootstrap share that states one direction of a linked pair (else "
                                  "'both')", kind="float", low=0.5, high=1.0, cli="--min-direction")
    drop_deterministic: bool = option(False, "leave out near-deterministic descriptors (Vol = a b sin alpha)",
                                      kind="bool", cli="--drop-deterministic")
    spatial: bool = option(True, "spatially honest p-values: the edge test counts the spatial autocorrelation of "
                           "the cells (an effective sample size); off treats cells as independent", kind="bool",
                           cli="--spatial")
    spatial_max_lag: int = option(4, "largest lag of the spatial autocorrelation the edge test counts", kind="int",
                                  unit="cells", low=1, high=20, cli="--spatial-max-lag")
    backend: Any = option(None, "causal-discovery backend: 'engine' (fast, default) or 'lingam' (the reference "
                          "package), or a CausalMethod", kind="any", choices=("engine", "lingam"), optional=True,
                          cli="--backend", form=False)
    prior_knowledge: Any = option("default", "prior knowledge ('default': I14 and I5 exogenous)", kind="any",
                                  form=False)


@dataclass(frozen=True)
class CausalOptions(_EdgeTest):
    """Options of :func:`~napari_causal_lattice.causal.fit_lingam` (the global causal graph)."""

    min_causal_effect: float = option(0.0, "|B| above which an edge counts as present in a resample (lingam's "
                                      "convention)", kind="float", low=0.0, form=False)
    eiv: bool = option(False, "also give coefficients corrected for measurement noise (errors in variables)",
                       kind="bool", cli="--eiv")
    independence_alpha: float = option(0.01, "family-wise level of the error-independence check (HSIC, Bonferroni "
                                       "over the pairs); below it a warning says the model does not fit",
                                       kind="float", low=0.0, low_open=True, high=0.5, cli="--independence-alpha")
    independence_max_samples: int = option(1000, "rows the error-independence test uses at most (it costs n^2; "
                                           "0 skips it)", kind="int", low=0, cli="--independence-max-samples",
                                           form=False)


@dataclass(frozen=True)
class SlidingOptions(_EdgeTest):
    """Options of :func:`~napari_causal_lattice.sliding.sliding_lingam` (the sliding LiNGAM transform)."""

    window: int | str = option("auto", "sliding window side in unit cells; stride = window // 2", kind="window",
                               unit="cells", cli="--window")
    stride: int | None = option(None, "step between windows (default window // 2)", kind="int", unit="cells",
                                low=1, optional=True, cli="--stride")
    min_cells: int | None = option(None, "complete cells a window needs to be fitted (default: half the window's "
                                   "cells, at least 3 per variable)", kind="int", unit="cells", low=10,
                                   optional=True, cli="--min-cells")


@dataclass(frozen=True)
class PCAOptions(StepOptions):
    """Options of :func:`~napari_causal_lattice.pca.adjacency_pca`."""

    n_components: int = option(4, "principal components of the windowed adjacency", kind="int", low=1,
                               cli="--components")
    use: str = option("adjacency", "what to decompose: signed coefficients, their magnitudes or probabilities",
                      kind="choice", choices=("adjacency", "abs_adjacency", "probabilities"), cli="--pca-use")
    significant_only: bool = option(False, "zero the elements that fail the edge test first", kind="bool",
                                    cli="--pca-significant-only")


@dataclass(frozen=True)
class PolarizationOptions(StepOptions):
    """Options of the mean polarization of an analysis (:func:`~napari_causal_lattice.cells.mean_polarization`)."""

    reference: str | None = option(None, "reference region of known P (e.g. the substrate) as cell-grid ranges "
                                   "'I0:I1,J0:J1' (rows i, columns j; either part may be left out, e.g. '40:48' for "
                                   "rows 40-47); its mean P is subtracted from the maps and the mean", kind="text",
                                   optional=True, cli="--reference")
    variants: bool = option(True, "systematic uncertainty of the mean P from fit-model variants (centre of mass, "
                            "Gaussian, two fit radii)", kind="bool", cli="--p-variants")
    warn_sigma: float = option(3.0, "without a reference, warn when the mean P is this many sigma from zero (tilt "
                               "and probe asymmetry produce a uniform offset)", kind="float", low=0.0,
                               low_open=True, cli="--p-warn-sigma", form=False)


@dataclass(frozen=True)
class NullOptions(StepOptions):
    """Options of the instrument null (images re-rendered from the fitted image model without the physics)."""

    n_images: int = option(0, "images re-rendered for the instrument null (0: no null; 20 is a good start, at "
                           "least 5)", kind="int", low=0, cli="--null-images")
    shuffle_intensities: bool = option(False, "shuffle the measured intensities among the columns of a "
                                       "sublattice in the null images", kind="bool", cli="--null-shuffle")
    smooth_degree: int = option(2, "polynomial degree of the smooth lattice the null's columns sit on (no local "
                                "strain)", kind="int", low=1, high=6, cli="--null-smooth-degree", form=False)


@dataclass(frozen=True)
class LoadOptions(StepOptions):
    """How an image file is read (see :func:`~napari_causal_lattice.readers.load_image`)."""

    pixel_size: float | None = option(None, "pixel size overriding the file's calibration", kind="float",
                                      unit="pm/px", low=0.0, low_open=True, optional=True, cli="--pixel-size")
    plane: int | None = option(None, "for files holding a stack of images: the image to analyse (0 = first)",
                               kind="int", low=0, optional=True, cli="--plane")
    scale_unit: str | None = option(None, "length unit of an axis scale stored without a unit (e.g. nm, A, pm)",
                                    kind="length_unit", optional=True, cli="--scale-unit")


@dataclass(frozen=True)
class CompareOptions(StepOptions):
    """Options of :func:`~napari_causal_lattice.compare.compare_images` (edges compared across images and
    groups)."""

    n_bootstrap: int = option(100, "bootstrap resamples per image for the confidence intervals", kind="int", low=20)
    seed: int | None = option(None, "random seed of the resampling (image k gets its own child generator; None "
                              "draws one and records it)", kind="seed", optional=True)
    shared_order: bool = option(False, "one causal order for all images, estimated on the pooled (per-image "
                                "centred) data", kind="bool")
    standardize: bool = option(False, "fit z-scored variables (off: coefficients in descriptor units, comparable "
                               "between images)", kind="bool")
    confidence: float = option(0.95, "level of the percentile intervals", kind="float", low=0.0, low_open=True,
                               high=1.0, high_open=True)
    eiv: bool = option(False, "also give coefficients corrected for measurement noise (needs sigma_<name> "
                       "columns)", kind="bool")
    backend: Any = option(None, "causal-discovery backend: 'engine' (fast, default) or 'lingam' (the reference "
                          "package), or a CausalMethod", kind="any", choices=("engine", "lingam"), optional=True,
                          form=False)
    prior_knowledge: Any = option("default", "prior knowledge ('default': I14 and I5 exogenous)", kind="any",
                                  form=False)


@dataclass(frozen=True)
class WallOptions(StepOptions):
    """Options of :func:`~napari_causal_lattice.walls.wall_profile` (a coupling measured across a domain wall)."""

    effect: str = option("Px", "the effect of the coupling effect <- cause", kind="text", form=False)
    cause: str = option("Py", "the cause of the coupling effect <- cause", kind="text", form=False)
    estimator: str = option("regression", "cells only: the coupling in each bin by least squares (with a linear "
                            "term in distance) or by LiNGAM on all descriptors", kind="choice",
                            choices=("regression", "lingam"))
    bin_width: float | None = option(None, "width of the distance bins (default: one lattice spacing)", kind="float",
                                     unit="px", low=0.0, low_open=True, optional=True)
    max_distance: float | None = option(None, "only samples at most this far from the wall (default: all)",
                                        kind="float", unit="px", low=0.0, low_open=True, optional=True)
    within_segment: bool = option(True, "only samples whose projection on the line falls between its two ends",
                                  kind="bool", form=False)
    min_count: int | None = option(None, "fewest samples for a bin to be used (default 3 windows or 12 cells)",
                                   kind="int", low=1, optional=True, form=False)
    n_bootstrap: int = option(200, "bootstrap resamples per bin for the confidence intervals", kind="int", low=20)
    confidence: float = option(0.95, "level of the intervals", kind="float", low=0.0, low_open=True, high=1.0,
                               high_open=True, form=False)
    seed: int | None = option(None, "random seed of the bootstrap (None draws one and records it)", kind="seed",
                              optional=True)
    fit: bool = option(True, "fit A tanh((d - d0) / Lc) + c to the binned profile", kind="bool", form=False)
    fit_shift: bool = option(True, "fit the offset d0 of the wall from the drawn line (else d0 = 0)", kind="bool",
                             form=False)
    deconvolve_window: bool = option(True, "sliding results only: fit the tanh averaged over the window width, so "
                                     "Lc is the local wall width", kind="bool", form=False)


@dataclass(frozen=True)
class LGDOptions(StepOptions):
    """Parameters of the linearized LGD theory (:mod:`~napari_causal_lattice.theory`: Eqs. 14-16).

    ``eps`` and ``r`` may also be arrays in the theory functions (broadcast against the distances); the
    options hold one value each.
    """

    eps: float = option(0.0, "doping factor (0 at the morphotropic phase boundary, 1 the antiferroelectric "
                        "limit)", kind="float", high=1.0)
    Lc: float = option(1.0, "wall width (correlation length L_C^P), in the unit of the distances", kind="float",
                       low=0.0, low_open=True)
    r: float = option(0.5, "ratio e2*/e1* of the non-observable local fields (Eq. 15)", kind="float")
    Q11: float = option(0.032, "electrostriction Q11 (default BiFeO3)", kind="float", unit="m^4/C^2")
    Q12: float = option(-0.016, "electrostriction Q12 (default BiFeO3)", kind="float", unit="m^4/C^2")
    Q44: float = option(0.020, "electrostriction Q44, Voigt (default BiFeO3)", kind="float", unit="m^4/C^2")
    P0: float = option(0.52, "bulk spontaneous polarization of the undoped material", kind="float", unit="C/m^2",
                       low=0.0)


#: Where a whole analysis (the CLI's ``analyze``, :func:`~napari_causal_lattice.pipeline.run_pipeline` and the
#: docks) departs from the single functions' defaults: it bootstraps every fit, with a fixed seed, so its
#: results carry probabilities and repeat exactly.
PIPELINE_DEFAULTS = {"n_bootstrap": 100, "seed": 0}

#: The steps of one analysis and their options classes, in pipeline order.
STEP_OPTIONS: dict[str, type[StepOptions]] = {
    "load": LoadOptions, "columns": ColumnsOptions, "cells": CellsOptions, "polarization": PolarizationOptions,
    "lingam": CausalOptions, "sliding": SlidingOptions, "null": NullOptions, "pca": PCAOptions,
}


@dataclass(frozen=True)
class AnalysisOptions:
    """The options of every step of one analysis (what :func:`~napari_causal_lattice.pipeline.run_pipeline` and
    ``analyze`` run with).

    Build it from flat keywords with :meth:`from_flat`: a keyword goes to every step that has a field of that
    name, so ``n_bootstrap=50`` sets both the global and the sliding fit, as the CLI's ``--bootstrap`` does.
    """

    load: LoadOptions = field(default_factory=LoadOptions)
    columns: ColumnsOptions = field(default_factory=ColumnsOptions)
    cells: CellsOptions = field(default_factory=CellsOptions)
    polarization: PolarizationOptions = field(default_factory=PolarizationOptions)
    lingam: CausalOptions = field(default_factory=lambda: CausalOptions(**PIPELINE_DEFAULTS))
    sliding: SlidingOptions = field(default_factory=lambda: SlidingOptions(**PIPELINE_DEFAULTS))
    null: NullOptions = field(default_factory=NullOptions)
    pca: PCAOptions = field(default_factory=PCAOptions)

    @classmethod
    def flat_specs(cls) -> dict[str, OptionSpec]:
        """Every option name of every step, once (shared names are defined once in a shared base)."""
        out: dict[str, OptionSpec] = {}
        for options_cls in STEP_OPTIONS.values():
            for name, spec in options_cls.specs().items():
                out.setdefault(name, replace(spec, default=PIPELINE_DEFAULTS[name]) if name in PIPELINE_DEFAULTS
                               else spec)
        return out

    @classmethod
    def from_flat(cls, options: "AnalysisOptions | None" = None, **keywords) -> "AnalysisOptions":
        """Options from flat keywords (each given to every step that has it), validated; all problems at once.

        Raises
        ------
        ValueError
            Unknown names, or one or more bad values (every problem listed).
        """
        specs = cls.flat_specs()
        unknown = sorted(set(keywords) - set(specs))
        if unknown:
            raise ValueError(f"unknown analysis option(s) {unknown}; known: {', '.join(specs)}")
        problems = flat_problems(keywords)
        if len(problems) == 1:
            raise problems[0][0](problems[0][1])
        if problems:
            raise ValueError(f"{len(problems)} problems with the analysis options:\n" +
                             "\n".join(f"  - {text}" for _, text in problems))
        base = options or cls()
        steps = {}
        for step, options_cls in STEP_OPTIONS.items():
            own = {k: v for k, v in keywords.items() if k in options_cls.specs()}
            steps[step] = replace(getattr(base, step), **own) if own else getattr(base, step)
        return cls(**steps)

    def to_dict(self) -> dict:
        """{step: {option: value}} of every step (the provenance)."""
        return {step: getattr(self, step).to_dict() for step in STEP_OPTIONS}

    def identity(self) -> dict:
        """{step: {option: value}} of what changes a number (the resume key, with the input's hash)."""
        return {step: _jsonable(getattr(self, step).identity()) for step in STEP_OPTIONS}


def flat_problems(keywords: dict) -> list[tuple[type, str]]:
    """(exception type, message) for every bad value among flat analysis keywords (empty when all are valid)."""
    specs = AnalysisOptions.flat_specs()
    out = []
    for name, value in keywords.items():
        found = specs[name].problem(value) if name in specs else None
        if found is not None:
            out.append(found)
    return out


def _jsonable(values: dict) -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif not isinstance(value, (str, int, float, bool, type(None), list, dict, tuple)):
            value = getattr(value, "name", type(value).__name__)
        out[key] = value
    return out


# --- core functions ----------------------------------------------------------------------------------------------


def takes_options(options_cls: type[StepOptions], *, aliases: dict[str, str] | None = None, arrays=()):
    """Let a core function take ``options=`` of ``options_cls``; its keywords still work and override it.

    The decorated function keeps its explicit keyword signature (whose defaults must equal the options' defaults:
    checked when the module is imported), and receives every option validated.  A parameter without a default
    stays required unless ``options`` is given.  ``aliases`` maps an old keyword to its new name; the old one still
    works with a :class:`DeprecationWarning` naming the new one.  ``arrays`` names options the function also takes
    as arrays (a list, tuple or ndarray of them is passed on as given, for the function to check).
    """
    specs = options_cls.specs()
    aliases = dict(aliases or {})

    def decorate(func):
        signature = inspect.signature(func)
        own = [name for name in specs if name in signature.parameters]
        required = {name for name in own if signature.parameters[name].default is inspect.Parameter.empty}
        for name in own:
            default = signature.parameters[name].default
            if name not in required and default is not specs[name].default and default != specs[name].default:
                raise AssertionError(f"{func.__name__}: default of {name!r} ({default!r}) differs from "
                                     f"{options_cls.__name__}'s ({specs[name].default!r})")

        positional = [p.name for p in signature.parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

        @functools.wraps(func)
        def wrapper(*args, options=None, **keywords):
            first = next((k for k, name in enumerate(positional[:len(args)]) if name in specs), None)
            if first is not None:  # an option given by position: pass it and those after it by name
                keywords.update(zip(positional[first:len(args)], args[first:]))
                args = args[:first]
            _rename(func.__name__, aliases, keywords)
            given = {name: keywords.pop(name) for name in own if name in keywords}
            as_given = {name: given.pop(name) for name in arrays
                        if isinstance(given.get(name), (list, tuple, np.ndarray))}
            resolved = options_cls.resolve(options, **given)
            for name in own:
                if name in as_given:
                    keywords[name] = as_given[name]
                elif name not in required or options is not None or name in given:
                    keywords[name] = getattr(resolved, name)
            return func(*args, **keywords)

        params = list(signature.parameters.values())
        extra = inspect.Parameter("options", inspect.Parameter.KEYWORD_ONLY, default=None,
                                  annotation=f"{options_cls.__name__} | None")
        at = next((k for k, p in enumerate(params) if p.kind == p.VAR_KEYWORD), len(params))
        wrapper.__signature__ = signature.replace(parameters=params[:at] + [extra] + params[at:])
        wrapper.options_class = options_cls
        return wrapper

    return decorate


def _rename(name: str, aliases: dict, keywords: dict) -> None:
    for old, new in aliases.items():
        if old in keywords:
            if new in keywords:
                raise TypeError(f"{name}() got both {old!r} and its new name {new!r}; pass {new!r}")
            warn(f"{name}({old}=...) is deprecated; use {new}=...", DeprecationWarning)
            keywords[new] = keywords.pop(old)


# --- CLI ---------------------------------------------------------------------------------------------------------


def _parse(spec: OptionSpec, text: str):
    """One CLI value: text -> the option's value, checked like the API checks it."""
    if spec.optional and text.lower() == "none":
        value = None
    elif spec.kind in ("int", "seed"):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    elif spec.kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    elif spec.kind == "window":
        try:
            value = text if text == "auto" else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number >= 3, got {text!r}") from None
    else:
        value = text
    found = _check_choice(spec, value) if spec.kind == "any" and spec.choices else spec.problem(value)
    if found is not None:
        raise argparse.ArgumentTypeError(found[1])
    return value


_METAVARS = {"int": "N", "seed": "N", "float": "X", "window": "N|auto", "text": "TEXT", "length_unit": "UNIT"}


def add_cli_arguments(group, specs: dict[str, OptionSpec]) -> None:
    """Add one flag per option that has a ``cli`` name (help from its doc, unit and default)."""
    for name, spec in specs.items():
        if spec.cli is None:
            continue
        if spec.kind == "bool":
            group.add_argument(spec.cli, dest=name, action=argparse.BooleanOptionalAction, default=spec.default,
                               help=spec.help())
        else:
            metavar = "|".join(spec.choices) if spec.choices else _METAVARS.get(spec.kind, "VALUE")
            group.add_argument(spec.cli, dest=name, type=functools.partial(_parse, spec), default=spec.default,
                               metavar=metavar, help=spec.help().replace("%", "%%"))


def cli_values(args, specs: dict[str, OptionSpec]) -> dict:
    """The option values an argparse namespace holds (only those with a flag)."""
    return {name: getattr(args, name) for name, spec in specs.items() if spec.cli is not None}


# --- dock forms --------------------------------------------------------------------------------------------------


def form_fields(options_cls: type[StepOptions], names=None) -> dict[str, dict]:
    """magicgui widget options per field (``{name: {"value", "label", "tooltip", ...}}``) for a dock form.

    Fields with ``form=False`` are left out; ``names`` picks and orders a subset.
    """
    specs = options_cls.specs()
    chosen = [n for n in (names or specs) if specs[n].form]
    out = {}
    for name in chosen:
        spec = specs[name]
        label = name.replace("_", " ") + (f" ({spec.unit})" if spec.unit and "(" not in spec.unit else "")
        entry: dict[str, Any] = {"value": spec.default, "label": label, "tooltip": spec.help()}
        if spec.kind == "choice":
            entry["choices"] = [*spec.choices, *([None] if spec.optional else [])]
        elif spec.kind == "int":
            entry.update(min=int(spec.low if spec.low is not None else 0),
                         max=int(spec.high if spec.high is not None else 10**6))
        elif spec.kind == "float":
            entry.update(min=float(spec.low if spec.low is not None else -1e9),
                         max=float(spec.high if spec.high is not None else 1e9))
        out[name] = entry
    return out
