"""How widely does one image of a given size read the neighbour sigma ratio when the sigmas are honest?

    python benchmarks/sigma_spread.py --seeds 32 --shape 12 8 --projection [110] --jitter 0

Draws the non-polar synthetic (probe tails, +-30 % column intensities) at the given cell grid for many seeds,
finds its columns and prints, per descriptor, the mean, standard deviation, 2.5-97.5 % quantiles and range of
:func:`~napari_causal_lattice.descriptors.neighbour_sigma_ratio`, how often each (and all four) fall within
0.8-1.25, and the same for the geometric mean of the four.  The default grid is the SrTiO3 [110] image's
(96 cells): the numbers behind ``ONE_IMAGE_RANGE`` in ``tests/test_sigma_calibration.py``.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from napari_causal_lattice.cells import build_cells
from napari_causal_lattice.columns import find_columns
from napari_causal_lattice.descriptors import neighbour_sigma_ratio
from napari_causal_lattice.synthetic import NON_POLAR, synthetic_perovskite

NAMES = ("a", "b", "Px", "Py")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--shape", type=int, nargs=2, default=(12, 8), metavar=("ROWS", "COLS"))
    parser.add_argument("--projection", default="[110]", choices=("[001]", "[110]"))
    parser.add_argument("--jitter", type=float, default=0.0, help="line jitter, px rms")
    args = parser.parse_args(argv)
    ratios = []
    for seed in range(args.seeds):
        sample = synthetic_perovskite(seed=seed, shape_cells=tuple(args.shape), projection=args.projection,
                                      line_jitter=args.jitter, probe_tail=0.2, a_amplitude_spread=0.3,
                                      b_amplitude_spread=0.3, a_jitter=0.0, **NON_POLAR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cols = find_columns(sample.image, pixel_size=sample.pixel_size)
            ratio = neighbour_sigma_ratio(build_cells(cols), cols, names=NAMES)
        ratios.append([ratio[name] for name in NAMES])
    ratios = np.asarray(ratios)
    inside = (ratios >= 0.8) & (ratios <= 1.25)
    print(f"{args.seeds} seeds, {args.shape[0]} x {args.shape[1]} cells {args.projection}, jitter {args.jitter} px")
    rows = list(zip(NAMES, ratios.T, inside.T))
    geometric = np.exp(np.log(ratios).mean(axis=1))
    rows.append(("geo-mean", geometric, (geometric >= 0.8) & (geometric <= 1.25)))
    for name, values, ok in rows:
        low, high = np.quantile(values, [0.025, 0.975])
        print(f"{name:>8}: mean {values.mean():.2f}  sd {values.std(ddof=1):.2f}  2.5-97.5 % {low:.2f}-{high:.2f}"
              f"  range {values.min():.2f}-{values.max():.2f}  within 0.8-1.25: {int(ok.sum())}/{len(ok)}")
    print(f"all four within 0.8-1.25: {int(inside.all(axis=1).sum())}/{len(inside)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
