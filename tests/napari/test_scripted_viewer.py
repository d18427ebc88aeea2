"""docs/scripted_viewer.py runs end to end under Xvfb: reader -> widgets -> API -> results -> screenshot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from napari_causal_lattice.store import results_complete

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "scripted_viewer.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("scripted_viewer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scripted_viewer_runs_every_step_and_saves_a_screenshot(make_napari_viewer, tmp_path):
    script = _load_script()
    viewer = make_napari_viewer(show=True)
    run = script.main(out=tmp_path, viewer=viewer, window=8, n_bootstrap=4, seed=1)

    image = viewer.layers["synthetic"]
    np.testing.assert_allclose(image.scale, [28.0, 28.0], rtol=1e-6)  # pixel size from the TIFF tags, in pm
    names = [layer.name for layer in viewer.layers]
    for expected in ("A columns", "B columns", "Px [pm]", "Px <- Py (window 8)", "PCA loading 1"):
        assert expected in names
    # the overlay lines up with the image: its world extent lies inside the image's (both in pm)
    overlay = viewer.layers["Px <- Py (window 8)"]
    lo, hi = overlay.extent.world
    img_lo, img_hi = image.extent.world
    assert np.all(lo >= img_lo - 1.0) and np.all(hi <= img_hi + 1.0) and np.all(hi - lo > 0.3 * (img_hi - img_lo))
    assert "P(Py <- I5) (window 8)" in names
    assert run["same"], "widgets and headless API measured different cell geometry on the same image"
    assert results_complete(run["results_dir"])
    shot = run["screenshot"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from skimage.io import imread

    pixels = imread(shot)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 400 and pixels[..., :3].std() > 10
