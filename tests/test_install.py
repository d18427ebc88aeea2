"""What a core install declares and carries (issue 24): imports are declared, lingam is an extra."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

_ROOT = Path(__file__).resolve().parents[1]
_SRC = _ROOT / "src" / "napari_causal_lattice"
_PROJECT = tomllib.loads((_ROOT / "pyproject.toml").read_text())["project"]
#: import name -> distribution name, where they differ
_DIST = {"skimage": "scikit-image", "sklearn": "scikit-learn", "rsciio": "rosettasciio", "distributed": "dask"}


def _names(requirements) -> set[str]:
    return {re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def _imports(files) -> set[str]:
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "napari_causal_lattice"}


def test_every_third_party_import_is_declared():
    core = [p for p in _SRC.rglob("*.py") if "_napari" not in p.parts]
    core_deps = _names(_PROJECT["dependencies"])
    extras = {k: _names(v) for k, v in _PROJECT["optional-dependencies"].items()}
    undeclared = {m for m in _imports(core) if _DIST.get(m, m) not in core_deps
                  and not any(_DIST.get(m, m) in e for e in extras.values())}
    assert not undeclared, f"imported by the core but not declared: {undeclared}"
    gui = _imports(_SRC.joinpath("_napari").rglob("*.py"))
    assert {_DIST.get(m, m) for m in gui} <= core_deps | extras["napari"], gui
    for name in ("llvmlite", "rosettasciio"):
        assert name in core_deps


def test_core_install_carries_no_lingam_nor_unused_packages():
    core = _names(_PROJECT["dependencies"])
    assert not core & {"lingam", "statsmodels", "pygam", "semopy", "scikit-learn", "superqt"}
    extras = {k: _names(v) for k, v in _PROJECT["optional-dependencies"].items()}
    assert "lingam" in extras["lingam"] and "lingam" in extras["all"] and "lingam" in extras["test"]


def test_lingam_method_without_lingam_names_the_extra(monkeypatch):
    from napari_causal_lattice.causal import fit_lingam

    monkeypatch.setitem(sys.modules, "lingam", None)  # as if it were not installed
    X = np.random.default_rng(0).laplace(size=(200, 3))
    with pytest.raises(ImportError, match=re.escape('pip install "napari-causal-lattice[lingam]"')):
        fit_lingam(X, names=["a", "b", "c"], method="lingam")
