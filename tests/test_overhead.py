"""Per-call overhead of the public API: provenance read once per process, kernels compiled in the background.

No timings here (speed targets live in benchmarks/run.py): the tests count calls and use events.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
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


def _fake_child(*lines, pause=0.3):
    """A warmup child command that prints ``lines`` (``compiling`` / ``done``) with a pause before the last."""
    code = "import sys, time\n" + "".join(
        f"print({line!r}, flush=True)\n" + ("time.sleep(%r)\n" % pause if k == len(lines) - 2 else "")
        for k, line in enumerate(lines))
    return lambda job: [sys.executable, "-c", code]


def test_warmup_notes_a_real_compile_once_when_waited_for():
    warm = _warmup.Warmup(("a", "b"), command=_fake_child("compiling", "done", pause=1.0))
    assert warm.start()
    assert warm.start()  # second start: same children
    stream = io.StringIO()
    assert warm.wait(30, stream=stream)
    assert warm.wait(30, stream=stream)
    assert stream.getvalue().count(_warmup.NOTE) == 1
    assert warm.failed == [] and not warm.running and warm.seconds >= 0


def test_warmup_stays_quiet_on_cache_loads_and_without_a_wait():
    loads = _warmup.Warmup(("a",), command=_fake_child("done"))
    assert loads.start()
    stream = io.StringIO()
    assert loads.wait(30, stream=stream)
    assert stream.getvalue() == ""
    unused = _warmup.Warmup(("a",), command=_fake_child("compiling", "done", pause=30))  # e.g. analyze skips all
    assert unused.start()
    unused.stop()
    assert not unused.running


def test_warmup_reports_a_failed_child_for_the_engine_to_compile_itself():
    warm = _warmup.Warmup(("a",), command=lambda job: [sys.executable, "-c", "raise SystemExit(3)"])
    assert warm.start()
    assert warm.wait(30, stream=io.StringIO())
    assert warm.failed == ["a"]


def test_stamps_skip_the_children_once_the_kernels_are_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert _warmup.user_cache_dir() == tmp_path / "napari-causal-lattice"
    first = _warmup.Warmup(("a", "b"), command=_fake_child("done"), stamps=True)
    assert first.start() and first.wait(30) and len(first._children) == 2
    _warmup._write_stamp("a")  # what a real child does once its kernels are in the cache
    again = _warmup.Warmup(("a", "b"), command=_fake_child("done"), stamps=True)
    assert again.start() and [job for job, _, _ in again._children] == ["b"]
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "elsewhere"))  # another numba cache: not stamped
    assert not _warmup._stamp_exists("a")


def test_warmup_can_be_disabled(monkeypatch):
    monkeypatch.setenv(_warmup.ENV_DISABLE, "1")
    assert not _warmup.Warmup(("a",), command=_fake_child("done")).start()


def test_compile_note_fires_on_a_real_compile_of_the_package_only():
    from numba import njit

    fired = []
    _warmup.install_compile_note(lambda: fired.append(1))
    outside = {"__name__": "someone_else"}
    exec("def f(x):\n    return x + 1\n", outside)
    njit(outside["f"])(1)
    assert fired == []
    ours = {"__name__": "napari_causal_lattice._note_probe"}
    exec("def g(x):\n    return x + 2\n", ours)
    njit(ours["g"])(1)
    njit(ours["g"])(2)  # already compiled: no second note
    assert fired == [1]


def test_read_only_install_caches_in_a_user_folder(monkeypatch):
    """numba's locator falls back to a per-user cache folder when the package folder is not writable."""
    from numba.core import caching, config

    from napari_causal_lattice.causal import engine

    in_tree = getattr(caching, "InTreeCacheLocator", None) or caching._InTreeCacheLocator

    def read_only(self):
        raise PermissionError("read-only site-packages")

    monkeypatch.setattr(in_tree, "ensure_cache_path", read_only)
    monkeypatch.setattr(config, "CACHE_DIR", "")
    cache = caching.FunctionCache(engine._prune_kernel.py_func)
    path = cache._cache_path
    assert not path.startswith(os.path.dirname(engine.__file__))
    assert path.startswith(os.path.expanduser("~")) or "cache" in path.lower()


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
        "print(w._KERNELS.started is not None)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != _warmup.ENV_DISABLE}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "True"


_FIRST_FIT = """
import numpy as np
from napari_causal_lattice._warmup import start_warmup
print("started", start_warmup())
from napari_causal_lattice.causal import engine, fit_lingam
rng = np.random.default_rng(0)
fit_lingam(rng.uniform(-1, 1, (200, 4)) @ np.triu(np.ones((4, 4))))
kernels = (engine._order_kernel, engine._prune_kernel)
print("compiled here", sum(sum(k._cache_misses.values()) for k in kernels))
print("twins", engine._twins.cache_info().currsize)
from napari_causal_lattice._warmup import _KERNELS
print("children", len(_KERNELS._children))
"""

_STAMPED = "from napari_causal_lattice import _warmup as w; print(all(w._stamp_exists(j) for j in w.JOBS))"


@pytest.mark.slow
def test_first_fit_runs_on_the_twins_while_the_children_compile_then_loads_their_kernels(tmp_path):
    """Empty cache: the children compile, the first fit does not wait (twins, no note); the children outlive the
    process and fill the cache; then a warm run starts no child and loads the kernels, silently."""
    import time

    env = {k: v for k, v in os.environ.items() if k != _warmup.ENV_DISABLE}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "kernels")
    env["XDG_CACHE_HOME"] = str(tmp_path / "stamps")
    first = subprocess.run([sys.executable, "-c", _FIRST_FIT], capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr
    assert "started True" in first.stdout and "compiled here 0" in first.stdout and "children 2" in first.stdout
    assert "twins 1" in first.stdout and _warmup.NOTE not in first.stderr
    deadline = time.monotonic() + 900
    stamped = [sys.executable, "-c", _STAMPED]
    while subprocess.run(stamped, capture_output=True, text=True, env=env).stdout.strip() != "True":
        assert time.monotonic() < deadline, "the warmup children did not finish"
        time.sleep(1.0)
    warm = subprocess.run([sys.executable, "-c", _FIRST_FIT], capture_output=True, text=True, env=env, timeout=900)
    assert warm.returncode == 0, warm.stderr
    assert "compiled here 0" in warm.stdout and "twins 0" in warm.stdout and "children 0" in warm.stdout
    assert _warmup.NOTE not in warm.stderr
