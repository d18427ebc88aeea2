"""Figures of the headless analysis, for the README: the synthetic sample and a real image (PTO/SRO supercrystal).

    python docs/analysis_figures.py --out DIR [--pto-sro FOLDER] [--images docs/images]

Runs :func:`~napari_causal_lattice.batch.analyze_images` (as ``napari-causal-lattice analyze`` does) on the
synthetic perovskite and, when ``--pto-sro`` names the folder of the TEMUL PTO/SRO image
(``Cropped_PTO-SRO_Aligned.hspy``, GPL: read in place, never copied), on that image too; the batch folder ``DIR``
gets the results, the figures in PNG, SVG and PDF, a ``report.html`` per sample and one over both.  With ``--images``, each PNG is also
written there as a 256-colour copy named ``analysis_<sample>_<figure>.png`` (the figures are ours; the data
stays where it is).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from napari_causal_lattice.batch import analyze_images
from napari_causal_lattice.report import write_report
from napari_causal_lattice.synthetic import synthetic_perovskite

#: Window (cells) per sample: 8 x 8 windows on the 48 x 48-cell synthetic grid; 8 on the 9-row PTO/SRO grid.
WINDOWS = {"synthetic": 10, "pto_sro": 8}
BOOTSTRAP = 30
SEED = 0
PTO_SRO_FILE = "Cropped_PTO-SRO_Aligned.hspy"


def _small_png(source: Path, target: Path) -> None:
    """A 256-colour copy of a PNG figure (a few hundred kB instead of a few MB)."""
    with Image.open(source) as png:
        small = png.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    small.save(buffer, format="png", optimize=True)
    target.write_bytes(buffer.getvalue())


def run(out: Path, *, pto_sro: Path | None, images: Path | None) -> list:
    """Analyse the samples into ``out`` and return the batch items."""
    out.mkdir(parents=True, exist_ok=True)
    synthetic = out / "synthetic.npy"
    np.save(synthetic, synthetic_perovskite(seed=SEED).image)
    batches = [("synthetic", synthetic, 19.8)]
    if pto_sro is not None:
        batches.append(("pto_sro", pto_sro / PTO_SRO_FILE, None))
    items = []
    for name, path, pixel_size in batches:
        [item] = analyze_images([path], out=out / name, window=WINDOWS[name], n_bootstrap=BOOTSTRAP, seed=SEED,
                                pixel_size=pixel_size, overwrite=True, figure_formats=("png", "svg", "pdf"), dpi=110)
        if item.status != "done":
            raise RuntimeError(f"{name}: {item.message}")
        items.append(item)
        if images is not None:
            images.mkdir(parents=True, exist_ok=True)
            for png in sorted(Path(item.out).glob("figures/*.png")):
                _small_png(png, images / f"analysis_{name}_{png.name}")
    groups = {Path(item.image).name: name for (name, _, _), item in zip(batches, items)}
    write_report(out, items, groups=groups)  # one report over both samples: its summary compares them
    if images is not None:
        _small_png(out / "report_files" / "summary.png", images / "analysis_summary.png")
    return items


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="batch folder (results, figures, report.html)")
    parser.add_argument("--pto-sro", type=Path, default=None, help="folder holding the TEMUL PTO/SRO .hspy image")
    parser.add_argument("--images", type=Path, default=None, help="also write small PNG copies here (docs/images)")
    args = parser.parse_args(argv)
    for item in run(args.out, pto_sro=args.pto_sro, images=args.images):
        print(f"{item.image}: {item.status} in {item.seconds:.0f} s -> {item.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
