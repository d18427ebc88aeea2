"""Run a piece of code with this checkout and with another git revision of the package (for the scripts that
compare versions: same_numbers.py, find_columns_vs_revision.py)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def other_revision(revision: str):
    """The ``src`` folder of ``revision``, checked out into a temporary git worktree (removed afterwards)."""
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(other), revision], check=True,
                       capture_output=True)
        try:
            yield other / "src"
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(other)], check=False,
                           capture_output=True)


def run_child(src: Path, code: str, *args: str):
    """Run ``code`` in a fresh Python with ``src`` first on the path; the JSON of its last stdout line."""
    prefix = f"import sys; sys.path.insert(0, {str(src)!r}); exec(sys.stdin.read())"
    done = subprocess.run([sys.executable, "-c", prefix, *args], input=code, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"the run in {src} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
