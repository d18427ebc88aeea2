"""Are the numbers bit-identical between two versions?  (issue 25: a refactor must not change a result)

Runs the whole analysis (columns, cells, global and sliding LiNGAM, PCA) on the default synthetic sample and on
the real PTO/SRO image (when ../shared/data is there) with this checkout and with another git revision, each in
its own process, and compares a SHA-256 of every result array.

    python benchmarks/same_numbers.py --against 23cf2dc     # e.g. the commit before a refactor

Prints one line per (image, array): ``same`` or ``DIFFERENT (max |diff| ...)``; exits 1 when any differs.
The other revision is checked out into a temporary git worktree, and imported from there.
"""

from __future__ import annotations

import argparse
import sys

from _revision import REPO, other_revision, run_child

#: The real image, next to the checkout or, for a git worktree one level deeper, next to its parent folder.
PTO = next((p for p in (base / "shared" / "data" / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned_image.npy"
                        for base in (REPO.parent, REPO.parent.parent)) if p.exists()),
           REPO.parent / "shared" / "data" / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned_image.npy")

# Runs inside the child process with the package of one revision first on sys.path.  Only public names that
# exist in both versions are used, so the script works across the refactor.
_CHILD = r"""
import hashlib, json, sys
import numpy as np
import napari_causal_lattice as ncl

def arrays(results):
    out = {}
    c = results.columns
    out["columns.positions"] = c.positions
    out["columns.intensity"] = c.intensity
    out["columns.sigma"] = c.sigma
    t = results.cells.table
    for name in ncl.DESCRIPTORS:
        out[f"cells.{name}"] = t[name].to_numpy(dtype=float)
    g = results.lingam
    out["lingam.adjacency"] = g.adjacency
    out["lingam.p_values"] = g.p_values
    if g.probabilities is not None:
        out["lingam.probabilities"] = g.probabilities
    s = results.sliding
    if s is not None:
        out["sliding.adjacency"] = s.adjacency
        out["sliding.p_values"] = s.p_values
        if s.probabilities is not None:
            out["sliding.probabilities"] = s.probabilities
    if results.pca is not None:
        out["pca.components"] = results.pca.components
    return out

images = {"sample": ncl.synthetic_perovskite(seed=0)}
pto = sys.argv[1]
if pto:
    images["PTO/SRO"] = (np.load(pto), 14.9968)
report = {}
for name, item in images.items():
    if isinstance(item, tuple):
        results = ncl.run_pipeline(item[0], pixel_size=item[1], n_bootstrap=20, seed=0)
    else:
        results = ncl.run_pipeline(item, n_bootstrap=20, seed=0)
    for key, value in arrays(results).items():
        a = np.asarray(value, dtype=float)
        report[f"{name} {key}"] = {"sha": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
                                   "values": a.ravel().tolist()}
print(json.dumps(report))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git revision to compare with (e.g. a commit hash)")
    args = parser.parse_args(argv)
    pto = str(PTO) if PTO.exists() else ""
    with other_revision(args.against) as src:
        theirs = run_child(src, _CHILD, pto)
    ours = run_child(REPO / "src", _CHILD, pto)
    import numpy as np

    different = 0
    for key in sorted(set(ours) | set(theirs)):
        if key not in ours or key not in theirs:
            print(f"{key}: only in {'this checkout' if key in ours else args.against}")
            different += 1
            continue
        if ours[key]["sha"] == theirs[key]["sha"]:
            print(f"{key}: same")
            continue
        a, b = np.asarray(ours[key]["values"]), np.asarray(theirs[key]["values"])
        gap = np.nanmax(np.abs(a - b)) if a.shape == b.shape else float("nan")
        print(f"{key}: DIFFERENT (max |diff| {gap:.3g})")
        different += 1
    print(f"{len(ours)} arrays compared against {args.against}: {different} differ")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
