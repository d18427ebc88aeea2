"""Fuzzing the results store: no damaged manifest or results folder makes load_results raise anything but
the documented ResultsError (never a raw zipfile, JSON, KeyError or numpy error)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_causal_lattice.causal import fit_lingam
from napari_causal_lattice.store import ResultsError, load_results, save_results

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A genuine results folder (global LiNGAM fit with bootstrap, image info, steps)."""
    rng = np.random.default_rng(0)
    z0 = rng.uniform(-1, 1, 300)
    table = np.c_[z0, 2 * z0 + rng.uniform(-1, 1, 300), rng.uniform(-1, 1, 300)]
    lingam = fit_lingam(table, variables=["a", "b", "c"], n_bootstrap=3, seed=1)
    folder = tmp_path_factory.mktemp("fuzz") / "template"
    save_results(folder, lingam=lingam, image_info={"sha256": "00" * 32, "shape": [8, 8]},
                 steps={"lingam": {"status": "done", "reason": ""}})
    load_results(folder)  # the template itself loads
    return folder


def _copy(template: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="ncl-fuzz-")) / "r"
    shutil.copytree(template, target)
    return target


def _paths(node, prefix=()):
    """Every (path of keys/indices) inside a JSON tree, the root included."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _paths(value, prefix + (n,))


def _replace(tree, path, value, delete: bool):
    if not path:
        return value
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return tree


def _load_expecting_only_our_error(folder: Path) -> None:
    try:
        load_results(folder)
    except ResultsError:
        pass
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def test_any_edit_of_the_manifest_gives_results_or_our_error(template):
    manifest = json.loads((template / "manifest.json").read_text())
    paths = list(_paths(manifest))

    @SETTINGS
    @given(st.integers(0, len(paths) - 1), json_values, st.booleans())
    def check(index, value, delete):
        folder = _copy(template)
        tree = json.loads((folder / "manifest.json").read_text())
        path = paths[index]
        tree = _replace(tree, path, value, delete and bool(path))
        (folder / "manifest.json").write_text(json.dumps(tree))
        _load_expecting_only_our_error(folder)

    check()


def test_any_manifest_text_or_bytes_gives_our_error(template):
    @SETTINGS
    @given(json_values | st.binary(max_size=200))
    def check(content):
        folder = _copy(template)
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        (folder / "manifest.json").write_bytes(data)
        _load_expecting_only_our_error(folder)

    check()


def test_any_damage_to_the_arrays_or_files_gives_our_error(template):
    size = (template / "arrays.npz").stat().st_size

    @SETTINGS
    @given(st.sampled_from(["truncate", "flip", "replace", "delete", "folder"]), st.integers(0, size - 1),
           st.binary(min_size=1, max_size=64), st.sampled_from(["arrays.npz", "manifest.json"]))
    def check(action, position, data, name):
        folder = _copy(template)
        path = folder / name
        raw = bytearray(path.read_bytes())
        if action == "truncate":
            path.write_bytes(bytes(raw[: position % len(raw)]))
        elif action == "flip":
            raw[position % len(raw)] ^= data[0] or 1
            path.write_bytes(bytes(raw))
        elif action == "replace":
            path.write_bytes(data)
        elif action == "delete":
            path.unlink()
        else:
            path.unlink()
            path.mkdir()
        _load_expecting_only_our_error(folder)

    check()
