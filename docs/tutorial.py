# %% [markdown]
# # Reproducing the paper's figures on the synthetic perovskite
#
# Barakati et al., "Mapping causal patterns in crystalline solids": Fig. 1 (toy model), Fig. 2
# (image and order-parameter maps), Fig. 3 (global causal graphs), Fig. 4 (sliding LiNGAM maps), Fig. 5
# (PCA of the windowed adjacency) and Figs. 8-9 (LGD theory), measured on the synthetic sample whose causal
# structure is planted and known.  Run it as a script:
#
#     python docs/tutorial.py --out DIR
#
# It writes one PNG per figure and ``summary.json`` (the key numbers, measured against the planted truth)
# into DIR, in about 30 s (the last section runs on the shared PbTiO3/SrRuO3 image when ../shared/data is
# present, ``--data`` to point elsewhere, and is skipped with a note otherwise).  The narrative is docs/tutorial.md.
"""Reproduce the paper's figures on the synthetic perovskite: ``python docs/tutorial.py --out DIR``."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image
from scipy.spatial import cKDTree

from napari_causal_lattice.causal import fit_lingam
from napari_causal_lattice.cells import build_cells
from napari_causal_lattice.columns import find_columns
from napari_causal_lattice.figures import (
    draw_map,
    plot_adjacency,
    plot_causal_graph,
    plot_figure8,
    plot_figure9,
    plot_global_graph,
)
from napari_causal_lattice.lattice import DESCRIPTORS
from napari_causal_lattice.pca import adjacency_pca
from napari_causal_lattice.placement import cell_regions, window_values_per_cell
from napari_causal_lattice.sliding import LINK_TYPES, sliding_lingam
from napari_causal_lattice.synthetic import synthetic_perovskite
from napari_causal_lattice.theory import figure8_curves, figure9_curves

#: Settings: small enough to run in about 30 s on 2 cores (with both real images), large enough for clear maps.
SEED = 0
TOY_SAMPLES = 2000
TOY_BOOTSTRAP = 100
GLOBAL_BOOTSTRAP = 50
WINDOW = 10  # cells; stride = WINDOW // 2 as in the paper -> 8 x 8 windows on the 48 x 48-cell sample
SLIDING_BOOTSTRAP = 20
PCA_COMPONENTS = 4
DPI = 100
PIXEL_SIZE = 19.8  # pm/px of synthetic_perovskite(); maps are drawn on axes in nm

#: Sliding maps shown in Fig. 4: (effect, cause) pairs.
FIG4_ELEMENTS = (("Px", "Py"), ("Py", "Px"), ("Py", "I5"), ("Vol", "a"), ("Vol", "b"), ("a", "b"))


def _figure(nrows: int, ncols: int, size: tuple[float, float]):
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _save(fig, out: Path, name: str) -> str:
    """Write ``fig`` as a 256-colour PNG (well under 300 kB) and return its file name."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    buffer.seek(0)
    with Image.open(buffer) as png:
        small = png.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    small.save(out / name, optimize=True)
    return name


# %% [markdown]
# ## Fig. 1: regression vs causal reconstruction on the toy chain z0 -> z1 -> z2
#
# z1 = 3 z0 + e1 and z2 = -6 z1 + e2 with e1, e2 uniform on (-1, 1) (Eqs. 1a, 1b); z0 is uniform on (-1, 1)
# too.  Each of the three regressions is numerically fine but only z2(z0, z1) reads the physics; LiNGAM
# recovers the chain and both coefficients from the observations alone.


def toy_data(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) samples (z0, z1, z2) of the paper's Eqs. 1a-1b."""
    z0 = rng.uniform(-1, 1, n)
    z1 = 3 * z0 + rng.uniform(-1, 1, n)
    z2 = -6 * z1 + rng.uniform(-1, 1, n)
    return np.column_stack([z0, z1, z2])


def regression(Z: np.ndarray, target: int) -> np.ndarray:
    """Least-squares coefficients (with intercept) of column ``target`` on the other columns."""
    others = [k for k in range(Z.shape[1]) if k != target]
    design = np.column_stack([Z[:, others], np.ones(len(Z))])
    coef, *_ = np.linalg.lstsq(design, Z[:, target], rcond=None)
    return coef[:-1]


