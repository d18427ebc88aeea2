"""Screenshots for the README: the demo viewer and each dock widget, from the real GUI.

Run under a display or Xvfb::

    xvfb-run -a -s '-screen 0 1280x1024x24' python docs/make_screenshots.py --out docs/images

The viewer is 1280 x 1000 px (the docks must fit a 1280 x 1024 screen); each widget screenshot shows the whole
scrollable body of its dock.  The demo analyses one image, so for the "Compare images" dock two more synthetic
images (Px <- Py planted at 0.2 and 0.8) are added after the demo screenshot and compared.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from napari_causal_lattice._napari.demo import WIDGETS, _render_offscreen, run_steps


def _file_name(widget_name: str) -> str:
    return "widget_" + widget_name.lower().replace(" (lgd)", "").replace(" ", "_") + ".png"


def _shrink(path: Path, width: int = 1280) -> None:
    """Resize to ``width`` px and store with a palette, so the README stays light (~200 kB)."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main(out: Path) -> list[Path]:
    import napari
    from qtpy.QtWidgets import QApplication

    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-causal-lattice", show=False)
    viewer.window.resize(1280, 1000)
    _render_offscreen(viewer)
    widgets = run_steps(viewer)
    written = [out / "demo.png"]
    viewer.screenshot(str(written[0]), canvas_only=False)
    _shrink(written[0])
    _compare_two_images(viewer, widgets["Compare images"])
    for name in WIDGETS:
        widget = widgets[name]
        widget.parent().raise_()  # its dock's tab, so the body is laid out
        QApplication.processEvents()
        body = widget.scroll_area.widget()
        body.resize(body.width(), max(body.height(), body.sizeHint().height()))
        QApplication.processEvents()
        path = out / _file_name(name)
        body.grab().save(str(path))
        written.append(path)
    viewer.close()
    return written


def _compare_two_images(viewer, widget, *, timeout_s: float = 600.0) -> None:
    """Add two synthetic images with Px <- Py planted at 0.2 and 0.8, compare them in ``widget`` (the Compare
    images dock) and wait for the result."""
    from qtpy.QtWidgets import QApplication

    from napari_causal_lattice._napari.sample import sample_layer_tuples
    from napari_causal_lattice.synthetic import synthetic_perovskite

    from qtpy.QtCore import Qt

    for row in range(widget.table.rowCount()):  # the demo's image is listed too: leave it out
        widget.table.item(row, 0).setCheckState(Qt.CheckState.Unchecked)
    for k0 in (0.2, 0.8):
        sample = synthetic_perovskite(seed=3, shape_cells=(20, 20), substrate_rows=0, interface_rows=0,
                                      wall_position=-1000.0, px_py_coupling=k0)
        data, kwargs, _ = sample_layer_tuples(sample)[0]
        viewer.add_image(data, **dict(kwargs, name=f"k0 = {k0}"))
        widget.set_group(f"k0 = {k0}", f"k0={k0}")
    widget.n_bootstrap.setValue(20)
    widget.run()
    start = time.monotonic()
    while widget.jobs.running or widget.result is None:
        if time.monotonic() - start > timeout_s:
            raise TimeoutError("the comparison for the Compare images screenshot did not finish")
        QApplication.processEvents()
        time.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("images"))
    for path in main(parser.parse_args().out):
        print(path)
