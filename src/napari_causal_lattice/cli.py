"""Command line: ``napari-causal-lattice analyze IMAGE... --out DIR`` and ``napari-causal-lattice demo``."""

from __future__ import annotations

import argparse
import json
import sys

from ._version import __version__
from .figures import STYLES
from .pipeline import PROJECTIONS, SPLIT_PIXELS

_EPILOG = """examples:
  napari-causal-lattice analyze scan1.tif scan2.hspy --out results
  napari-causal-lattice analyze *.tif --out results --window 16 --bootstrap 50 --workers 2
  napari-causal-lattice analyze *.dm4 --out results --scheduler tcp://headnode:8786
  napari-causal-lattice analyze huge_stitched.tif --out results --scheduler tcp://headnode:8786
  napari-causal-lattice demo --headless --out demo_results

Each image gets its own folder out/<name>/ with manifest.json (parameters, seeds, versions, input hash, each
step's outcome, checksums), arrays.npz, columns.csv, cells.csv and figures/*.png (add svg, pdf with
--figure-format png,svg,pdf); out/report.html shows them all.  Before computing, every input,
the output folder and the parameters are checked and all problems listed at once.  An image whose folder holds
intact results of the same run (same file content, parameters, version) is skipped, so rerunning an interrupted
batch resumes it; results of another run are replaced only with --overwrite.  A failed step (e.g. sliding on a
small grid) keeps the steps before it.  stdout: one summary line per image (or --json); stderr: progress and notes.
Exit status: 0 every step of every image succeeded, 1 an image or a step failed, 2 bad usage or a problem found
before computing.
"""


def _int_at_least(lowest: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"expected a number >= {lowest}, got {value}")
        return value

    return parse


def _window(text: str):
    if text == "auto":
        return text
    try:
        return _int_at_least(3)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number >= 3, got {text!r}") from None


def _pixel_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel size in pm/px, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"the pixel size must be a positive number of pm/px, got {text}")
    return value


