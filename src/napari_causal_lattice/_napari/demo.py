"""The demo: the synthetic perovskite sample taken through every step by the real dock widgets.

``napari-causal-lattice demo`` opens napari, loads the embedded synthetic sample, docks every widget and presses
their buttons in order (columns -> descriptors -> causal discovery -> sliding LiNGAM -> overlay -> PCA -> wall
profile), so the user lands on a finished analysis they can keep working on.  ``--headless --out DIR`` does the
same without showing a window and writes the results folder and a screenshot of the viewer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

PLUGIN = "napari-causal-lattice"
WIDGETS = ("Atom columns", "Descriptors", "Causal discovery", "Sliding LiNGAM", "Theory (LGD)", "Compare images")

#: Demo settings: small enough to finish in well under a minute on a laptop.
DEMO_SETTINGS = {"window": 12, "n_bootstrap": 20, "seed": 0, "pca_components": 4}


def _log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_steps(viewer, *, settings: dict | None = None) -> dict:
    """Run the whole pipeline on the viewer's synthetic sample through the docked widgets.

    Parameters
    ----------
    viewer : napari.Viewer
        A viewer; the synthetic sample is opened in it if no image layer is present.
    settings : dict, optional
        Overrides of :data:`DEMO_SETTINGS` (window in cells, bootstrap count, seed, PCA components).

    Returns
    -------
    dict
        Widget display name -> widget instance, after every step finished.
    """
    cfg = {**DEMO_SETTINGS, **(settings or {})}
    if "Synthetic perovskite" not in viewer.layers:
        viewer.open_sample(PLUGIN, "synthetic_perovskite")
    image = viewer.layers["Synthetic perovskite"]
    widgets, docks = {}, {}
    for name in WIDGETS:
        docks[name], widgets[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
    _find_cells(widgets, image)
    _causal_step(widgets["Causal discovery"], cfg)
    _sliding_step(widgets["Sliding LiNGAM"], image, cfg)
    _wall_profile_step(viewer, widgets["Theory (LGD)"], image, cfg)
    overlay = widgets["Sliding LiNGAM"].add_overlay("Px", "Py", probability=False)  # the newest map: others hidden
    keep = {"Synthetic perovskite", overlay.name, "Domain wall", "A columns", "B columns"}
    for layer in viewer.layers:
        layer.visible = layer.name in keep
    viewer.layers.selection.active = viewer.layers["Synthetic perovskite"]
    docks["Sliding LiNGAM"].raise_()
    viewer.reset_view()
    return widgets


def _find_cells(widgets: dict, image) -> None:
    """The Atom columns and Descriptors docks on ``image``: columns, then the unit cells."""
    _log("finding atom columns")
    columns = widgets["Atom columns"]
    columns.image_combo.setCurrentText(image.name)
    columns.run()
    columns.jobs.wait()

    _log("measuring unit-cell descriptors")
    descriptors = widgets["Descriptors"]
    descriptors.refresh_layers()
    descriptors.image_combo.setCurrentText(image.name)
    descriptors.a_combo.setCurrentText("A columns")
    descriptors.b_combo.setCurrentText("B columns")
    descriptors.run()
    descriptors.jobs.wait()


def _causal_step(causal, cfg: dict) -> None:
    """The Causal discovery dock: the global fit with the demo's bootstraps and seed."""
    _log(f"global DirectLiNGAM with {cfg['n_bootstrap']} bootstraps")
    causal.refresh_sources()
    causal.n_bootstrap.setValue(cfg["n_bootstrap"])
    causal.seed.setValue(cfg["seed"])
    causal.run()
    causal.jobs.wait()


def _sliding_step(sliding, image, cfg: dict) -> None:
    """The Sliding LiNGAM dock: the windows, a probability overlay of Py <- I5 and the PCA."""
    _log(f"sliding LiNGAM, window {cfg['window']} cells")
    sliding.refresh_layers()
    sliding.source_combo.setCurrentText("B columns")
    sliding.image_combo.setCurrentText(image.name)
    sliding.window_spin.setValue(cfg["window"])
    sliding.boot_spin.setValue(cfg["n_bootstrap"])
    sliding.seed_spin.setValue(cfg["seed"])
    sliding.run()
    sliding.jobs.wait()
    sliding.add_overlay("Py", "I5", probability=True)
    sliding.run_pca(cfg["pca_components"])
    sliding.jobs.wait()


def _wall_profile_step(viewer, theory, image, cfg: dict) -> None:
    """The planted wall as a Shapes line, and the Theory dock's profile of Px <- Py across it."""
    truth = image.metadata["napari_causal_lattice"]["truth"]
    viewer.add_shapes(
        [truth.wall_line()], shape_type="line", name="Domain wall", edge_color="yellow", edge_width=4,
        scale=image.scale, translate=image.translate, units=image.units,
    )
    _log("wall profile of Px <- Py against the LGD theory")
    theory.refresh_layers()
    theory.wall_layer.setCurrentText("Domain wall")
    theory.source_layer.setCurrentText("B columns")
    theory.effect.setCurrentText("Px")
    theory.cause.setCurrentText("Py")
    theory.seed.setValue(cfg["seed"])
    theory.run()
    theory.jobs.wait()


def _render_offscreen(viewer) -> None:
    """Lay out and render the main window without putting it on screen (screenshots need a laid-out canvas).

    Needs a display server (a desktop session or Xvfb: ``xvfb-run -a napari-causal-lattice demo --headless``).
    """
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window  # napari offers no public handle on the QMainWindow
    window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    window.show()


def run_demo(headless: bool = False, out: str | None = None, *, settings: dict | None = None) -> Path | None:
    """Open napari on the synthetic sample and run every step; headless mode saves results and a screenshot.

    Parameters
    ----------
    headless : bool
        Do not show a window (needs an X server or Xvfb for rendering the screenshot).
    out : str, optional
        Output folder for ``results/`` (see :func:`napari_causal_lattice.io.save_results`) and
        ``viewer.png``; required in headless mode.
    settings : dict, optional
        Overrides of :data:`DEMO_SETTINGS`.

    Returns
    -------
    Path or None
        The output folder in headless mode.
    """
    import napari

    if headless and out is None:
        raise ValueError("demo --headless needs --out DIR to write the results and the screenshot into")
    viewer = napari.Viewer(title="napari-causal-lattice demo", show=not headless)
    viewer.window.resize(1280, 1000)
    if headless:
        _render_offscreen(viewer)
    widgets = run_steps(viewer, settings=settings)
    if out is None:
        napari.run()
        return None

    from ..store import save_results

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = widgets["Descriptors"].cells
    columns = viewer.layers["B columns"].metadata["napari_causal_lattice"]["columns"]
    image = viewer.layers["Synthetic perovskite"]
    pixels = np.ascontiguousarray(image.data)
    image_info = {
        "source": "embedded synthetic sample (synthetic_perovskite, seed 0)",
        "sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "shape": list(pixels.shape),
        "pixel_size": float(image.scale[-1]),
        "units": "pm",
    }
    save_results(
        out_dir / "results",
        columns=columns,
        cells=cells,
        lingam=widgets["Causal discovery"].result,
        sliding=widgets["Sliding LiNGAM"].result,
        pca=widgets["Sliding LiNGAM"].pca,
        image_info=image_info,
        overwrite=True,
    )
    screenshot = out_dir / "viewer.png"
    viewer.screenshot(str(screenshot), canvas_only=False)
    _log(f"wrote {out_dir / 'results'} and {screenshot}")
    viewer.close()
    return out_dir
