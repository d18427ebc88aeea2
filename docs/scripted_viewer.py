"""Scripted napari session: open a STEM image file, run every step, save the results and a screenshot.

This example drives the plugin the way a person would, but from a script. It

1. opens an image file with the plugin's reader (the pixel size from the file becomes the layer scale in pm);
2. runs the dock widgets through their public methods: Atom columns -> Descriptors -> Causal discovery ->
   Sliding LiNGAM (+ the ``Px <- Py`` overlay and the PCA loadings);
3. runs the same analysis with the headless public API (:func:`napari_causal_lattice.pipeline.run_pipeline`),
   writes the results folder and checks that the widgets and the API agree;
4. saves a screenshot of the viewer.

Run it on your own image (any format the plugin reads) or, without an argument, on a synthetic perovskite
written to a calibrated TIFF first::

    python docs/scripted_viewer.py                       # synthetic sample; napari stays open
    python docs/scripted_viewer.py scan.hspy --window 20 --out my_run --exit

Without a display, prefix the command with ``xvfb-run -a``. The test suite runs it this way
(``tests/napari/test_scripted_viewer.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

PLUGIN = "napari-causal-lattice"


def write_synthetic_tiff(path) -> Path:
    """Write a small synthetic perovskite as a float32 TIFF whose ImageJ tags hold the pixel size (nm)."""
    import tifffile

    from napari_causal_lattice import synthetic_perovskite

    sample = synthetic_perovskite(seed=0, shape_cells=(20, 20), pitch=14.0, pixel_size=28.0)
    nm_per_px = sample.pixel_size / 1000.0
    tifffile.imwrite(path, sample.image.astype(np.float32), imagej=True,
                     resolution=(1.0 / nm_per_px, 1.0 / nm_per_px), metadata={"unit": "nm"})
    return Path(path)


def main(image_path=None, *, out="scripted_viewer_output", viewer=None, window: int = 8, n_bootstrap: int = 10,
         seed: int = 0) -> dict:
    """Run the scripted session.

    Parameters
    ----------
    image_path : str or Path, optional
        Image to analyse; default a synthetic perovskite written to ``out/synthetic.tif``.
    out : str or Path
        Folder for ``results/`` (the headless API's results folder) and ``viewer.png`` (the screenshot).
    viewer : napari.Viewer, optional
        A viewer to use (the test passes its own); default a new visible viewer.
    window, n_bootstrap, seed
        Sliding window side in cells, bootstrap resamples and random seed, used by both the widgets and the API.

    Returns
    -------
    dict
        ``viewer``, ``widgets`` (display name -> widget), ``results`` (the API's Results), ``results_dir``,
        ``screenshot``.
    """
    import napari

    from napari_causal_lattice.store import load_results
    from napari_causal_lattice.pipeline import run_pipeline

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if image_path is None:
        image_path = write_synthetic_tiff(out / "synthetic.tif")
    if viewer is None:
        viewer = napari.Viewer(title="napari-causal-lattice: scripted session")

    # 1. open the file with the plugin's reader: scale = pixel size in pm/px, units pm
    [image] = viewer.open(str(image_path), plugin=PLUGIN)
    print(f"opened {image.name}: {image.data.shape} px, scale {image.scale} {[str(u) for u in image.units]}")

    # 2. the dock widgets, in pipeline order, through their public methods
    widgets = {}
    for name in ("Atom columns", "Descriptors", "Causal discovery", "Sliding LiNGAM"):
        _dock, widgets[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)

    columns = widgets["Atom columns"]
    columns.refresh_layers()
    columns.image_combo.setCurrentText(image.name)
    columns.run()
    columns.jobs.wait()

    descriptors = widgets["Descriptors"]
    descriptors.refresh_layers()
    descriptors.a_combo.setCurrentText(columns.a_layer.name)  # the layers the columns step just made
    descriptors.b_combo.setCurrentText(columns.b_layer.name)
    descriptors.image_combo.setCurrentText(image.name)
    descriptors.run()
    descriptors.jobs.wait()

    causal = widgets["Causal discovery"]
    causal.refresh_sources()
    causal.n_bootstrap.setValue(n_bootstrap)
    causal.seed.setValue(seed)
    causal.run()
    causal.jobs.wait()

    sliding = widgets["Sliding LiNGAM"]
    sliding.refresh_layers()
    sliding.image_combo.setCurrentText(image.name)  # align the maps on the opened image
    sliding.window_spin.setValue(window)
    sliding.boot_spin.setValue(n_bootstrap)
    sliding.seed_spin.setValue(seed)
    sliding.run()
    sliding.jobs.wait()  # adds the "Px <- Py (window N)" overlay
    if n_bootstrap:
        sliding.add_overlay("Py", "I5", probability=True)  # bootstrap probability of the Py <- I5 edge
    sliding.run_pca(2)  # in a worker, like every long step
    sliding.jobs.wait()

    # 3. the same analysis through the headless API, written to a results folder and read back
    results = run_pipeline(image_path, out=out / "results", window=window, n_bootstrap=n_bootstrap, seed=seed,
                           overwrite=True)
    saved = load_results(out / "results")
    geometry = ["i", "j", "a", "b", "alpha", "Vol", "Px", "Py"]
    same = saved.cells.table[geometry].equals(descriptors.cells.table[geometry])
    print(f"headless results in {out / 'results'}; widgets and API agree on the cell geometry: {same}")

    # 4. screenshot: the image with the Px <- Py overlay on top
    overlay = viewer.layers[f"Px <- Py (window {window})"]
    for layer in viewer.layers:
        layer.visible = layer is image or layer is overlay
    viewer.layers.selection.active = overlay
    viewer.window.resize(1500, 950)  # leave the canvas room beside the dock widgets
    viewer.reset_view()
    screenshot = out / "viewer.png"
    viewer.screenshot(str(screenshot), canvas_only=False)
    print(f"screenshot: {screenshot}")
    return {"viewer": viewer, "widgets": widgets, "results": results, "results_dir": out / "results",
            "screenshot": screenshot, "same": same}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", nargs="?", default=None, help="image file (default: a synthetic perovskite)")
    parser.add_argument("--out", default="scripted_viewer_output", help="output folder")
    parser.add_argument("--window", type=int, default=8, help="sliding window side in unit cells")
    parser.add_argument("--bootstrap", type=int, default=10, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--exit", action="store_true", help="close napari after the screenshot")
    args = parser.parse_args()
    main(args.image, out=args.out, window=args.window, n_bootstrap=args.bootstrap, seed=args.seed)
    if not args.exit:
        import napari

        napari.run()
