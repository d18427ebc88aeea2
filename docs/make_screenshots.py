"""Screenshots for the README: the demo viewer and each dock widget, from the real GUI.

Run under a display or Xvfb::

    xvfb-run -a -s '-screen 0 1280x1024x24' python docs/make_screenshots.py --out docs/images

The viewer is 1280 x 1000 px (the docks must fit a 1280 x 1024 screen); each widget screenshot shows the whole
scrollable body of its dock.
"""

from __future__ import annotations

import argparse
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
    # the demo runs one image, so "Compare images" stays empty: its screenshot is taken by hand after a comparison
    for name in (n for n in WIDGETS if n != "Compare images"):
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("images"))
    for path in main(parser.parse_args().out):
        print(path)