def figure1(out: Path, rng: np.random.Generator) -> dict:
    names = ["z0", "z1", "z2"]
    Z = toy_data(TOY_SAMPLES, rng)
    fig, axes = _figure(1, 5, (17.0, 3.6))
    regressions = {}
    for target, ax, letter in zip(range(3), axes[0, :3], "abc"):
        others = [names[k] for k in range(3) if k != target]
        coef = regression(Z, target)
        regressions[names[target]] = dict(zip(others, coef.tolist()))
        ax.bar(others, coef, color=["#2e6fba" if c < 0 else "#c0392b" for c in coef])
        for x, c in enumerate(coef):
            ax.text(x, c, f"{c:+.3f}", ha="center", va="bottom" if c >= 0 else "top", fontsize=8)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(f"({letter}) regression {names[target]}({', '.join(others)})", fontsize=9)
        ax.set_ylabel("coefficient")
        ax.set_ylim(-7.5, 4.0)
    direct = fit_lingam(Z, variables=names, prior_knowledge=None, standardize=False)
    boot = fit_lingam(Z, variables=names, prior_knowledge=None, standardize=False, n_bootstrap=TOY_BOOTSTRAP,
                      seed=SEED)
    plot_causal_graph(direct, ax=axes[0, 3], title="(d) LiNGAM, direct fit")
    median = np.median(boot.bootstrap_adjacency, axis=0)
    plot_causal_graph(median, names=names, ax=axes[0, 4], probabilities=boot.probabilities, min_probability=0.5,
                      title=f"(e) LiNGAM, {TOY_BOOTSTRAP} bootstraps (median, P >= 0.5)")
    return {
        "figure": _save(fig, out, "fig1_toy.png"),
        "order": [names[k] for k in direct.causal_order],
        "z1<-z0": direct.coefficient("z1", "z0"),
        "z2<-z1": direct.coefficient("z2", "z1"),
        "z2<-z0": direct.coefficient("z2", "z0"),
        "bootstrap_median": {"z1<-z0": float(median[1, 0]), "z2<-z1": float(median[2, 1])},
        "bootstrap_probability": {"z1<-z0": boot.probability("z1", "z0"), "z2<-z1": boot.probability("z2", "z1"),
                                  "z2<-z0": boot.probability("z2", "z0")},
        "regressions": regressions,
    }


# %% [markdown]
# ## The synthetic sample: columns, unit cells, descriptors (the paper's Fig. 2)
#
# A 48 x 48-cell BiFeO3-like film (396 pm cell, 19.8 pm/px, lattice turned by 3 deg) on a substrate, with a
# 180 deg domain wall.  Planted truth: Px <- Py with coefficient k0 tanh(d / Lc) (sign flips at the wall),
# Py <- I5 only in the interface band above the substrate, Vol <- a and Vol <- b everywhere.  The image goes
# through the same chain a user runs: find_columns -> build_cells.


def measure_sample():
    sample = synthetic_perovskite(seed=SEED)
    if sample.pixel_size != PIXEL_SIZE:
        raise RuntimeError(f"the synthetic sample's pixel size is {sample.pixel_size} pm/px; update PIXEL_SIZE")
    columns = find_columns(sample.image, pixel_size=sample.pixel_size)
    cells = build_cells(columns)
    truth = sample.truth
    distance, nearest = cKDTree(truth.b_positions).query(cells.table[["y", "x"]].to_numpy())
    if np.any(distance > 0.5 * truth.cell_lattice.spacings[0]):
        raise RuntimeError("a measured cell does not sit on a planted B column; the column finding went wrong")
    true_ij = truth.b_grid[nearest]
    region = truth.region[true_ij[:, 0], true_ij[:, 1]]
    return sample, columns, cells, nearest, region


def _region_map(cells, region) -> np.ndarray:
    out = np.full(cells.grid_shape, np.nan)
    out[cells.table["i"].to_numpy(), cells.table["j"].to_numpy()] = region
    return out


def draw_truth(ax, sample):
    """Dashed lines where the planted wall and the interface band are (cell-grid geometry -> image px)."""
    params, lattice = sample.params, sample.truth.cell_lattice
    ni, nj = params["shape_cells"]
    film = ni - params["substrate_rows"]
    phi = np.radians(params["wall_angle"])
    middle = (film - 1) / 2.0
    rows = np.array([-0.5, film - 0.5])
    wall = np.column_stack([rows, params["wall_position"] + (rows - middle) * np.tan(phi)])
    lines = [wall] + [np.array([[i, -0.5], [i, nj - 0.5]]) for i in (film - params["interface_rows"] - 0.5, film - 0.5)]
    for line in lines:
        yx = lattice.to_image(line) * PIXEL_SIZE / 1000.0  # px -> nm, the axes of map_on_image
        ax.plot(yx[:, 1], yx[:, 0], "--", color="k", lw=1.0)


def map_on_image(ax, image, lattice, values, *, title, unit="", signed=True, vmax=None, cmap=None, colorbar=True,
                 truth=None):
    """Draw a grid map (i, j) over the image on axes in nm, each value on its own cell / window through ``lattice``.

    Colour limits: ``vmax`` when given (symmetric about 0 when ``signed``), else robust percentiles
    (:func:`~napari_causal_lattice.figures.robust_limits`).  ``truth`` (a SyntheticSample) adds the planted wall
    and interface band as dashed lines.
    """
    limits = None if vmax is None else ((-vmax, vmax) if signed else (0.0, vmax))
    draw_map(ax, image, PIXEL_SIZE, lattice, values, label=unit, signed=signed, limits=limits, cmap=cmap,
             colorbar=colorbar, max_pixels=250_000)
    if truth is not None:
        draw_truth(ax, truth)
    ax.set_title(title, fontsize=9)
    return ax


