"""How much slower (or faster) is ``find_columns`` than in another version?  (issue 21: at most 2x of 0.2)

    python benchmarks/find_columns_vs_revision.py --against 23cf2dc

Times the public ``find_columns`` on the default synthetic sample (48 x 48 cells, 1070 x 1070 px) with this
checkout and with the other git revision (checked out into a temporary worktree), alternating the two in fresh
processes (the first call of each process, cold, and the best of three warm calls), and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import napari_causal_lattice as ncl
sample = ncl.synthetic_perovskite(seed=0)
times = []
for _ in range(4):
    start = time.perf_counter()
    ncl.find_columns(sample.image, pixel_size=sample.pixel_size)
    times.append(time.perf_counter() - start)
print(json.dumps({"cold": times[0], "warm": min(times[1:])}))
"""


def _time(src: Path) -> dict:
    code = f"import sys; sys.path.insert(0, {str(src)!r}); exec(sys.stdin.read())"
    done = subprocess.run([sys.executable, "-c", code], input=_CHILD, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the run in {src} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both versions")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(other), args.against],
                       check=True, capture_output=True)
        try:
            ours, theirs = [], []
            for _ in range(args.rounds):
                theirs.append(_time(other / "src"))
                ours.append(_time(REPO / "src"))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(other)], check=False,
                           capture_output=True)
    for kind in ("cold", "warm"):
        now, then = min(t[kind] for t in ours), min(t[kind] for t in theirs)
        print(f"find_columns, default sample, {kind}: {now:.2f} s now, {then:.2f} s at {args.against}: "
              f"ratio {now / then:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
