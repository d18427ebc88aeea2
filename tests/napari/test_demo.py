"""`napari-causal-lattice demo --headless --out DIR`: every step through the widgets, results and screenshot."""

import json

import numpy as np
import pytest
from PIL import Image

from napari_causal_lattice._napari.demo import run_demo


@pytest.mark.slow
def test_headless_demo_writes_results_and_screenshot(tmp_path, qapp):
    out = run_demo(headless=True, out=str(tmp_path / "demo"))
    manifest = json.loads((out / "results" / "manifest.json").read_text())
    assert set(manifest["contents"]) == {"columns", "cells", "lingam", "sliding", "pca"}
    assert manifest["image"]["shape"] == [1070, 1070] and manifest["image"]["pixel_size"] == 19.8
    from napari_causal_lattice.store import load_results

    back = load_results(out / "results")
    assert back.cells is not None and back.sliding is not None and back.pca is not None
    assert back.sliding.window == 12
    shot = np.asarray(Image.open(out / "viewer.png"))
    assert shot.shape[0] > 500 and shot.shape[1] > 800
    # the canvas was rendered (not a black frame): plenty of distinct colours
    assert len(np.unique(shot.reshape(-1, shot.shape[-1])[::97], axis=0)) > 50


def test_headless_demo_needs_an_output_folder(qapp):
    with pytest.raises(ValueError, match="--out"):
        run_demo(headless=True, out=None)