def figure2(out: Path, sample, columns, cells, nearest, region) -> dict:
    truth = sample.truth
    fig, axes = _figure(1, 4, (16.0, 4.3))
    ax = axes[0, 0]
    ax.imshow(sample.image, cmap="gray")
    ni, nj = truth.grid_shape
    centre = truth.lattice.to_image(np.array([ni * 0.6, nj * 0.5]))
    half = 3.5 * truth.lattice.spacings[0]
    for sub, colour in (("A", "#f1c40f"), ("B", "#1abc9c")):
        yx = columns.positions[columns.sublattice == sub]
        ax.plot(yx[:, 1], yx[:, 0], "o", ms=6, mfc="none", mew=1.2, color=colour, label=f"{sub} columns ({len(yx)})")
    ax.set_xlim(centre[1] - half, centre[1] + half)
    ax.set_ylim(centre[0] + half, centre[0] - half)
    ax.set_title("(a) a 7 x 7-cell detail with the found columns", fontsize=9)
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.legend(fontsize=7, loc="lower right", framealpha=0.8)
    regions = _region_map(cells, region)
    colours = ["#2e6fba", "#c0392b", "#8e44ad", "#16a085"]
    map_on_image(axes[0, 1], sample.image, cells.lattice, regions, title="(b) planted regions", signed=False,
                 vmax=3.0, cmap=ListedColormap(colours), colorbar=False)
    axes[0, 1].legend(handles=[Patch(color=c, label=truth.region_names[k]) for k, c in enumerate(colours)],
                      fontsize=7, loc="upper right", framealpha=0.8)
    maps = cells.maps()
    for ax, name in zip(axes[0, 2:], ("Px", "Py")):
        map_on_image(ax, sample.image, cells.lattice, maps[name], title=f"({'cd'[name == 'Py']}) {name} measured",
                     unit=f"{name} ({cells.units[name]})", truth=sample)
    errors = {}
    planted = truth.descriptors.iloc[nearest]
    for name in DESCRIPTORS:
        diff = cells.table[name].to_numpy() - planted[name].to_numpy()
        errors[name] = float(np.sqrt(np.mean(diff**2)))
    a_true = truth.a_positions
    dist, _ = cKDTree(columns.positions[columns.a]).query(a_true)
    return {
        "figure": _save(fig, out, "fig2_sample.png"),
        "image_shape": list(sample.image.shape),
        "n_a": int(len(columns.a)),
        "n_b": int(len(columns.b)),
        "n_cells": int(len(cells)),
        "n_cells_planted": int(np.prod(truth.grid_shape)),
        "spacing_px": [float(s) for s in columns.lattice.spacings],
        "spacing_px_planted": float(sample.params["pitch"]),
        "a_position_rms_px": float(np.sqrt(np.mean(dist**2))),
        "descriptor_rms_error": errors,
        "units": dict(cells.units),
    }


# %% [markdown]
# ## Fig. 3: global causal graphs and adjacency matrices, one per planted region
#
# The paper fits one graph per composition; the synthetic sample has four planted regions instead (two
# domains, the interface band, the substrate).  fit_lingam runs on the measured cells of each region with the
# paper's prior knowledge (I14 and I5 exogenous); the heatmaps are standardized coefficients (effect size), the
# numbers in summary.json are in physical units for comparison with the planted coefficients.

KEY_EDGES = (("Px", "Py"), ("Py", "I5"), ("Vol", "a"), ("Vol", "b"))


def figure3(out: Path, sample, cells, nearest, region) -> dict:
    truth = sample.truth
    names = list(truth.region_names.items())
    fig, axes = _figure(2, len(names), (4.2 * len(names), 8.4))
    table = cells.table[list(DESCRIPTORS)]
    true_ij = truth.b_grid[nearest]
    planted = truth.adjacency[true_ij[:, 0], true_ij[:, 1]]
    # measured intensities are Gaussian volumes, planted ones peak heights: express the planted couplings in
    # the measured units with each descriptor's gain (least-squares slope of measured on planted values)
    reference = truth.descriptors.iloc[nearest]
    gain = {name: float(np.sum(table[name].to_numpy() * reference[name].to_numpy())
                        / np.sum(reference[name].to_numpy() ** 2)) for name in DESCRIPTORS}
    results = {}
    for column, (label, name) in enumerate(names):
        rows = region == label
        fit = fit_lingam(table[rows], n_bootstrap=GLOBAL_BOOTSTRAP, seed=SEED, units=cells.units)
        plot_causal_graph(fit, ax=axes[0, column], min_probability=0.5, layout="circle",
                          title=f"{name} ({int(rows.sum())} cells): edges with P >= 0.5")
        plot_adjacency(fit, ax=axes[1, column], signed=True, vmin=-1.0, vmax=1.0, label="standardised (dimensionless)",
                       title=f"{name}: effect <- cause (standardized)")
        entry = {"n_cells": int(rows.sum()), "order": [fit.names[k] for k in fit.causal_order]}
        for effect, cause in KEY_EDGES:
            i, j = DESCRIPTORS.index(effect), DESCRIPTORS.index(cause)
            entry[f"{effect}<-{cause}"] = {
                "measured": fit.coefficient(effect, cause, in_units=True),
                "probability": fit.probability(effect, cause),
                "planted_mean": float(planted[rows, i, j].mean()),
                "planted_mean_measured_units": float(planted[rows, i, j].mean() * gain[effect] / gain[cause]),
                "unit": fit.coupling_unit(effect, cause),
            }
        results[name] = entry
    return {"figure": _save(fig, out, "fig3_global.png"), "gain": gain, "regions": results}


