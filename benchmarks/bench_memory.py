"""Peak memory of ``napari-causal-lattice analyze`` on 4096 x 4096 and 8192 x 8192 images.

Run: ``python benchmarks/bench_memory.py [--sizes 4096 8192] [--bootstrap 0]``.  Each image is a synthetic
perovskite (20 px per cell, saved as float32 .npy like a 32-bit TIFF export) written by one child process; a second,
fresh child runs the command-line analysis on it, and its peak resident memory (``ru_maxrss`` of that child
alone, from ``os.wait4``) and wall time are printed next to the targets (1.5 GB for 4k, 3 GB for 8k).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_GB = {4096: 1.5, 8192: 3.0}
PITCH = 20.0

_MAKE = """
import sys
import numpy as np
from napari_causal_lattice.synthetic import synthetic_perovskite
side, pitch, path = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
n = int(side // pitch)
sample = synthetic_perovskite(seed=0, shape_cells=(n, n), pitch=pitch, rotation=0.0)
np.save(path, sample.image[:side, :side].astype(np.float32))
"""


def _peak_of(argv: list[str]) -> tuple[float, float, int]:
    """(peak RSS in GB, seconds, exit status) of one child process running ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.stderr.write(err)
    return usage.ru_maxrss / 1024**2, seconds, code  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--bootstrap", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sizes:
            path = Path(tmp) / f"img{side}.npy"
            _peak_of([sys.executable, "-c", _MAKE, str(side), str(PITCH), str(path)])
            cli = [sys.executable, "-m", "napari_causal_lattice.cli", "analyze", str(path), "--out",
                   str(Path(tmp) / f"out{side}"), "--bootstrap", str(args.bootstrap), "--pixel-size", "20"]
            gb, seconds, code = _peak_of(cli)
            rows.append((side, gb, seconds, code, TARGET_GB.get(side)))
    print(f"analyze peak RSS (child process), synthetic perovskite {PITCH:g} px per cell, "
          f"--bootstrap {args.bootstrap}")
    print(f"  {'image':>13}  {'peak GB':>8}  {'target GB':>9}  {'time s':>7}  exit")
    for side, gb, seconds, code, target in rows:
        shown = "-" if target is None else f"{target:.1f}"
        print(f"  {side:>6} x {side:<5}  {gb:8.2f}  {shown:>9}  {seconds:7.1f}  {code}")


if __name__ == "__main__":
    main()
