"""Figures across images and groups: a coupling per group (Figs. 5/7), group adjacency matrices side by side
(Fig. 3), and the batch report's couplings per image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .style import DOUBLE_COLUMN, MIN_FONT, SINGLE_COLUMN, get_style

if TYPE_CHECKING:
    from ..compare import ComparisonResult


def plot_coefficient_vs_group(ax, result: ComparisonResult, effect: str, cause: str, *, show_images: bool = True,
                              color="C0"):
    """Fig. 5/7 style: coefficient ``effect <- cause`` per group with its interval (and each image's).

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes (no pyplot state).
    result : ComparisonResult
    effect, cause : str
        The coupling ``effect <- cause``.
    show_images : bool
        Also draw each image's coefficient and interval, offset slightly to the right of its group.
    color : str
        Matplotlib colour.

    Returns
    -------
    matplotlib.axes.Axes
    """
    group_rows = result.edge(effect, cause, level="group")
    positions = {g: k for k, g in enumerate(result.group_names)}
    x = np.array([positions[g] for g in group_rows["group"]], dtype=float)
    coef = group_rows["coefficient"]
    yerr = np.vstack([coef - group_rows["ci_low"], group_rows["ci_high"] - coef])
    ax.errorbar(x, group_rows["coefficient"], yerr=yerr, fmt="s-", color=color, capsize=4, ms=6,
                label=f"group mean ({result.confidence:.0%} CI)")
    if show_images:
        img = result.edge(effect, cause, level="image")
        counts: dict = {}
        xs = []
        for g in img["group"]:
            counts[g] = counts.get(g, 0) + 1
            xs.append(positions[g] + 0.08 * counts[g])
        yerr_i = np.vstack([img["coefficient"] - img["ci_low"], img["ci_high"] - img["coefficient"]])
        ax.errorbar(xs, img["coefficient"], yerr=yerr_i, fmt="o", color=color, alpha=0.45, ms=3, capsize=2,
                    label="images")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xticks(range(len(positions)), list(positions))
    ax.set_xlabel("group")
    ax.set_ylabel(f"{effect} <- {cause} [{result.edge_units(effect, cause)}]")
    ax.legend(fontsize="small")
    return ax


def plot_group_adjacency(axes, result: ComparisonResult, *, vmax: float | None = None, symlog: bool | None = None):
    """Fig. 3 style: the mean adjacency matrix of each group side by side, on one shared colour scale.

    Parameters
    ----------
    axes : sequence of matplotlib.axes.Axes
        One Axes per group, in the order of ``result.group_names``.
    result : ComparisonResult
    vmax : float, optional
        Colour limit (symmetric around 0); default the largest |coefficient| of all groups.
    symlog : bool, optional
        Symmetric-log colour scale (linear below ``vmax / 1000``), so couplings of very different units
        (e.g. Vol <- a in pm^2/pm next to Px <- Py in pm/pm) stay visible; default on unless standardized.

    Returns
    -------
    matplotlib.image.AxesImage
        The last image drawn (for a colour bar).
    """
    axes = list(np.ravel(axes))
    groups = result.group_names
    if len(axes) != len(groups):
        raise ValueError(f"plot_group_adjacency needs one Axes per group ({len(groups)}), got {len(axes)}")
    from matplotlib.colors import Normalize, SymLogNorm

    if symlog is None:
        symlog = not result.standardized
    mats = [result.group_adjacency(g) for g in groups]
    if vmax is None:
        vmax = max(float(np.max(np.abs(m))) for m in mats) or 1.0
    names = list(result.names)
    norm = SymLogNorm(linthresh=vmax * 1e-3, vmin=-vmax, vmax=vmax) if symlog else Normalize(-vmax, vmax)
    image = None
    for ax, group, mat in zip(axes, groups, mats):
        image = ax.imshow(mat, cmap="RdBu_r", norm=norm)
        ax.set_title(str(group), fontsize="small")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize="x-small")
        ax.set_yticks(range(len(names)), names, fontsize="x-small")
        ax.set_xlabel("cause", fontsize="x-small")
    axes[0].set_ylabel("effect", fontsize="x-small")
    return image


def plot_summary(table, *, style="paper"):
    """Coefficient of each chosen coupling per image, grouped, with 95 % bootstrap intervals (paper Fig. 7).

    Parameters
    ----------
    table : DataFrame
        From :func:`napari_causal_lattice.report.summary_table`.
    style : str or FigureStyle

    Returns
    -------
    matplotlib.figure.Figure
        One panel per edge; x = images ordered by group, y = coefficient in physical units; filled markers:
        the edge passes the confidence, hollow: it does not.  Groups differ in colour and marker shape
        (readable in grey).
    """
    from matplotlib.figure import Figure

    edges = list(dict.fromkeys(table["edge"]))
    groups = list(dict.fromkeys(table["group"]))
    images = list(dict.fromkeys(table.assign(_g=table["group"].map(groups.index)).sort_values("_g", kind="stable")
                                ["image"]))
    style = get_style(style)
    font = max(MIN_FONT, style.font_size)
    colours = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000")
    markers = "osD^vP*"
    ncols = min(len(edges), 3)
    nrows = -(-len(edges) // 3)
    width = SINGLE_COLUMN if ncols == 1 else DOUBLE_COLUMN
    fig = Figure(figsize=(width, 2.3 * nrows + 0.7), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(edges):]:
        ax.set_axis_off()
    for ax, edge in zip(axes, edges):
        rows = table[table["edge"] == edge]
        for g, group in enumerate(groups):
            sub = rows[rows["group"] == group]
            x = np.array([images.index(n) for n in sub["image"]], dtype=float)
            y = sub["coefficient"].to_numpy()
            err = np.vstack([y - sub["ci_low"].to_numpy(), sub["ci_high"].to_numpy() - y]).clip(min=0)
            colour, marker = colours[g % len(colours)], markers[g % len(markers)]
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor=colour, capsize=3, lw=1)
            shown = sub["shown"].to_numpy()
            ax.plot(x[shown], y[shown], marker, color=colour, ms=6, ls="none", label=str(group))
            ax.plot(x[~shown], y[~shown], marker, mfc="white", color=colour, ms=6, ls="none")
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set_xticks(range(len(images)), images, rotation=30, ha="right", fontsize=font)
        ax.tick_params(labelsize=font)
        ax.set_xlim(-0.6, len(images) - 0.4)
        unit = rows["unit"].iloc[0] if len(rows) else ""
        ax.set_ylabel(f"coefficient ({unit})" if unit else "coefficient", fontsize=font)
        ax.set_title(edge, fontsize=font)
    if len(groups) > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), title="group", loc="outside lower center",
                   ncols=min(len(groups), 6), fontsize=font, title_fontsize=font)
    fig.suptitle("Physical couplings per image, 95 % bootstrap intervals\n(filled: passes the confidence; "
                 "hollow: does not)", fontsize=font)
    return fig