# %% [markdown]
# ## Fig. 4: sliding-window LiNGAM maps, aligned on the image
#
# Square windows of 10 x 10 cells moved by 5 cells (the paper's 50 % overlap); each window's coefficient is
# drawn on the image where the window sits (the window lattice maps window index -> image px, so a rotated
# lattice lines up).  The first column repeats the planted coefficient per cell for comparison.


def _ratio_unit(units: dict, effect: str, cause: str) -> str:
    return f"{units[effect]}/{units[cause]}"


def _window_regions(result, cells, region) -> list[list[set]]:
    """Set of planted region labels covered by each window, (ny, nx) nested lists."""
    i0, j0 = result.provenance["params"]["grid_origin_ij"]
    ii, jj = cells.table["i"].to_numpy(), cells.table["j"].to_numpy()
    ny, nx = result.shape
    cover = []
    for ky in range(ny):
        row = []
        for kx in range(nx):
            top, left = i0 + ky * result.stride, j0 + kx * result.stride
            inside = (ii >= top) & (ii < top + result.window) & (jj >= left) & (jj < left + result.window)
            row.append(set(region[inside].tolist()))
        cover.append(row)
    return cover


def figure4(out: Path, sample, cells, nearest, region):
    truth = sample.truth
    result = sliding_lingam(cells, window=WINDOW, n_bootstrap=SLIDING_BOOTSTRAP, seed=SEED)
    fig, axes = _figure(2, 4, (17.0, 8.6))
    true_ij = truth.b_grid[nearest]
    planted = np.full(cells.grid_shape + (len(DESCRIPTORS),) * 2, np.nan)
    planted[cells.table["i"].to_numpy(), cells.table["j"].to_numpy()] = truth.adjacency[true_ij[:, 0], true_ij[:, 1]]
    for row, (effect, cause) in enumerate((("Px", "Py"), ("Py", "I5"))):
        i, j = DESCRIPTORS.index(effect), DESCRIPTORS.index(cause)
        map_on_image(axes[row, 0], sample.image, cells.lattice, planted[..., i, j],
                     title=f"planted {effect} <- {cause} per cell", unit=_ratio_unit(truth.units, effect, cause),
                     truth=sample)
        map_on_image(axes[row, 1], sample.image, result.lattice, result.probability(effect, cause),
                     title=f"P({effect} <- {cause}), {SLIDING_BOOTSTRAP} bootstraps", signed=False, vmax=1.0,
                     unit="bootstrap probability", truth=sample)
    for ax, (effect, cause) in zip(axes[:, 2:].ravel(), FIG4_ELEMENTS[:2] + FIG4_ELEMENTS[2:3] + FIG4_ELEMENTS[5:]):
        map_on_image(ax, sample.image, result.lattice, result.element(effect, cause), vmax=1.0,
                     title=f"{effect} <- {cause} (window {WINDOW}), standardized", unit="standardised (dimensionless)",
                     truth=sample)
    figure = _save(fig, out, "fig4_sliding.png")

    fig, axes = _figure(1, 3, (13.0, 4.3))
    for ax, (effect, cause) in zip(axes[0], FIG4_ELEMENTS[3:]):
        map_on_image(ax, sample.image, result.lattice, result.element(effect, cause, in_units=True),
                     title=f"{effect} <- {cause} (window {WINDOW}), physical units",
                     unit=result.element_units(effect, cause, in_units=True), truth=sample)
    extra = _save(fig, out, "fig4_sliding_lattice.png")

    cover = _window_regions(result, cells, region)
    names = truth.region_names
    pxpy = result.element("Px", "Py")
    py_i5 = result.probability("Py", "I5")
    by_domain = {}
    for label in (0, 1):
        inside = np.array([[c == {label} for c in row] for row in cover]) & result.fitted
        values = pxpy[inside]
        sign = -1 if names[label] == "domain -" else 1
        by_domain[names[label]] = {"windows": int(inside.sum()), "median": float(np.median(values)),
                                   "sign_agreement": float(np.mean(np.sign(values) == sign))}
    in_band = np.array([[c == {2} for c in row] for row in cover]) & result.fitted
    outside = np.array([[2 not in c for c in row] for row in cover]) & result.fitted
    summary = {
        "figure": figure,
        "figure_lattice": extra,
        "window": WINDOW,
        "stride": result.stride,
        "windows": list(result.shape),
        "fitted": int(result.fitted.sum()),
        "Px<-Py": by_domain,
        "P(Py<-I5)": {
            "interface_windows": int(in_band.sum()),
            "interface_fraction_ge_0.5": float(np.mean(py_i5[in_band] >= 0.5)),
            "outside_windows": int(outside.sum()),
            "outside_fraction_le_0.2": float(np.mean(py_i5[outside] <= 0.2)),
        },
    }
    return result, summary


