"""Figures of docs/real_images.md: the shared real images through columns, cells, flags and local placement.

The images are GPL-licensed (../shared/data, see each folder's README), so the figures are made on your
machine and not stored in the repository::

    python docs/real_images.py --data ../shared/data --out docs/images
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from napari_causal_lattice.cells import build_cells  # noqa: E402
from napari_causal_lattice.columns import find_columns  # noqa: E402
from napari_causal_lattice.placement import cell_regions, region_centres  # noqa: E402


def pto_sro(data: Path, out: Path) -> dict:
    """PbTiO3/SrRuO3: Py painted on each cell's own region, flagged cells marked with their reason."""
    image = np.load(data / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned_image.npy")
    cells = build_cells(find_columns(image, pixel_size=14.997))
    raster = cell_regions(cells, image.shape)
    table = cells.table
    b = table[["y", "x"]].to_numpy()
    flagged = (table["flag"] != "").to_numpy()
    fig, ax = plt.subplots(figsize=(13, 3.2))
    ax.imshow(image, cmap="gray")
    shown = ax.imshow(raster.paint(table["Py"].to_numpy()), cmap="RdBu_r", vmin=-40, vmax=40, alpha=0.55,
                      extent=_extent(raster))
    ax.plot(b[~flagged, 1], b[~flagged, 0], ".", color="k", ms=2)
    markers = {"fit": "x", "b_near_a": "s", "b_off_lattice": "^", "outlier": "o"}
    for reason, count in cells.flag_counts().items():
        sel = (table["flag"] == reason).to_numpy()
        ax.plot(b[sel, 1], b[sel, 0], markers.get(reason, "x"), mfc="none", color="yellow", ms=7,
                label=f"{reason} ({count})")
    ax.legend(loc="lower right", fontsize=7, framealpha=0.8, title="flagged", title_fontsize=7)
    fig.colorbar(shown, ax=ax, label="Py [pm]", fraction=0.02, pad=0.01)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out / "real_pto_sro_flags.png", dpi=110)
    plt.close(fig)
    distance = np.hypot(*(region_centres(raster, len(b)) - b).T) / min(cells.lattice.spacings)
    p = np.hypot(table["Px"], table["Py"])
    return {"cells": len(cells), "flags": cells.flag_counts(), "max |P| unflagged [pm]": float(p.max()),
            "placement distance median/99th/max [cells]": np.round(np.percentile(distance, [50, 99, 100]), 3)}


def sto_110(data: Path, out: Path) -> dict:
    """SrTiO3 [110]: A and B columns, cells and the (tiny) polarization arrows, 50x exaggerated."""
    image = np.load(data / "atomap_sto_adf_abf" / "test_ADF_cropped_image.npy").astype(float)
    columns = find_columns(image, pixel_size=9.326)
    cells = build_cells(columns)
    table = cells.table
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.imshow(image, cmap="gray")
    for sub, colour in (("A", "tab:orange"), ("B", "tab:cyan")):
        pos = columns.positions[columns.sublattice == sub]
        ax.plot(pos[:, 1], pos[:, 0], "o", mfc="none", color=colour, ms=5, label=f"{sub} ({len(pos)})")
    v1 = cells.lattice.v1 / np.hypot(*cells.lattice.v1)
    v2 = np.array([v1[1], -v1[0]])
    arrow = (np.outer(table["Px"], v1) + np.outer(table["Py"], v2)) / columns.pixel_size * 50
    ax.quiver(table["x"], table["y"], arrow[:, 1], arrow[:, 0], color="red", angles="xy", scale_units="xy",
              scale=1, width=0.004, label="P x 50")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(f"SrTiO3 {cells.motif.name}: a {table['a'].median():.1f} pm, b {table['b'].median():.1f} pm",
                 fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out / "real_sto_110.png", dpi=110)
    plt.close(fig)
    n = len(table)
    return {name: f"{table[name].mean():.2f} +- {np.sqrt((table[f'sigma_{name}'] ** 2).sum()) / n:.2f} pm"
            for name in ("Px", "Py")} | {"a, b [pm]": (round(table["a"].median(), 1), round(table["b"].median(), 1))}


def _extent(raster):
    """imshow extent (left, right, bottom, top) in image px of a CellRaster."""
    h, w = raster.labels.shape
    ty, tx = raster.translate
    s = raster.step
    return (tx - 0.5 * s, tx + (w - 0.5) * s, ty + (h - 0.5) * s, ty - 0.5 * s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("PTO/SRO:", pto_sro(args.data, args.out))
    print("SrTiO3 [110]:", sto_110(args.data, args.out))


if __name__ == "__main__":
    main()
