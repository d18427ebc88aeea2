"""Packaging: the import stays light (no Qt, no napari) and the manifest validates."""

import subprocess
import sys
from pathlib import Path

import pytest

import napari_causal_lattice


def test_import_does_not_pull_qt_napari_or_the_numba_kernels():
    code = (
        "import sys, napari_causal_lattice\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'lingam', 'matplotlib', 'numba', 'llvmlite'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_manifest_validates():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-causal-lattice")
    assert manifest.name == "napari-causal-lattice"
    contributions = manifest.contributions
    assert {w.display_name for w in contributions.widgets} >= {
        "Atom columns",
        "Descriptors",
        "Causal discovery",
        "Sliding LiNGAM",
    }
    for command in contributions.commands:
        module, _, attr = command.python_name.partition(":")
        imported = __import__(module, fromlist=[attr])
        assert hasattr(imported, attr), f"{command.id} points to missing {command.python_name}"


def test_manifest_is_the_repo_copy():
    packaged = Path(napari_causal_lattice.__file__).with_name("napari.yaml").read_text()
    top = Path(__file__).resolve().parents[1] / "napari.yaml"
    if top.exists():
        assert packaged == top.read_text()


def test_version_is_exposed():
    assert napari_causal_lattice.__version__.count(".") >= 2


def test_npe2_validate_cli():
    pytest.importorskip("npe2")
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-causal-lattice"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout
