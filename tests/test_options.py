"""One definition per parameter (issue 25): options objects, generated CLI flags and forms, one seed policy."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import napari_causal_lattice as ncl
from napari_causal_lattice import options as opts
from napari_causal_lattice.cli import build_parser
from napari_causal_lattice.options import (
    AnalysisOptions,
    CausalOptions,
    CellsOptions,
    ColumnsOptions,
    PCAOptions,
    SlidingOptions,
    form_fields,
)
from napari_causal_lattice.synthetic import synthetic_descriptor_grid

ALL = (opts.LoadOptions, ColumnsOptions, CellsOptions, CausalOptions, SlidingOptions, PCAOptions, opts.NullOptions,
       opts.CompareOptions, opts.WallOptions, opts.LGDOptions)


@pytest.mark.parametrize("cls", ALL)
def test_every_field_has_a_doc_and_its_default_is_valid(cls):
    specs = cls.specs()
    assert specs, cls
    for name, spec in specs.items():
        assert spec.doc and spec.kind in opts._KINDS, name
    cls()  # the defaults pass their own checks


@pytest.mark.parametrize(
    "cls, name, value, kind",
    [
        (SlidingOptions, "window", 2, ValueError),
        (SlidingOptions, "window", 2.5, TypeError),
        (SlidingOptions, "window", "big", ValueError),
        (CausalOptions, "n_bootstrap", -1, ValueError),
        (CausalOptions, "n_bootstrap", 1.5, TypeError),
        (CausalOptions, "n_bootstrap", True, TypeError),
        (CausalOptions, "seed", -1, ValueError),
        (CausalOptions, "seed", np.random.default_rng(0), TypeError),
        (CausalOptions, "seed", 0.5, TypeError),
        (CausalOptions, "alpha", 0.0, ValueError),
        (CausalOptions, "fdr", "bonferroni", ValueError),
        (CausalOptions, "min_direction", 0.4, ValueError),
        (ColumnsOptions, "projection", "[111]", ValueError),
        (ColumnsOptions, "b_brighter", "yes", TypeError),
        (CellsOptions, "min_quality", 1.5, ValueError),
        (PCAOptions, "n_components", 0, ValueError),
        (opts.CompareOptions, "confidence", 1.0, ValueError),
        (opts.WallOptions, "n_bootstrap", 10, ValueError),
        (opts.WallOptions, "estimator", "ica", ValueError),
        (opts.LGDOptions, "Lc", 0.0, ValueError),
        (opts.LGDOptions, "eps", "0.5", TypeError),
    ],
)
def test_one_error_type_per_kind_of_bad_input(cls, name, value, kind):
    with pytest.raises(kind, match=name):
        cls(**{name: value})


def test_shared_fields_are_defined_once():
    """The global and the sliding fits share the edge-test fields: one spec, the same defaults."""
    shared = set(CausalOptions.specs()) & set(SlidingOptions.specs())
    assert {"n_bootstrap", "seed", "alpha", "fdr", "min_direction", "drop_deterministic", "backend"} <= shared
    for name in shared:
        assert CausalOptions.specs()[name] == SlidingOptions.specs()[name]


@pytest.mark.parametrize("function, cls", [
    (ncl.find_columns, ColumnsOptions), (ncl.build_cells, CellsOptions), (ncl.fit_lingam, CausalOptions),
    (ncl.sliding_lingam, SlidingOptions), (ncl.adjacency_pca, PCAOptions),
    (ncl.compare_images, opts.CompareOptions), (ncl.wall_profile, opts.WallOptions),
    (ncl.strain_couplings, opts.LGDOptions), (ncl.spontaneous_polarization, opts.LGDOptions),
])
def test_core_functions_take_their_options_with_the_same_defaults(function, cls):
    params = inspect.signature(function).parameters
    assert "options" in params
    for name, spec in cls.specs().items():
        if name in params:
            assert params[name].default == spec.default, name


def test_options_object_and_keywords_agree():
    grid = synthetic_descriptor_grid((12, 12), seed=1)
    by_keywords = ncl.fit_lingam(grid.table[list(ncl.DESCRIPTORS)], n_bootstrap=5, seed=3, alpha=0.05)
    by_options = ncl.fit_lingam(grid.table[list(ncl.DESCRIPTORS)], options=CausalOptions(n_bootstrap=5, seed=3,
                                                                                           alpha=0.05))
    np.testing.assert_array_equal(by_keywords.adjacency, by_options.adjacency)
    np.testing.assert_array_equal(by_keywords.probabilities, by_options.probabilities)
    # a keyword replaces the field of the options object
    mixed = ncl.fit_lingam(grid.table[list(ncl.DESCRIPTORS)], options=CausalOptions(n_bootstrap=5, seed=4), seed=3,
                           alpha=0.05)
    np.testing.assert_array_equal(mixed.probabilities, by_keywords.probabilities)


def test_theory_takes_lgd_options_and_still_arrays():
    """The LGD options give the theory's scalar parameters; eps and r also stay arrays, and r stays required."""
    x = np.linspace(-5.0, 5.0, 11)
    lgd = opts.LGDOptions(eps=0.5, Lc=2.0, r=0.3)
    np.testing.assert_array_equal(ncl.dp2_dp1(x, options=lgd), ncl.dp2_dp1(x, eps=0.5, Lc=2.0, r=0.3))
    np.testing.assert_array_equal(ncl.strain_couplings(x, options=lgd)["dV/dP1"],
                                  ncl.strain_couplings(x, eps=0.5, Lc=2.0)["dV/dP1"])
    assert ncl.dp2_dp1(x[:, None], eps=np.array([0.0, 0.5]), Lc=2.0, r=[0.3, 1.0]).shape == (11, 2)
    with pytest.raises(TypeError, match="r"):
        ncl.dp2_dp1(x, eps=0.5, Lc=2.0)


def test_one_seed_policy_everywhere():
    """A Generator is a TypeError and a negative seed a ValueError in every function that takes a seed."""
    grid = synthetic_descriptor_grid((12, 12), seed=1)
    table = grid.table
    line = np.array([[0.0, 100.0], [200.0, 100.0]])
    calls = {
        "fit_lingam": lambda seed: ncl.fit_lingam(table[list(ncl.DESCRIPTORS)], n_bootstrap=2, seed=seed),
        "sliding_lingam": lambda seed: ncl.sliding_lingam(table, window=6, seed=seed),
        "compare_images": lambda seed: ncl.compare_images([table, table], n_bootstrap=20, seed=seed),
        "wall_profile": lambda seed: ncl.wall_profile(table, line, n_bootstrap=20, seed=seed),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match="Generator"):
            call(np.random.default_rng(0))
        with pytest.raises(ValueError, match="seed"):
            call(-1)


def test_a_random_seed_is_recorded_and_repeats_the_result():
    table = synthetic_descriptor_grid((10, 10), seed=2).table
    first = ncl.compare_images([table, table], n_bootstrap=20, seed=None)
    seed = first.provenance["seed"]
    assert isinstance(seed, int)
    again = ncl.compare_images([table, table], n_bootstrap=20, seed=seed)
    pd.testing.assert_frame_equal(first.table, again.table)


def test_old_keyword_names_still_work_with_a_warning():
    table = synthetic_descriptor_grid((10, 10), seed=2).table
    with pytest.warns(DeprecationWarning, match="variables"):
        old = ncl.fit_lingam(table, names=["a", "b", "Px"])
    new = ncl.fit_lingam(table, variables=["a", "b", "Px"])
    np.testing.assert_array_equal(old.adjacency, new.adjacency)
    with pytest.warns(DeprecationWarning, match="backend"):
        ncl.fit_lingam(table, variables=["a", "b"], method="engine")
    with pytest.raises(TypeError, match="both"):
        ncl.fit_lingam(table, names=["a", "b"], variables=["a", "b"])


def test_analysis_options_from_flat_keywords_reach_every_step_that_has_them():
    options = AnalysisOptions.from_flat(n_bootstrap=7, window=9, alpha=0.05, projection="[110]", min_quality=0.5)
    assert options.lingam.n_bootstrap == options.sliding.n_bootstrap == 7
    assert options.lingam.alpha == options.sliding.alpha == 0.05
    assert options.sliding.window == 9 and options.columns.projection == "[110]" and options.cells.min_quality == 0.5
    json.dumps(options.identity())  # the resume key is plain JSON
    with pytest.raises(ValueError, match="2 problems"):
        AnalysisOptions.from_flat(window=2, alpha=7.0)
    with pytest.raises(ValueError, match="unknown"):
        AnalysisOptions.from_flat(windw=9)


def test_pipeline_defaults_are_the_cli_defaults():
    """The CLI flags are generated from the options: every flag's default is the options' default."""
    parser = build_parser()
    args = parser.parse_args(["analyze", "x.tif", "--out", "o"])
    flat = AnalysisOptions.flat_specs()
    defaults = AnalysisOptions()
    for step in opts.STEP_OPTIONS:
        for name, value in getattr(defaults, step).to_dict().items():
            if flat[name].cli is not None:
                assert getattr(args, name) == value, (step, name)


def test_every_cli_flag_parses_through_the_option_checks():
    parser = build_parser()
    args = parser.parse_args(["analyze", "x.tif", "--out", "o", "--window", "12", "--alpha", "0.05", "--fdr", "bh",
                              "--no-standardize", "--eiv", "--seed", "none", "--backend", "lingam"])
    assert (args.window, args.alpha, args.fdr, args.standardize, args.eiv, args.seed, args.backend) == (
        12, 0.05, "bh", False, True, None, "lingam")
    for bad in (["--alpha", "2"], ["--window", "2"], ["--backend", "ica"], ["--fdr", "x"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["analyze", "x.tif", "--out", "o", *bad])


def test_form_fields_carry_bounds_choices_and_docs():
    fields = form_fields(SlidingOptions)
    assert "backend" not in fields and "prior_knowledge" not in fields
    assert fields["fdr"]["choices"] == ["bh", "by", None]
    assert fields["alpha"]["min"] == 0.0 and fields["alpha"]["max"] == 0.5
    assert "level of the calibrated edge test" in fields["alpha"]["tooltip"]
    assert fields["window"]["value"] == "auto"


def test_run_pipeline_rejects_options_all_at_once_and_by_kind():
    sample = ncl.synthetic_perovskite(seed=0, shape_cells=(6, 6))
    with pytest.raises(TypeError, match="Generator"):
        ncl.run_pipeline(sample, seed=np.random.default_rng(1))
    with pytest.raises(ValueError, match="2 problems"):
        ncl.run_pipeline(sample, window=2, n_bootstrap=-1)
    with pytest.raises(TypeError, match="unknown analysis option"):
        ncl.run_pipeline(sample, windw=8)


# --- warnings point at the caller ---------------------------------------------------------------------------------


def _deterministic_table(side: int = 24) -> pd.DataFrame:
    """Cells on a side x side grid with independent descriptors, except Vol = a b sin(alpha) (near-deterministic)."""
    rng = np.random.default_rng(1)
    i, j = np.divmod(np.arange(side * side), side)
    table = pd.DataFrame({"i": i, "j": j, "I14": 1000 + 50 * rng.uniform(-1, 1, i.size),
                          "I5": 800 + 40 * rng.uniform(-1, 1, i.size), "a": 390 + 2 * rng.uniform(-1, 1, i.size),
                          "b": 395 + 2 * rng.uniform(-1, 1, i.size), "alpha": 90 + 0.5 * rng.uniform(-1, 1, i.size),
                          "Px": 3 * rng.uniform(-1, 1, i.size), "Py": 2 * rng.uniform(-1, 1, i.size)})
    table["Vol"] = table["a"] * table["b"] * np.sin(np.radians(table["alpha"]))
    return table


def _caught(kind, call) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    found = [w for w in caught if issubclass(w.category, kind)]
    assert found, f"no {kind.__name__}"
    return found


def test_warnings_of_decorated_functions_point_at_the_callers_line():
    """The takes_options wrapper adds a frame between a core function and its caller; the warnings raised inside
    (at any depth of stages) still name the line that called the package."""
    from napari_causal_lattice.causal import DeterministicDescriptorWarning

    table = _deterministic_table()
    line = inspect.currentframe().f_lineno + 1
    found = _caught(DeterministicDescriptorWarning, lambda: ncl.fit_lingam(table))
    assert [(w.filename, w.lineno) for w in found] == [(__file__, line)]
    found = _caught(DeterministicDescriptorWarning, lambda: ncl.sliding_lingam(table, window=12, workers=1))
    assert {w.filename for w in found} == {__file__}
    found = _caught(DeprecationWarning, lambda: ncl.fit_lingam(table, names=["I14", "I5", "Px", "Py"]))
    assert {w.filename for w in found} == {__file__}