# %% [markdown]
# ## Fig. 5: PCA of the windowed adjacency matrices
#
# Every fitted window's 8 x 8 adjacency is one sample; the components are 8 x 8 matrices and the loadings are
# maps.  The planted structure has two sources of variation: the wall (Px <- Py flips sign) and the interface
# band (Py <- I5 switches on), so the first components separate the domains and mark the interface.


def _pca_figure(sample, pca, title):
    k = pca.n_components
    fig, axes = _figure(2, k, (4.2 * k, 8.2))
    fig.suptitle(title, fontsize=11)
    for n in range(k):
        ratio = 100 * pca.explained_variance_ratio[n]
        plot_adjacency(pca.components[n], names=list(pca.names), ax=axes[0, n], signed=True, annotate=False,
                       label="weight (unit-norm component)", title=f"component {n + 1} ({ratio:.0f} % of variance)")
        map_on_image(axes[1, n], sample.image, pca.lattice, pca.loadings[n], title=f"loading map {n + 1}",
                     unit="score (dimensionless)", truth=sample)
    return fig


def figure5(out: Path, sample, result, cells, region) -> dict:
    pca = adjacency_pca(result, n_components=PCA_COMPONENTS)
    figure = _save(_pca_figure(sample, pca, "PCA of the sliding adjacency, all 8 descriptors"), out, "fig5_pca.png")
    # the same without Vol: Vol = a b sin(alpha) is derived, and its links to a and b flip direction from window
    # to window, which dominates the variance above
    no_vol = sliding_lingam(cells, window=WINDOW, seed=SEED, variables=[n for n in DESCRIPTORS if n != "Vol"])
    pca_no_vol = adjacency_pca(no_vol, n_components=PCA_COMPONENTS)
    extra = _save(_pca_figure(sample, pca_no_vol, "PCA of the sliding adjacency without the derived Vol"), out,
                  "fig5_pca_without_vol.png")
    top = np.argsort(-np.abs(pca.components[0]).ravel())[:3]
    p = len(pca.names)
    return {
        "figure": figure,
        "figure_without_Vol": extra,
        "explained_variance_ratio": pca.explained_variance_ratio.tolist(),
        "domain_correlation": _domain_correlation(pca, result, cells, region),
        "component1_largest": [f"{pca.names[t // p]}<-{pca.names[t % p]}" for t in top],
        "without_Vol": {"explained_variance_ratio": pca_no_vol.explained_variance_ratio.tolist(),
                        "domain_correlation": _domain_correlation(pca_no_vol, no_vol, cells, region)},
    }


def _domain_correlation(pca, result, cells, region) -> list[float]:
    """Correlation of each loading map with the planted domain sign (-1 / +1) over windows inside one domain."""
    cover = _window_regions(result, cells, region)
    domain = np.array([[(-1.0 if c == {0} else 1.0 if c == {1} else np.nan) for c in row] for row in cover])
    usable = np.isfinite(domain) & result.fitted
    return [float(np.corrcoef(loading[usable], domain[usable])[0, 1]) for loading in pca.loadings]


# %% [markdown]
# ## Figs. 8-9: the linearized LGD theory near a 180 deg wall
#
# Fig. 8: dP2/dP1 vs distance from the wall for field ratios e2*/e1* and eps = 0, 0.5, 0.95 (eps grows with
# Sm content; eps -> 1 is the antiferroelectric limit).  Fig. 9: the strain-polarization couplings of Eq. 16.


def figure8(out: Path) -> dict:
    curves = figure8_curves()
    fig, axes = _figure(1, len(curves.eps), (5.0 * len(curves.eps), 4.0))
    for n, ax in enumerate(axes[0]):
        plot_figure8(ax, curves, eps_index=n)
        ax.set_title(f"({'abc'[n]}) eps = {curves.eps[n]:g}")
    wall = int(np.argmin(np.abs(curves.x)))
    r_index = int(np.argmin(np.abs(curves.r - 0.5)))
    return {
        "figure": _save(fig, out, "fig8_theory.png"),
        "eps": curves.eps.tolist(),
        "dP2/dP1_at_wall_r0.5": curves.values["dP2/dP1"][:, r_index, wall].tolist(),
        "dP2/dP1_far_r0.5": curves.values["dP2/dP1"][:, r_index, -1].tolist(),
    }