def _add_analysis_options(analyze) -> None:
    """Options of the analysis itself and of the summary output (issue 15), in one group."""
    group = analyze.add_argument_group("analysis and output")
    group.add_argument("--min-cells", type=_int_at_least(10), default=None, metavar="N",
                       help="complete cells a sliding window needs to be fitted (>= 10); default: half the "
                       "window's cells, at least 24")
    group.add_argument("--plane", type=_int_at_least(0), default=None, metavar="K",
                       help="for files holding a stack of images: analyse image K (0 = first)")
    group.add_argument("--projection", choices=PROJECTIONS, default="auto",
                       help="crystal projection of the images; default auto (found from each image)")
    group.add_argument("--scale-unit", default=None, metavar="UNIT",
                       help="length unit of an axis scale stored without a unit (HyperSpy files), e.g. nm, A, "
                       "pm; default: assume nm and say so")
    group.add_argument("--drop-deterministic", action="store_true",
                       help="leave near-deterministic descriptors (Vol = a b sin alpha) out of the global and "
                       "sliding fits; without it they are kept and a note says so")
    group.add_argument("--json", action="store_true",
                       help="print the summary as JSON (a list, one object per image) on stdout")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="napari-causal-lattice",
        description="Map causal couplings (DirectLiNGAM) between unit-cell descriptors of atomically resolved "
        "STEM images of perovskites.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = sub.add_parser(
        "analyze",
        help="run the whole analysis headless on image files",
        description="Find atom columns, build unit cells and their 8 descriptors, fit global and sliding-window "
        "LiNGAM, run PCA of the sliding adjacency, and write results + figures per image.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyze.add_argument("images", nargs="+", metavar="IMAGE",
                         help="image files: .tif/.tiff, .npy, .hspy/.hdf5, .dm3/.dm4/.emd (needs rosettasciio)")
    analyze.add_argument("--out", required=True, metavar="DIR", help="output folder (one subfolder per image)")
    analyze.add_argument("--window", type=_window, default="auto",
                         help="sliding window side in unit cells (stride = window / 2), or 'auto' to choose it "
                         "from the cell grid; default auto")
    analyze.add_argument("--bootstrap", type=_int_at_least(0), default=100, metavar="N",
                         help="bootstrap resamples for edge probabilities (0 = none); default 100")
    analyze.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed; default 0")
    analyze.add_argument("--pixel-size", type=_pixel_size, default=None, metavar="PM",
                         help="pixel size in pm/px, overriding the files' calibration (for files without one)")
    analyze.add_argument("--workers", type=_int_at_least(1), default=None, metavar="N",
                         help="local workers: N images in parallel processes (one image: its windows in N threads)")
    analyze.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="dask.distributed scheduler address (e.g. tcp://host:8786): run the images on "
                         "that cluster; a single image, or one of at least --split-pixels pixels, is analysed "
                         "here with its sliding windows spread over the cluster (see docs/cluster.md)")
    analyze.add_argument("--split-pixels", type=_int_at_least(1), default=SPLIT_PIXELS, metavar="N",
                         help=f"with --scheduler: split images of at least N pixels over the cluster window by "
                         f"window instead of sending each whole to one worker; default {SPLIT_PIXELS} (4096 x 4096)")
    analyze.add_argument("--overwrite", action="store_true",
                         help="recompute images whose results are already complete (default: skip them), and "
                         "replace results of another run or with a damaged manifest (default: refuse)")
    _add_analysis_options(analyze)
    figures = analyze.add_argument_group("figures (figures/ of each image and report.html of the batch)")
    figures.add_argument("--figure-format", default="png", metavar="FMT[,FMT]",
                         help="comma-separated figure formats among png, svg, pdf (vector); default png")
    figures.add_argument("--dpi", type=_int_at_least(20), default=150, help="PNG resolution; default 150")
    figures.add_argument("--style", choices=tuple(STYLES), default="paper",
                         help="figure style: paper (default), slides (larger text), greyscale (prints in grey)")
    figures.add_argument("--groups", default=None, metavar="IMAGE=GROUP[;...] or FILE.csv",
                         help="group label of each image for the report's summary (e.g. the composition, as in "
                         "the paper's Fig. 7): 'scan3=x 0;scan4=x 0.2', or a CSV file with columns image,group")

    demo = sub.add_parser("demo", help="run the synthetic demo (in napari, or headless)")
    demo.add_argument("--headless", action="store_true", help="run without a window and write the results")
    demo.add_argument("--out", default=None, metavar="DIR", help="folder for the demo results")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``napari-causal-lattice`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from ._warmup import start_warmup

    start_warmup()  # compile the causal kernels while the images load and their columns are found
    if args.command == "demo":
        try:
            from ._napari.demo import run_demo

            run_demo(headless=args.headless, out=args.out)
        except (ValueError, ImportError, OSError) as exc:
            print(f"napari-causal-lattice demo: error: {exc}", file=sys.stderr)
            return 1
        return 0
    from .pipeline import analyze_images
    from .report import parse_groups, write_report

    try:
        groups = parse_groups(args.groups) if args.groups else None
        items = analyze_images(
            args.images,
            out=args.out,
            window=args.window,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            pixel_size=args.pixel_size,
            min_cells=args.min_cells,
            projection=args.projection,
            plane=args.plane,
            scale_unit=args.scale_unit,
            drop_deterministic=args.drop_deterministic,
            workers=args.workers,
            scheduler=args.scheduler,
            split_pixels=args.split_pixels,
            overwrite=args.overwrite,
            figure_formats=args.figure_format.split(","),
            dpi=args.dpi,
            style=args.style,
        )
    except ValueError as exc:  # found before computing: nothing was computed or written
        print(f"napari-causal-lattice: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ImportError) as exc:
        print(f"napari-causal-lattice: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished images are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    if groups:  # the batch report again, with the groups (analyze_images writes it without them)
        write_report(args.out, items, groups=groups, style=args.style)
    _print_summary(items, as_json=args.json)
    return 0 if all(item.ok for item in items) else 1


def _print_summary(items, *, as_json: bool) -> None:
    """One line per image on stdout (or a JSON list), the counts on stderr."""
    if as_json:
        print(json.dumps([item.as_dict() for item in items], indent=1))
    else:
        for item in items:
            detail = f" ({item.message})" if item.message and item.status != "skipped" else ""
            if item.status == "skipped" and not item.ok:
                detail = " (earlier run: " + "; ".join(
                    f"{name} failed" for name, s in item.steps.items() if s.get("status") == "failed") + ")"
            print(f"{item.image}\t{item.status}\t{item.out}{detail}")
    counts = {s: sum(item.status == s for item in items) for s in ("done", "partial", "skipped", "failed")}
    print(f"{counts['done']} done, {counts['partial']} partial, {counts['skipped']} skipped (already complete), "
          f"{counts['failed']} failed", file=sys.stderr)

if __name__ == "__main__":
    sys.exit(main())
