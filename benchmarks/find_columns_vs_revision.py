"""How much slower (or faster) is ``find_columns`` than in another version?  (issue 21: at most 2x of 0.2)

    python benchmarks/find_columns_vs_revision.py --against 23cf2dc

Times the public ``find_columns`` on the default synthetic sample (48 x 48 cells, 1070 x 1070 px) with this
checkout and with the other git revision (checked out into a temporary worktree), alternating the two in fresh
processes (the first call of each process, cold, and the best of three warm calls), and prints the ratios of the
wall-clock and of the CPU time (``time.process_time``, all threads of the process: on a machine shared with other
work the wall clock mostly measures the others).
"""

from __future__ import annotations

import argparse
import sys

from _revision import REPO, other_revision, run_child

_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import napari_causal_lattice as ncl
sample = ncl.synthetic_perovskite(seed=0)
times, cpu = [], []
for _ in range(4):
    start, start_cpu = time.perf_counter(), time.process_time()
    ncl.find_columns(sample.image, pixel_size=sample.pixel_size)
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
print(json.dumps({"cold": times[0], "warm": min(times[1:]), "cold CPU": cpu[0], "warm CPU": min(cpu[1:])}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both versions")
    args = parser.parse_args(argv)
    ours, theirs = [], []
    with other_revision(args.against) as src:
        for _ in range(args.rounds):
            theirs.append(run_child(src, _CHILD))
            ours.append(run_child(REPO / "src", _CHILD))
    for kind in ("cold", "warm", "cold CPU", "warm CPU"):
        now, then = min(t[kind] for t in ours), min(t[kind] for t in theirs)
        print(f"find_columns, default sample, {kind}: {now:.2f} s now, {then:.2f} s at {args.against}: "
              f"ratio {now / then:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