def figure9(out: Path) -> dict:
    curves = figure9_curves()
    fig, axes = _figure(1, 4, (18.0, 4.0))
    plot_figure9(axes[0], curves)
    for ax, letter in zip(axes[0], "abcd"):
        ax.set_title(f"({letter})")
    return {
        "figure": _save(fig, out, "fig9_theory.png"),
        "dV/dP1_far": curves.values["dV/dP1"][:, -1].tolist(),
        "dV/dP1_at_wall": curves.values["dV/dP1"][:, int(np.argmin(np.abs(curves.x)))].tolist(),
    }


# %% [markdown]
# ## A real image end to end: the PbTiO3/SrRuO3 supercrystal
#
# The shared HAADF image of a PbTiO3/SrRuO3 supercrystal (Hadjimichael, Li et al., Nature Materials 2021,
# doi:10.1038/s41563-020-00864-6; from the TEMUL project, GPL v3) is read from ``../shared/data`` and never
# copied; when that folder is absent this section is skipped with a note.  Columns, cells with their quality
# flags, the Py map placed cell by cell (``placement.cell_regions``: the lattice is curved), the global graph
# with the calibrated edges and a sliding map with its significance mask.

REAL_FOLDER = "temul_pto_sro_supercrystal"
REAL_PIXEL_SIZE = 14.997  # pm/px, from the file's metadata (see the folder's README)
REAL_BOOTSTRAP = 30
REAL_ELEMENT = ("Py", "I14")  # (effect, cause) shown in the sliding panel
REAL_CREDIT = ("PbTiO3/SrRuO3 HAADF: Hadjimichael, Li et al., Nat. Mater. 2021 (doi:10.1038/s41563-020-00864-6), "
               "via github.com/PinkShnack/TEMUL, GPL v3")
FLAG_MARKERS = {"fit": "x", "b_near_a": "s", "b_off_lattice": "^", "outlier": "o"}


def default_data() -> Path | None:
    """The shared real images next to the repository (``../shared/data`` or one level up), or None."""
    repo = Path(__file__).resolve().parents[1]
    for base in (repo.parent / "shared" / "data", repo.parent.parent / "shared" / "data"):
        if (base / REAL_FOLDER).is_dir():
            return base
    return None


def _raster_extent(raster):
    """imshow extent (left, right, bottom, top) in image px of a CellRaster."""
    h, w = raster.labels.shape
    ty, tx = raster.translate
    s = raster.step
    return (tx - 0.5 * s, tx + (w - 0.5) * s, ty + (h - 0.5) * s, ty - 0.5 * s)


def _real_panel(ax, image, raster, values, *, title, label, vmax, cmap="RdBu_r"):
    ax.imshow(image, cmap="gray")
    shown = ax.imshow(raster.paint(values), cmap=cmap, vmin=-vmax, vmax=vmax, alpha=0.6, extent=_raster_extent(raster))
    ax.figure.colorbar(shown, ax=ax, label=label, fraction=0.02, pad=0.01)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def real_image_maps(out: Path, image, columns, cells, sliding) -> dict:
    """Columns and flags, the Py map and the sliding map with its mask, each value on its own cell."""
    table = cells.table
    b = table[["y", "x"]].to_numpy()
    flagged = (table["flag"] != "").to_numpy()
    raster = cell_regions(cells, image.shape)
    fig, axes = _figure(3, 1, (13.0, 8.6))
    ax = axes[0, 0]
    ax.imshow(image, cmap="gray")
    for sub, colour in (("A", "tab:orange"), ("B", "tab:cyan")):
        pos = columns.positions[columns.sublattice == sub]
        ax.plot(pos[:, 1], pos[:, 0], ".", color=colour, ms=2.5, label=f"{sub} columns ({len(pos)})")
    for reason, count in cells.flag_counts().items():
        sel = (table["flag"] == reason).to_numpy()
        ax.plot(b[sel, 1], b[sel, 0], FLAG_MARKERS.get(reason, "x"), mfc="none", color="yellow", ms=8,
                label=f"flag {reason} ({count})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax.set_title(f"{len(columns.positions)} columns, {len(table)} cells ({cells.motif.name}), "
                 f"{int(flagged.sum())} flagged (NaN descriptors, never seen by LiNGAM)", fontsize=9)
    ax.set_axis_off()
    _real_panel(axes[1, 0], image, raster, table["Py"].to_numpy(), title="Py on each cell's own region "
                "(placement.cell_regions); flagged cells left empty", label="Py (pm)", vmax=40.0)
    effect, cause = REAL_ELEMENT
    k, j = sliding.names.index(effect), sliding.names.index(cause)
    values = np.where(sliding.significant[:, :, k, j], sliding.adjacency[:, :, k, j], np.nan)
    per_cell = window_values_per_cell(sliding, cells, values)
    per_cell[flagged] = np.nan
    window = sliding.provenance["params"]["window"]
    _real_panel(axes[2, 0], image, raster, per_cell, label="standardised coefficient", vmax=1.0,
                title=f"sliding {effect} <- {cause} (window {window} cells, chosen from the grid): coloured only "
                      "where the calibrated test passes (alpha 0.01)")
    fig.text(0.01, 0.002, REAL_CREDIT, fontsize=7)
    return {"figure": _save(fig, out, "real_pto_sro.png"), "significant_windows": int(np.isfinite(values).sum())}


