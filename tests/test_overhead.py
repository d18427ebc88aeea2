"""Per-call overhead of the public API: provenance read once per process, kernels compiled in the background.

No timings here (speed targets live in benchmarks/run.py): the tests count calls and use events.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from importlib import metadata

import numpy as np
import pytest

from napari_causal_lattice import _warmup, provenance
from napari_causal_lattice.causal import fit_lingam


def _table(seed=0, n=200):
    rng = np.random.default_rng(seed)
    z0 = rng.uniform(-1, 1, n)
    z1 = 2 * z0 + rng.uniform(-1, 1, n)
    z2 = -z1 + rng.uniform(-1, 1, n)
    return np.c_[z0, z1, z2]


@pytest.fixture
def metadata_calls(monkeypatch):
    """Count every read of package metadata (importlib.metadata.version)."""
    calls = []
    real = metadata.version

    def counting(name):
        calls.append(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", counting)
    return calls


def test_package_versions_are_read_once_per_process(metadata_calls):
    provenance._read_versions.cache_clear()
    results = [fit_lingam(_table(seed)) for seed in range(4)]
    assert sorted(metadata_calls) == sorted(provenance._TRACKED)
    assert all(r.provenance["versions"] == results[0].provenance["versions"] for r in results)


def test_fit_lingam_overhead_path_reads_no_package_metadata(metadata_calls):
    provenance.package_versions()  # the one read of this process (maybe done already)
    metadata_calls.clear()
    result = fit_lingam(_table(), n_bootstrap=5, seed=0)
    fit_lingam(_table(1), prior_knowledge=None, standardize=False)
    assert metadata_calls == []
    assert result.provenance["versions"]["numpy"] == np.__version__


def test_package_versions_returns_a_private_copy():
    versions = provenance.package_versions()
    versions["numpy"] = "edited"
    assert provenance.package_versions()["numpy"] == np.__version__


class _Blocking:
    """A stand-in compilation that runs until released."""

    def __init__(self):
        self.release = threading.Event()
        self.runs = 0

    def __call__(self):
        self.runs += 1
        self.release.wait(10)


def test_warmup_runs_once_and_announces_once_while_compiling():
    work = _Blocking()
    warm = _warmup.Warmup(work, expected_seconds=15)
    stream = io.StringIO()
    assert warm.start(notice_after=0.0, stream=stream)
    assert warm.start(notice_after=0.0, stream=stream)  # second start: same thread, no second note
    for _ in range(200):  # the note comes from a timer thread: poll for it while the work is blocked
        if stream.getvalue():
            break
        time.sleep(0.05)
    work.release.set()
    assert warm.wait(10)
    assert work.runs == 1
    note = stream.getvalue()
    assert note.count("compiling the causal kernels, once, about 15 s") == 1
    assert warm.error is None and warm.seconds >= 0


def test_warmup_stays_quiet_when_the_kernels_load_quickly():
    warm = _warmup.Warmup(lambda: None)
    stream = io.StringIO()
    assert warm.start(notice_after=5.0, stream=stream)
    assert warm.wait(10)
    assert stream.getvalue() == ""


def test_warmup_keeps_a_compile_error_for_the_real_call():
    def broken():
        raise RuntimeError("no compiler")

    warm = _warmup.Warmup(broken)
    assert warm.start(announce=False)
    assert warm.wait(10)
    assert isinstance(warm.error, RuntimeError)


def test_warmup_can_be_disabled(monkeypatch):
    monkeypatch.setenv(_warmup.ENV_DISABLE, "1")
    work = _Blocking()
    assert not _warmup.Warmup(work).start(announce=False)
    assert work.runs == 0


def test_cli_starts_the_warmup(monkeypatch, tmp_path):
    from napari_causal_lattice import cli

    started = []
    monkeypatch.setattr(_warmup, "start_warmup", lambda **kw: started.append(kw) or True)
    assert cli.main(["analyze", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "out")]) == 2  # found before computing
    assert len(started) == 1


def test_warmup_import_is_light():
    code = "import sys, napari_causal_lattice._warmup; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plugin_import_starts_the_warmup_thread():
    code = (
        "import napari_causal_lattice._napari, napari_causal_lattice._warmup as w\n"
        "print(w._KERNELS._thread is not None)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != _warmup.ENV_DISABLE}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "True"
