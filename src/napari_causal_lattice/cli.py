"""Command line: ``napari-causal-lattice analyze IMAGE... --out DIR`` and ``napari-causal-lattice demo``."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys

from ._version import __version__
from .figures import STYLES
from .options import AnalysisOptions, add_cli_arguments, cli_values
from .batch import SPLIT_PIXELS

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
Exit status (every subcommand): 0 every step of every image succeeded, 1 an image or a step failed, 2 bad
usage or a problem found before computing (with --json also printed on stdout as {"status": "refused",
"error": ..., "problems": [...], "exit_status": 2}).  A results folder in use by another run is refused.
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


def _add_analysis_options(analyze) -> None:
    """The analysis options, one flag per option of :class:`~napari_causal_lattice.options.AnalysisOptions`
    (generated: the names, help texts, defaults and checks come from the options objects), and the summary
    output."""
    group = analyze.add_argument_group(
        "analysis options (the same names, defaults and checks as the Python API and the docks)")
    add_cli_arguments(group, AnalysisOptions.flat_specs())
    output = analyze.add_argument_group("output")
    output.add_argument("--json", action="store_true",
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
                         help="image files: .tif/.tiff, .npy, .hspy/.hdf5, .dm3/.dm4, .emd, .ser")
    analyze.add_argument("--out", required=True, metavar="DIR", help="output folder (one subfolder per image)")
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


#: Exit statuses of every subcommand.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv=None) -> int:
    """Entry point of the ``napari-causal-lattice`` console script; returns the exit status.

    Every subcommand exits 0 on success, 1 when an image or a step failed, and 2 for bad usage or a problem
    found before computing (argparse's own usage errors raise ``SystemExit(2)``).  With ``--json`` a usage or
    pre-check failure is also reported as a JSON object on stdout.
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser()
    args = _parse(parser, argv, as_json="--json" in argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "demo":
        return _demo(args)
    from ._warmup import start_warmup

    start_warmup()  # compile the causal kernels while the images load and their columns are found
    from .batch import analyze_images
    from .report import parse_groups, write_report

    try:
        groups = parse_groups(args.groups) if args.groups else None
        items = analyze_images(
            args.images,
            out=args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            split_pixels=args.split_pixels,
            overwrite=args.overwrite,
            figure_formats=args.figure_format.split(","),
            dpi=args.dpi,
            style=args.style,
            **cli_values(args, AnalysisOptions.flat_specs()),
        )
    except (ValueError, ImportError) as exc:  # found before computing: nothing was computed or written
        return _refused(str(exc), as_json=args.json)
    except OSError as exc:
        return _refused(str(exc), as_json=args.json, status=EXIT_FAILED)
    except KeyboardInterrupt:
        print("\ninterrupted: finished images are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    if groups:  # the batch report again, with the groups (analyze_images writes it without them)
        write_report(args.out, items, groups=groups, style=args.style)
    _print_summary(items, as_json=args.json)
    return EXIT_OK if all(item.ok for item in items) else EXIT_FAILED


def _parse(parser, argv: list, *, as_json: bool):
    """``parser.parse_args(argv)``; a usage error also goes to stdout as JSON when ``--json`` was given."""
    if not as_json:
        return parser.parse_args(argv)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return parser.parse_args(argv)
    except SystemExit as exc:
        sys.stderr.write(captured.getvalue())
        if exc.code not in (0, None):
            lines = [line for line in captured.getvalue().splitlines() if line.strip()]
            message = lines[-1].split(": error: ", 1)[-1] if lines else "bad usage"
            print(json.dumps({"status": "usage error", "error": message, "exit_status": EXIT_USAGE}, indent=1))
        raise


def _refused(message: str, *, as_json: bool, status: int = EXIT_USAGE) -> int:
    """Report a problem found before (or instead of) computing: stderr, and a JSON object with ``--json``."""
    print(f"napari-causal-lattice: error: {message}", file=sys.stderr)
    if as_json:
        problems = [line[4:] for line in message.splitlines() if line.startswith("  - ")] or [message]
        print(json.dumps({"status": "refused", "error": message, "problems": problems, "exit_status": status},
                         indent=1))
    return status


def _no_display() -> bool:
    """True on Linux without an X or Wayland display (Qt would abort), unless a Qt platform was chosen."""
    return (sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"))


def _demo(args) -> int:
    """``demo``: 0 done, 1 a step of the demo failed, 2 bad usage or nothing to show it on."""
    if args.headless and args.out is None:
        print("napari-causal-lattice demo: error: demo --headless needs --out DIR to write the results and the "
              "screenshot into", file=sys.stderr)
        return EXIT_USAGE
    if _no_display():
        print("napari-causal-lattice demo: error: no display: napari needs one to render the viewer, even with "
              "--headless. Run it under a virtual display, e.g.\n"
              "    xvfb-run -a napari-causal-lattice demo --headless --out DIR\n"
              "or analyse images without any window: napari-causal-lattice analyze IMAGE --out DIR",
              file=sys.stderr)
        return EXIT_USAGE
    from ._warmup import start_warmup

    start_warmup()
    try:
        from ._napari.demo import run_demo

        run_demo(headless=args.headless, out=args.out)
    except ModuleNotFoundError as exc:  # napari or its Qt packages are not installed
        print(f"napari-causal-lattice demo: error: the demo needs napari ({exc}); install it with\n"
              '    pip install "napari-causal-lattice[napari]"', file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"napari-causal-lattice demo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ImportError, OSError, RuntimeError) as exc:
        print(f"napari-causal-lattice demo: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _print_summary(items, *, as_json: bool) -> None:
    """One line per image on stdout (or a JSON list), the counts on stderr.

    A line is ``image<TAB>status<TAB>folder (N columns, M cells; message)``.
    """
    if as_json:
        print(json.dumps([item.as_dict() for item in items], indent=1))
    else:
        for item in items:
            counts = item.counts
            parts = [f"{counts['columns']} columns, {counts['cells']} cells"] if counts["columns"] is not None else []
            if item.status == "skipped" and not item.ok:
                parts.append("earlier run: " + "; ".join(
                    f"{name} failed" for name, s in item.steps.items() if s.get("status") == "failed"))
            elif item.message and item.status != "skipped":
                parts.append(item.message)
            detail = f" ({'; '.join(parts)})" if parts else ""
            print(f"{item.image}\t{item.status}\t{item.out}{detail}")
    counts = {s: sum(item.status == s for item in items) for s in ("done", "partial", "skipped", "failed")}
    columns = sum(item.counts["columns"] or 0 for item in items)
    cells = sum(item.counts["cells"] or 0 for item in items)
    print(f"{counts['done']} done, {counts['partial']} partial, {counts['skipped']} skipped (already complete), "
          f"{counts['failed']} failed; {columns} atom columns, {cells} unit cells", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