def real_image(out: Path, data: Path | None) -> dict:
    """The PTO/SRO section: figures ``real_pto_sro.png`` and ``real_pto_sro_graph.png``, or a skip note."""
    folder = None if data is None else Path(data) / REAL_FOLDER
    if folder is None or not folder.is_dir():
        note = f"real-image section skipped: {folder or '../shared/data'} is not present on this machine"
        print(note)
        return {"status": "skipped", "reason": note}
    image = np.load(folder / "Cropped_PTO-SRO_Aligned_image.npy")
    columns = find_columns(image, pixel_size=REAL_PIXEL_SIZE)
    cells = build_cells(columns)
    lingam = fit_lingam(cells, n_bootstrap=REAL_BOOTSTRAP, seed=SEED, drop_deterministic=True)
    sliding = sliding_lingam(cells, n_bootstrap=SLIDING_BOOTSTRAP, seed=SEED, drop_deterministic=True)
    summary = real_image_maps(out, image, columns, cells, sliding)
    graph = plot_global_graph(lingam)
    graph.text(0.01, 0.005, REAL_CREDIT, fontsize=7)
    edges = lingam.edges()
    significant = edges[edges["significant"]]
    links = sliding.link_type("a", "b")
    summary.update({
        "status": "done", "graph_figure": _save(graph, out, "real_pto_sro_graph.png"),
        "n_cells": len(cells.table), "grid_shape": list(cells.grid_shape), "flags": cells.flag_counts(),
        "variables": list(lingam.names), "significant_edges": _distinct_links(significant["link"]),
        "window": sliding.provenance["params"]["window"], "windows": list(sliding.shape),
        "link_a_b": {LINK_TYPES[code]: int((links == code).sum()) for code in range(len(LINK_TYPES))},
    })
    return summary


# %% [markdown]
# ## Telling the instrument from the physics (SrTiO3 [110], a centrosymmetric crystal)
#
# SrTiO3 has no polarization and no coupling between its descriptors: whatever a measurement shows is the
# instrument.  Three checks, each with the tool made for it: the scan-line jitter estimated from the image (and
# what correcting it does to the scatter of Px between neighbouring cells), the mean polarization without and with
# a reference region, and the causal links before and after the instrument null.

STO_FOLDER = "atomap_sto_adf_abf"
STO_PIXEL_SIZE = 9.326  # pm/px (the folder's README: axes scale 0.009326 nm)
STO_NULL_IMAGES = 10
STO_CREDIT = ("SrTiO3 [110] ADF: Atomap test data (Nord et al., Adv. Struct. Chem. Imaging 3, 9 (2017)), GPL v3, "
              "read from ../shared/data, not redistributed")


def _distinct_links(links) -> list:
    """The link labels once each: a two-way link is listed from both of its ends (``Py <-> alpha`` and
    ``alpha <-> Py``), kept here as the first of the two in sorted order."""
    out = {}
    for link in sorted(links):
        key = tuple(sorted(link.split(" <-> "))) if " <-> " in link else link
        out.setdefault(key, link)
    return sorted(out.values())


def _px_neighbour_scatter(cells) -> float:
    """Robust spread (pm) of each cell's Px minus the mean of its 4 grid neighbours."""
    table = cells.table
    grid = {(int(i), int(j)): v for i, j, v in zip(table["i"], table["j"], table["Px"]) if np.isfinite(v)}
    residual = []
    for (i, j), v in grid.items():
        around = [grid.get(k) for k in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))]
        if all(x is not None for x in around):
            residual.append(v - np.mean(around))
    residual = np.asarray(residual)
    return float(1.4826 * np.median(np.abs(residual - np.median(residual))))


def instrument_checks(out: Path, data: Path | None) -> dict:
    """Line jitter, mean P with and without a reference, and the instrument null on the real SrTiO3 image."""
    from napari_causal_lattice.cells import mean_polarization
    from napari_causal_lattice.null import instrument_null

    folder = None if data is None else Path(data) / STO_FOLDER
    if folder is None or not folder.is_dir():
        note = f"instrument section skipped: {folder or '../shared/data'} is not present on this machine"
        print(note)
        return {"status": "skipped", "reason": note}
    image = np.load(folder / "test_ADF_cropped_image.npy")
    raw = find_columns(image, pixel_size=STO_PIXEL_SIZE, scan_correction=False)
    columns = find_columns(image, pixel_size=STO_PIXEL_SIZE)
    cells_raw, cells = build_cells(raw), build_cells(columns)
    scan = columns.scan
    left = (cells.table["j"] < cells.table["j"].median()).to_numpy()
    plain = mean_polarization(cells, image=image, columns=columns)
    referenced = mean_polarization(cells, image=image, columns=columns, reference=left)
    lingam = fit_lingam(cells, n_bootstrap=GLOBAL_BOOTSTRAP, seed=SEED, drop_deterministic=True)
    null = instrument_null(image, columns, cells, n_images=STO_NULL_IMAGES, seed=SEED, result=lingam)
    tested = null.apply(lingam)
    before = _distinct_links(lingam.edges().query("significant")["link"])
    after = _distinct_links(tested.edges().query("significant")["link"])
    fig, axes = _figure(1, 3, (13.0, 3.6))
    fig.get_layout_engine().set(rect=(0.0, 0.05, 1.0, 0.95))  # room for the credit line under the x labels
    ax = axes[0, 0]
    rows = np.arange(len(scan.shifts))
    ax.fill_between(rows, scan.shifts - scan.sigma, scan.shifts + scan.sigma, color="0.8", label="1 sigma")
    ax.plot(rows, scan.shifts, lw=0.8, label="shift of each scan line")
    ax.set_xlabel("scan line (image row)")
    ax.set_ylabel("shift along x (px)")
    ax.set_title(f"line jitter {scan.rms_px:.2f} px = {scan.rms_pm:.1f} pm rms "
                 f"({'corrected' if scan.applied else 'not corrected'})", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for k, (label, mean) in enumerate((("no reference", plain), ("left half as reference", referenced))):
        ax.errorbar([k - 0.08, k + 0.08], mean.mean, yerr=3 * mean.sigma, fmt="o", capsize=4,
                    label=None if k else "3 sigma (statistical and fit-model)")
        for x, comp, value in ((k - 0.08, "Px", mean.mean[0]), (k + 0.08, "Py", mean.mean[1])):
            ax.annotate(comp, (x, value), textcoords="offset points", xytext=(6, 0), fontsize=7)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks([0, 1], ["no reference", "left half as reference"])
    ax.set_ylabel("mean P (pm)")
    ax.set_title("mean polarization of a centrosymmetric crystal", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    ax.set_axis_off()
    text = (f"significant links, calibrated test ({len(before)}):\n  " + "\n  ".join(before or ["none"]) +
            f"\n\nafter the instrument null (K = {STO_NULL_IMAGES}) ({len(after)}):\n  " + "\n  ".join(after or ["none"]))
    ax.text(0.0, 1.0, text, va="top", fontsize=8, family="monospace")
    ax.set_title("links the measurement itself produces", fontsize=9)
    fig.text(0.01, 0.005, STO_CREDIT, fontsize=7)
    into_p = [link for link in after if "Px" in link.split(" ")[0] or "Py" in link.split(" ")[0]]
    return {
        "status": "done", "figure": _save(fig, out, "real_sto_instrument.png"),
        "jitter_px": round(float(scan.rms_px), 3), "jitter_corrected": bool(scan.applied),
        "px_scatter_pm": {"uncorrected": round(_px_neighbour_scatter(cells_raw), 3),
                          "corrected": round(_px_neighbour_scatter(cells), 3)},
        "mean_p": {"plain": [round(float(v), 3) for v in plain.mean],
                   "plain_sigma": [round(float(v), 3) for v in plain.sigma],
                   "referenced": [round(float(v), 3) for v in referenced.mean],
                   "referenced_sigma": [round(float(v), 3) for v in referenced.sigma]},
        "edges_before": before, "edges_after": after, "edges_into_p_after": into_p,
    }


# %% [markdown]
# ## Run everything


def run(out, data: Path | None = None) -> dict:
    """Make every figure in ``out`` (created if needed) and return the summary (also in summary.json).

    ``data``: the folder of shared real images; None skips the real-image section.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"fig1": figure1(out, np.random.default_rng(SEED))}
    sample, columns, cells, nearest, region = measure_sample()
    summary["fig2"] = figure2(out, sample, columns, cells, nearest, region)
    summary["fig3"] = figure3(out, sample, cells, nearest, region)
    result, summary["fig4"] = figure4(out, sample, cells, nearest, region)
    summary["fig5"] = figure5(out, sample, result, cells, region)
    summary["fig8"] = figure8(out)
    summary["fig9"] = figure9(out)
    summary["real"] = real_image(out, data)
    summary["instrument"] = instrument_checks(out, data)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="folder for the PNG figures and summary.json")
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="folder of the shared real images (default ../shared/data when present)")
    args = parser.parse_args(argv)
    summary = run(args.out, args.data)
    print(json.dumps({k: v.get("figure", v.get("reason")) for k, v in summary.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
